#!/usr/bin/env python3
"""Fixtures for the `.pth` reader (GANCore TorchCheckpoint): small state dicts saved by torch.save in the zip
format and the legacy one, the same tensors as safetensors for comparison, and two malicious files that a
general unpickler would execute (a GLOBAL of os.system, called by REDUCE; and builtins.eval).

    python3 tools/make_torch_checkpoint_fixtures.py   # needs torch; writes Tests/GANCoreTests/Fixtures/torch_*
"""
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "GANCoreTests", "Fixtures")


def state_dict():
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, (1, 3), bias=True)
    bn = torch.nn.BatchNorm2d(4, eps=1e-3)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        conv.bias.copy_(torch.randn(4, generator=g))
        bn.running_mean.copy_(torch.randn(4, generator=g))
        bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
    sd = collections.OrderedDict()
    for k, v in conv.state_dict().items():
        sd["block.conv." + k] = v
    for k, v in bn.state_dict().items():   # num_batches_tracked: an int64 storage
        sd["block.bn." + k] = v
    base = torch.randn(5, 6, generator=g)
    sd["views.transposed"] = base.t()               # non-contiguous: strides (1, 6)
    sd["views.row"] = base[2]                       # offset 12 into the same storage
    sd["dtypes.double"] = torch.randn(3, generator=g, dtype=torch.float64)
    sd["dtypes.half"] = torch.tensor([1.0, -2.5, 65504.0, 6e-8], dtype=torch.float16)
    sd["dtypes.int32"] = torch.tensor([-7, 0, 123456], dtype=torch.int32)
    sd["scalar"] = torch.tensor(3.5)
    return sd


class Exploit:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = state_dict()
    torch.save(sd, os.path.join(OUT, "torch_state_zip.pth"))
    torch.save(sd, os.path.join(OUT, "torch_state_legacy.pth"), _use_new_zipfile_serialization=False)
    save({k: (v.double().float().contiguous().numpy() if v.is_floating_point() else v.long().contiguous().numpy())
          for k, v in sd.items()}, os.path.join(OUT, "torch_state_expected.safetensors"))
    evil = collections.OrderedDict(w=torch.zeros(2), payload=Exploit(os.system, "echo pwned > /tmp/cifar-gan-pwned"))
    torch.save(evil, os.path.join(OUT, "torch_malicious_system.pth"), _use_new_zipfile_serialization=False)
    evil = collections.OrderedDict(w=torch.zeros(2), payload=Exploit(eval, "1 + 1"))
    torch.save(evil, os.path.join(OUT, "torch_malicious_eval.pth"))
    for f in sorted(os.listdir(OUT)):
        if f.startswith("torch_"):
            print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
