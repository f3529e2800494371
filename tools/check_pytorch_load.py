"""Loads a cifar-gan checkpoint into the PyTorch twins of its models (strict load_state_dict) and samples.

    python3 tools/check_pytorch_load.py runs/cat/checkpoints/epoch-0005 [--width 128 --d-width 64 --latent 100]

Uses the `safetensors` package when installed (what a PyTorch user would do), else tools/safetensors_io.py.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("checkpoint")
p.add_argument("--width", type=int, default=128)
p.add_argument("--d-width", type=int, default=64)
p.add_argument("--latent", type=int, default=100)
a = p.parse_args()
try:
    from safetensors.torch import load_file
    reader = "safetensors.torch.load_file"
except ImportError:
    import safetensors_io

    def load_file(path):
        return {k: torch.from_numpy(v.copy()) for k, v in safetensors_io.load(path).items()}
    reader = "tools/safetensors_io.py"

G = models.generator(a.latent, a.width)
D = models.discriminator(a.d_width)
G.load_state_dict(load_file(os.path.join(a.checkpoint, "generator.safetensors")), strict=True)
D.load_state_dict(load_file(os.path.join(a.checkpoint, "discriminator.safetensors")), strict=True)
G.eval(); D.eval()
with torch.no_grad():
    x = G(torch.randn(16, a.latent))
    logits = D(x)
print(f"loaded with {reader} (strict): generator {sum(p.numel() for p in G.parameters())} parameters, "
      f"discriminator {sum(p.numel() for p in D.parameters())}; samples in [{x.min():.3f}, {x.max():.3f}], "
      f"mean D(G(z)) {torch.sigmoid(logits).mean():.3f}, num_batches_tracked {int(G[2].num_batches_tracked)}")
