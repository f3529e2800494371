#!/usr/bin/env python3
"""pytorch-fid's InceptionV3 feature throughput on this CPU, and the toolkit's beside it (`cifar-gan bench
--inception-weights`), back to back on the same random-weight file (tools/make_inception_fixture.py):

    python3 bench/inception_bench.py WEIGHTS_DIR [--images 100] [--rounds 2]

PyTorch runs in inference mode with batch 50 (pytorch-fid's default), at its default thread count, in its
default layout and with channels_last; the ratio uses the best round of each.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_rate(weights_dir, images, channels_last):
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import make_inception_fixture as fx
    net = fx.random_fid_inception(0)
    net.load_state_dict(torch.load(os.path.join(weights_dir, "pt_inception-random.pth")))
    model = fx.build_wrapper(net).eval()
    x = torch.rand(50, 3, 32, 32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        start, done = time.perf_counter(), 0
        while done < images:
            model(x)
            done += 50
    return done / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("weights_dir")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    swift = os.path.join(ROOT, ".build", "release", "cifar-gan")
    best = {"swift": 0, "torch": 0, "torch_cl": 0}
    for _ in range(a.rounds):
        out = subprocess.run([swift, "bench", "--inception-weights", os.path.join(a.weights_dir, "pt_inception-random.pth"),
                              "--images", str(a.images)], check=True, capture_output=True, text=True).stdout
        best["swift"] = max(best["swift"], json.loads(out.strip().splitlines()[-1])["inception_images_per_sec"])
        best["torch"] = max(best["torch"], torch_rate(a.weights_dir, a.images, False))
        best["torch_cl"] = max(best["torch_cl"], torch_rate(a.weights_dir, a.images, True))
    fastest = max(best["torch"], best["torch_cl"])
    print(f"Inception-v3 features, images/s: cifar-gan {best['swift']:.2f}, PyTorch {best['torch']:.2f} "
          f"(channels_last {best['torch_cl']:.2f}); ratio against PyTorch's fastest {best['swift'] / fastest:.2f}; "
          f"10,000 images: cifar-gan {10000 / best['swift'] / 60:.1f} min, PyTorch {10000 / fastest / 60:.1f} min")


if __name__ == "__main__":
    main()
