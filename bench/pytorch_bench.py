"""The PyTorch peer of `cifar-gan bench`: identical models (tools/models.py) and iteration.

    python3 bench/pytorch_bench.py --batch-size 64 [--channels-last] [--seconds 10]

One iteration = D step on a real and a generated batch (smoothed targets), then a G step on a fresh
latent batch with D frozen; throughput counts real images. Prints one JSON object with the same keys
as `cifar-gan bench --json`.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import models  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--seconds", type=float, default=10)
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--channels-last", action="store_true", help="NHWC memory format (PyTorch's fastest on CPU)")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
fmt = torch.channels_last if args.channels_last else torch.contiguous_format
G, D = models.generator(), models.discriminator()
G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
optG = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
bce = nn.BCEWithLogitsLoss()
N = args.batch_size
real = (torch.rand(N, 3, 32, 32) * 2 - 1).contiguous(memory_format=fmt)
ones = torch.ones(N, 1)


def step():
    optD.zero_grad(set_to_none=False)
    loss = bce(D(real), torch.rand(N, 1) * 0.2 + 0.8)
    loss.backward()
    with torch.no_grad():
        fake = G(torch.randn(N, 100))
    loss = bce(D(fake), torch.rand(N, 1) * 0.1)
    loss.backward()
    optD.step()
    for q in D.parameters():
        q.requires_grad_(False)
    optG.zero_grad(set_to_none=False)
    loss = bce(D(G(torch.randn(N, 100))), ones)
    loss.backward()
    optG.step()
    for q in D.parameters():
        q.requires_grad_(True)


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
z = torch.randn(256, 100)
with torch.no_grad():
    G(z)
    batches, start = 0, time.perf_counter()
    while True:
        G(z)
        batches += 1
        if time.perf_counter() - start >= max(1, args.seconds / 3):
            break
gen_rate = batches * 256 / (time.perf_counter() - start)
flops = 467.09e6  # per real image, conv/linear forward + backward as executed (matches ModelConfig.trainFLOPsPerImage)
print(json.dumps({
    "batch_size": N, "threads": args.threads, "iterations": iterations,
    "train_images_per_sec": train_rate, "train_gflops": train_rate * flops / 1e9,
    "generate_batch_size": 256, "generate_images_per_sec": gen_rate,
    "train_peak_rss_mb": train_peak, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "channels_last": args.channels_last, "torch": torch.__version__,
}, sort_keys=True))
