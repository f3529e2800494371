"""The PyTorch peer of `cifar-gan bench`: identical models (tools/models.py) and iteration, for any recipe.

    python3 bench/pytorch_bench.py --batch-size 64 [--channels-last] [--seconds 10] [--config FILE] [--bf16]

`--config` takes a run's config.json (what `cifar-gan bench --preset NAME [--conditional] --print-config`
prints) and builds the same recipe: architecture and widths, classes (conditional batch norm and the
projection head), spectral norm, loss (bce with smoothed targets, non_saturating, hinge), DiffAugment on every
D input (and ADA's per-image probability where ada_target is set; at the start of training it is 0, as in
`cifar-gan bench`, but the augmentation pass still runs in both programs), and the moving average of G's
weights. Without it: the original recipe. `--bf16` runs forward and backward under
`torch.autocast("cpu", dtype=torch.bfloat16)`, PyTorch's own mixed precision on a CPU.

One iteration = D step on a real and a generated batch, then a G step on a fresh latent batch with D frozen;
throughput counts real images. Prints one JSON object with the same keys as `cifar-gan bench --json`.
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import models  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--seconds", type=float, default=10)
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--channels-last", action="store_true", help="NHWC memory format (PyTorch's fastest on CPU)")
p.add_argument("--config", help="a run's config.json: the recipe to build (default: the original)")
p.add_argument("--bf16", action="store_true", help="torch.autocast to bfloat16 on the CPU")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)

ORIGINAL = {"loss": "bce", "diff_augment": [], "ema_decay": 0, "ada_target": 0,
            "optimizer": {"beta1": 0.5, "beta2": 0.999, "discriminator_lr": 2e-4, "generator_lr": 1e-4},
            "model": {"architecture": "dcgan", "classes": 0, "latent_dim": 100, "generator_width": 128,
                      "discriminator_width": 64, "dropout": 0.4, "leaky_slope": 0.2, "spectral_norm": False,
                      "upsampling": "transposed"}}
config = ORIGINAL
if args.config:
    with open(args.config) as f:
        config = json.load(f)
model = config["model"]
fmt = torch.channels_last if args.channels_last else torch.contiguous_format
G, D, labels = models.from_config(model)
G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
o = config["optimizer"]
optG = torch.optim.Adam(G.parameters(), lr=o["generator_lr"], betas=(float(o["beta1"]), float(o["beta2"])))
optD = torch.optim.Adam(D.parameters(), lr=o["discriminator_lr"], betas=(float(o["beta1"]), float(o["beta2"])))
ema = None
if config.get("ema_decay", 0) > 0:
    ema = [q.detach().clone() for q in G.parameters()]
K, Z, N = model.get("classes", 0), model["latent_dim"], args.batch_size
loss_kind, policy = config["loss"], config.get("diff_augment", [])
ada_probability = 0.0 if config.get("ada_target", 0) > 0 else 1.0
real = (torch.rand(N, 3, 32, 32) * 2 - 1).contiguous(memory_format=fmt)
ones = torch.ones(N, 1)
precision = torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()


def diff_augment(x):
    """DiffAugment's color, translation and cutout (GANCore's DiffAugment: same ranges), each operation kept
    per image with probability `ada_probability` (ADA's way; 1 = always, DiffAugment's way)."""
    if not policy:
        return x
    n, _, h, w = x.shape

    def keep():
        return (torch.rand(n, 1, 1, 1) < ada_probability).to(x.dtype)

    if "color" in policy:
        k = keep()
        x = x + (torch.rand(n, 1, 1, 1) - 0.5) * k
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * ((torch.rand(n, 1, 1, 1) * 2 - 1) * k + 1) + m
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - m) * ((torch.rand(n, 1, 1, 1) - 0.5) * k + 1) + m
    if "translation" in policy:
        sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        k = keep().view(n, 1, 1).long()
        ty = torch.randint(-sy, sy + 1, (n, 1, 1)) * k
        tx = torch.randint(-sx, sx + 1, (n, 1, 1)) * k
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        gy = torch.clamp(gy.unsqueeze(0) + ty + 1, 0, h + 1)
        gx = torch.clamp(gx.unsqueeze(0) + tx + 1, 0, w + 1)
        padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
        x = padded.permute(0, 2, 3, 1).contiguous()[torch.arange(n).view(n, 1, 1), gy, gx].permute(0, 3, 1, 2)
    if "cutout" in policy:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        k = keep().view(n, 1, 1).long()
        cy = torch.randint(0, h + 1, (n, 1, 1)) * k + (1 - k) * (-h)
        cx = torch.randint(0, w + 1, (n, 1, 1))
        gy, gx = torch.meshgrid(torch.arange(ch), torch.arange(cw), indexing="ij")
        gy = torch.clamp(gy.unsqueeze(0) + cy - ch // 2, min=0, max=h - 1)
        gx = torch.clamp(gx.unsqueeze(0) + cx - cw // 2, min=0, max=w - 1)
        mask = torch.ones(n, h, w, dtype=x.dtype)
        mask[torch.arange(n).view(n, 1, 1), gy, gx] = 0
        x = x * mask.unsqueeze(1)
    return x.contiguous(memory_format=fmt)


def d_loss(logits, term):
    if loss_kind == "hinge":
        return F.relu(1 - logits).mean() if term == "real" else F.relu(1 + logits).mean()
    if loss_kind == "non_saturating":
        t = torch.ones(N, 1) if term == "real" else torch.zeros(N, 1)
    else:
        t = torch.rand(N, 1) * 0.2 + 0.8 if term == "real" else torch.rand(N, 1) * 0.1
    return F.binary_cross_entropy_with_logits(logits.float(), t)


def g_loss(logits):
    return -logits.float().mean() if loss_kind == "hinge" else F.binary_cross_entropy_with_logits(logits.float(), ones)


def classes():
    if K:
        labels.labels = torch.randint(0, K, (N,))


def step():
    optD.zero_grad(set_to_none=False)
    with precision:
        classes()
        loss = d_loss(D(diff_augment(real)), "real")
    loss.backward()
    with precision:
        classes()
        with torch.no_grad():
            fake = G(torch.randn(N, Z))
        loss = d_loss(D(diff_augment(fake)), "fake")
    loss.backward()
    optD.step()
    for q in D.parameters():
        q.requires_grad_(False)
    optG.zero_grad(set_to_none=False)
    with precision:
        classes()
        loss = g_loss(D(diff_augment(G(torch.randn(N, Z)))))
    loss.backward()
    optG.step()
    for q in D.parameters():
        q.requires_grad_(True)
    if ema is not None:
        with torch.no_grad():
            torch._foreach_lerp_(ema, [q.detach() for q in G.parameters()], 1 - config["ema_decay"])


G.train(); D.train()
step(); step()
iterations, start = 0, time.perf_counter()
while True:
    step()
    iterations += 1
    if time.perf_counter() - start >= args.seconds:
        break
train_rate = iterations * N / (time.perf_counter() - start)
train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

G.eval()
z = torch.randn(256, Z)
if K:
    labels.labels = torch.randint(0, K, (256,))
with torch.no_grad(), precision:
    G(z)
    batches, start = 0, time.perf_counter()
    while True:
        G(z)
        batches += 1
        if time.perf_counter() - start >= max(1, args.seconds / 3):
            break
gen_rate = batches * 256 / (time.perf_counter() - start)
original = not args.config or config.get("preset", "original") == "original"
flops = 467.09e6 if original else 0  # per real image of the original models (ModelConfig.trainFLOPsPerImage)
print(json.dumps({
    "batch_size": N, "threads": args.threads, "iterations": iterations,
    "train_images_per_sec": train_rate, "train_gflops": train_rate * flops / 1e9,
    "generate_batch_size": 256, "generate_images_per_sec": gen_rate,
    "train_peak_rss_mb": train_peak, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "channels_last": args.channels_last, "bf16": args.bf16, "torch": torch.__version__,
}, sort_keys=True))
