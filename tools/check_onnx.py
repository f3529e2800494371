#!/usr/bin/env python3
"""Checks a `cifar-gan export` ONNX file with the reference tools: `onnx.checker` (full check, with shape
inference) and onnxruntime, run on the latents (and classes) of a `cifar-gan generate --format safetensors`
file and compared with the images cifar-gan generated from them.

    python3 tools/check_onnx.py generator.onnx samples/cat.safetensors [--tolerance 1e-4]

Prints one line with the largest absolute difference; exits 1 when it is above the tolerance (float32 on
both sides, different summation orders: differences of ~1e-6 are expected; images are in [-1, 1]).
"""
import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort

from safetensors_io import load as read_safetensors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("samples")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)
    tensors = read_safetensors(a.samples)
    z, images = tensors["latents"].astype(np.float32), tensors["images"].astype(np.float32)
    session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    feeds = {"z": z}
    names = [i.name for i in session.get_inputs()]
    if "class" in names:
        feeds["class"] = tensors["classes"].astype(np.int64)
    out = session.run(["images"], feeds)[0]
    if out.shape != images.shape:
        print(f"{a.model}: output shape {out.shape}, cifar-gan generated {images.shape}")
        return 1
    diff = float(np.abs(out - images).max())
    inputs = ", ".join(f"{i.name} {i.shape} {i.type}" for i in session.get_inputs())
    print(f"{a.model}: onnx.checker passed (opset {model.opset_import[0].version}); onnxruntime {ort.__version__} "
          f"on {len(z)} latents (inputs {inputs}): max |onnxruntime - cifar-gan| = {diff:.3g}")
    return 0 if diff <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
