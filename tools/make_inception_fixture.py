#!/usr/bin/env python3
"""A stand-in for pytorch-fid's Inception weights and the features pytorch-fid's own code computes with them.

The real file (pt_inception-2015-12-05-6726825d.pth, 95 MB) cannot be downloaded on our machines, so this
builds pytorch-fid's FID Inception (its FIDInceptionA/C/E blocks on torchvision's Inception-v3) with random
weights, sets every batch norm's running statistics from a pass over random images (so activations stay in
range through ~90 layers), saves the state dict in the legacy torch.save format as pytorch-fid's file is, and
runs `pytorch_fid.inception.InceptionV3` (block 3, its resize and scaling) on a few fixed images:

    python3 tools/make_inception_fixture.py OUT_DIR [--images N]
    # OUT_DIR/pt_inception-random.pth, OUT_DIR/inception_expected.safetensors (images [N,3,32,32] in [0,1], features [N,2048])

Needs torch, torchvision and pytorch-fid (`tools/with-python-packages torch torchvision pytorch_fid -- …`).
torchvision from PyPI may not match a local CPU build of torch; its C++ operators are not needed here, so
the module that registers them is stubbed out before the import.
"""
import argparse
import os
import sys
import types

import numpy as np
import torch

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import pytorch_fid.inception as fid  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402


def random_fid_inception(seed):
    torch.manual_seed(seed)
    real_load = torch.nn.Module.load_state_dict
    torch.nn.Module.load_state_dict = lambda self, *a, **k: None      # fid_inception_v3 without its download
    fid.load_state_dict_from_url = lambda *a, **k: {}
    try:
        net = fid.fid_inception_v3()
    finally:
        torch.nn.Module.load_state_dict = real_load
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None                                          # a cumulative average over the calibration pass
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    net = random_fid_inception(0)
    calibration = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # pytorch-fid's own InceptionV3 around the random net; calibrate its batch norms in train mode.
    model = build_wrapper(net)
    model.train()
    with torch.no_grad():
        model(calibration)
    model.eval()
    path = os.path.join(a.out, "pt_inception-random.pth")
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    images = torch.rand(a.images, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    images[0] = 0.5                                                    # a flat image
    with torch.no_grad():
        features = model(images)[0].squeeze(-1).squeeze(-1)
    save({"images": images.numpy(), "features": features.numpy().astype(np.float32)},
         os.path.join(a.out, "inception_expected.safetensors"))
    print(f"{path}: {os.path.getsize(path)} bytes; features {tuple(features.shape)}, "
          f"mean {features.mean():.4f}, std {features.std():.4f}")


def build_wrapper(net):
    """pytorch_fid.inception.InceptionV3([3]) around `net` (its constructor builds the same blocks from
    fid_inception_v3(), whose weights it would download)."""
    original = fid.fid_inception_v3
    fid.fid_inception_v3 = lambda: net
    try:
        return fid.InceptionV3([3])
    finally:
        fid.fid_inception_v3 = original


if __name__ == "__main__":
    main()
