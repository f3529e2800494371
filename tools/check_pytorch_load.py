"""Loads a cifar-gan checkpoint into the PyTorch twins of its models (strict load_state_dict) and samples.

    python3 tools/check_pytorch_load.py runs/cat/checkpoints/epoch-0005

The architecture (dcgan or resnet, widths, spectral norm, classes) comes from the run's config.json two
folders up. Uses the `safetensors` package when installed (what a PyTorch user would do), else
tools/safetensors_io.py. With a moving average of G (`generator_ema.safetensors`), that is loaded too.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("checkpoint")
a = p.parse_args()
try:
    from safetensors.torch import load_file
    reader = "safetensors.torch.load_file"
except ImportError:
    import safetensors_io

    def load_file(path):
        return {k: torch.from_numpy(v.copy()) for k, v in safetensors_io.load(path).items()}
    reader = "tools/safetensors_io.py"

config = json.load(open(os.path.join(a.checkpoint, "..", "..", "config.json")))
model = config["model"]
G, D, labels = models.from_config(model)   # G and D share `labels` (conditional models)
G.load_state_dict(load_file(os.path.join(a.checkpoint, "generator.safetensors")), strict=True)
D.load_state_dict(load_file(os.path.join(a.checkpoint, "discriminator.safetensors")), strict=True)
loaded = ["generator", "discriminator"]
ema_path = os.path.join(a.checkpoint, "generator_ema.safetensors")
if os.path.exists(ema_path):
    G.load_state_dict(load_file(ema_path), strict=True)   # the same architecture; samples come from the average
    loaded.append("generator_ema (sampled)")
G.eval(); D.eval()
k = model.get("classes", 0)
with torch.no_grad():
    labels.labels = torch.arange(16) % k if k else None
    x = G(torch.randn(16, model["latent_dim"]))
    logits = D(x)
print(f"loaded {', '.join(loaded)} with {reader} (strict), {model.get('architecture', 'dcgan')} "
      f"{'conditional on ' + str(k) + ' classes' if k else ''}: generator {sum(p.numel() for p in G.parameters())} parameters, "
      f"discriminator {sum(p.numel() for p in D.parameters())}; samples in [{x.min():.3f}, {x.max():.3f}], "
      f"mean D(G(z)) logit {logits.mean():.3f}")
