"""Writes the PyTorch reference fixtures that the Swift tests compare against.

    pip install torch numpy && python3 tools/make_reference_fixtures.py

Outputs (committed; CI does not need PyTorch):
  Tests/GANCoreTests/Fixtures/reference_ops.safetensors            every op: inputs, weights, outputs, gradients
  Tests/GANCoreTests/Fixtures/reference_gan_ops.safetensors        spectral norm, conditional BN, projection, …
  Tests/GANCoreTests/Fixtures/reference_seed_iteration.safetensors one D step + G step of the original models
"""
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import models  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "GANCoreTests", "Fixtures")
torch.manual_seed(0)
torch.set_num_threads(1)
T = {}


def put(name, t):
    T[name] = t.detach().cpu().numpy().astype(np.float32) if torch.is_tensor(t) else np.asarray(t, dtype=np.float32)


def layer_case(prefix, module, x, training=True):
    """Forward, then backward of sum(y * dy): stores x, dy, y, dx and every parameter and its gradient."""
    module.train(training)
    x = x.clone().requires_grad_(True)
    for name, p in module.named_parameters():
        put(f"{prefix}.{name}", p)
    for name, b in module.named_buffers():
        if b.dtype.is_floating_point:
            put(f"{prefix}.{name}", b)
    y = module(x)
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    put(f"{prefix}.x", x)
    put(f"{prefix}.dy", dy)
    put(f"{prefix}.y", y)
    put(f"{prefix}.dx", x.grad)
    for name, p in module.named_parameters():
        put(f"{prefix}.grad.{name}", p.grad)
    for name, b in module.named_buffers():
        if b.dtype.is_floating_point:
            put(f"{prefix}.after.{name}", b)


# Linear
layer_case("linear", nn.Linear(5, 3), torch.randn(4, 5))
# Conv2d: every option the models use and a few they don't
for (cin, cout, k, s, p, h) in [(3, 4, 3, 1, 1, 7), (2, 3, 3, 2, 1, 8), (2, 3, 4, 2, 0, 9), (3, 2, 1, 1, 0, 5), (2, 2, 5, 3, 2, 11)]:
    layer_case(f"conv2d.c{cin}o{cout}k{k}s{s}p{p}h{h}", nn.Conv2d(cin, cout, k, s, p), torch.randn(2, cin, h, h))
# ConvTranspose2d, with output padding
for (cin, cout, k, s, p, op, h) in [(3, 2, 4, 2, 1, 0, 4), (2, 3, 3, 2, 1, 1, 5), (2, 2, 3, 1, 0, 0, 4), (3, 2, 5, 3, 2, 2, 3)]:
    layer_case(f"convt.c{cin}o{cout}k{k}s{s}p{p}op{op}h{h}", nn.ConvTranspose2d(cin, cout, k, s, p, output_padding=op), torch.randn(2, cin, h, h))
# BatchNorm: training (batch statistics, running-stat update) and eval (running statistics)
for dims, shape in [("2d", (3, 4, 5, 5)), ("1d", (6, 4))]:
    for mode in ["train", "eval"]:
        bn = nn.BatchNorm2d(4) if dims == "2d" else nn.BatchNorm1d(4)
        with torch.no_grad():
            bn.weight.copy_(torch.rand(4) + 0.5)
            bn.bias.copy_(torch.randn(4))
            bn.running_mean.copy_(torch.randn(4) * 0.3)
            bn.running_var.copy_(torch.rand(4) + 0.5)
        layer_case(f"bn{dims}.{mode}", bn, torch.randn(*shape) * 2 + 0.5, training=(mode == "train"))
# Activations (inputs kept away from LeakyReLU's and ReLU's kink)
x = torch.randn(3, 7) * 2
x = torch.where(x.abs() < 0.05, x + 0.1, x)
for name, m in [("leakyrelu", nn.LeakyReLU(0.2)), ("relu", nn.ReLU()), ("tanh", nn.Tanh()), ("sigmoid", nn.Sigmoid())]:
    layer_case(name, m, x)
# Global average pooling and residual blocks (with a 1×1 projection shortcut, and with the identity)
layer_case("avgpool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), torch.randn(2, 3, 4, 5))
for name, (cin, cout, stride) in [("resblock.proj", (4, 6, 2)), ("resblock.identity", (4, 4, 1))]:
    block = models.basic_block(cin, cout, stride)
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features) + 0.5)
                m.bias.copy_(torch.randn(m.num_features) * 0.5)
    layer_case(name, block, torch.randn(3, cin, 6, 6))
# Cross-entropy on class indices, plain and with label smoothing
for name, eps in [("ce", 0.0), ("ce_smooth", 0.1)]:
    logits = (torch.randn(6, 10) * 2).requires_grad_(True)
    labels = torch.tensor([0, 3, 9, 3, 5, 1])
    loss = F.cross_entropy(logits, labels, label_smoothing=eps)
    loss.backward()
    put(f"{name}.logits", logits)
    put(f"{name}.labels", labels.float())
    put(f"{name}.loss", loss.reshape(1))
    put(f"{name}.grad", logits.grad)
# BCE with logits against soft targets
logits = (torch.randn(8, 1) * 3).requires_grad_(True)
targets = torch.rand(8, 1)
loss = F.binary_cross_entropy_with_logits(logits, targets)
loss.backward()
put("bce.logits", logits)
put("bce.targets", targets)
put("bce.loss", loss.reshape(1))
put("bce.grad", logits.grad)
# Optimizers: three steps from fixed gradients
for name, make in [
    ("adam", lambda p: torch.optim.Adam([p], lr=1e-2, betas=(0.5, 0.999))),
    ("adam_wd", lambda p: torch.optim.Adam([p], lr=1e-3, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1)),
    ("sgd", lambda p: torch.optim.SGD([p], lr=0.1)),
    ("sgd_momentum", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_nesterov", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)),
]:
    p = torch.randn(10, requires_grad=True)
    put(f"{name}.p0", p)
    opt = make(p)
    for step in range(3):
        g = torch.randn(10)
        put(f"{name}.g{step}", g)
        p.grad = g.clone()
        opt.step()
    put(f"{name}.p3", p)
safetensors_io.save(T, os.path.join(OUT, "reference_ops.safetensors"))
print(f"reference_ops: {len(T)} tensors")

# ---- The ops beyond the original recipe (issue 5) -------------------------------------------
T = {}
torch.manual_seed(5)
# Spectral norm: one power iteration in training mode (u, v updated), none in eval mode
for name, module, x in [("sn_linear", nn.Linear(6, 4), torch.randn(5, 6)),
                        ("sn_conv", nn.Conv2d(3, 4, 3, 2, 1), torch.randn(2, 3, 7, 7))]:
    for mode in ["train", "eval"]:
        m = nn.utils.spectral_norm(copy.deepcopy(module))
        layer_case(f"{name}.{mode}", m, x, training=(mode == "train"))
# Conditional batch norm (train, eval) and the projection head, with fixed labels
labels = models.Labels()
labels.labels = torch.tensor([2, 0, 2, 1])
put("labels", labels.labels.float())
for mode in ["train", "eval"]:
    cbn = models.ConditionalBatchNorm2d(3, 4, labels)
    with torch.no_grad():
        cbn.weight.copy_(torch.rand(4, 3) + 0.5)
        cbn.bias.copy_(torch.randn(4, 3))
        cbn.bn.running_mean.copy_(torch.randn(3) * 0.3)
        cbn.bn.running_var.copy_(torch.rand(3) + 0.5)
    layer_case(f"cbn.{mode}", cbn, torch.randn(4, 3, 3, 3) * 2 + 0.5, training=(mode == "train"))
layer_case("projection", models.ProjectionHead(nn.Linear(5, 1), 5, 4, labels), torch.randn(4, 5))
layer_case("projection_sn", models.ProjectionHead(nn.utils.spectral_norm(nn.Linear(5, 1)), 5, 4, labels), torch.randn(4, 5))
# Resampling and pooling of the residual models
layer_case("upsample", nn.Upsample(scale_factor=2), torch.randn(2, 3, 3, 4))
layer_case("avgpool2", nn.AvgPool2d(2), torch.randn(2, 3, 4, 6))
layer_case("sumpool", models.SumPool(), torch.randn(2, 3, 4, 5))
# Hinge loss terms
logits = (torch.randn(9, 1) * 1.5).requires_grad_(True)
put("hinge.logits", logits)
for term, f in [("real", lambda x: F.relu(1 - x).mean()), ("fake", lambda x: F.relu(1 + x).mean()), ("generator", lambda x: -x.mean())]:
    logits.grad = None
    loss = f(logits)
    loss.backward()
    put(f"hinge.{term}.loss", loss.reshape(1))
    put(f"hinge.{term}.grad", logits.grad)
safetensors_io.save(T, os.path.join(OUT, "reference_gan_ops.safetensors"))
print(f"reference_gan_ops: {len(T)} tensors")

# ---- One whole training iteration of the original models -------------------------------------
# Run in float32 and in float64. The tests compare Swift (float32) with the float64 result, allowing
# 1e-4 relative plus twice PyTorch float32's own distance from float64: summing thousands of terms in
# float32 (the first convolution's gradient, biases in front of BatchNorm whose true gradient is 0)
# is inexact in any implementation, and the test should demand PyTorch's accuracy, not its rounding.
T = {}
N = 8
torch.manual_seed(1)
masks = [(torch.rand(N, 2048) >= 0.4).float() for _ in range(3)]
real = torch.rand(N, 3, 32, 32) * 2 - 1
z1, z2 = torch.randn(N, 100), torch.randn(N, 100)
t_real = torch.rand(N, 1) * 0.2 + 0.8
t_fake = torch.rand(N, 1) * 0.1
for k, v in [("real", real), ("z1", z1), ("z2", z2), ("t_real", t_real), ("t_fake", t_fake)]:
    put(f"input.{k}", v)
for i, m in enumerate(masks):
    put(f"input.mask{i}", m)


def hash_uniform(j, n):
    """u(j, i) in [0, 1): SplitMix64 of (j << 32 | i), top 24 bits. Integer-exact in numpy and Swift; pseudo-random
    weights avoid the exact cancellations (pre-activations at LeakyReLU's kink) that structured weights cause."""
    z = (np.uint64(j) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def init_spec(model):
    """(scale, offset) per parameter j: w[i] = offset + scale·(2·u(j, i) − 1), u a hash; Swift recomputes it."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    spec = []
    for name, p in model.named_parameters():
        owner = name.rsplit(".", 1)[0]
        if isinstance(modules[owner], nn.BatchNorm2d):
            spec.append((0.1, 1.0) if name.endswith("weight") else (0.1, 0.0))
        else:
            w = params[owner + ".weight"]
            spec.append((1.0 / np.sqrt(w.shape[1] * w[0][0].numel()), 0.0))
    return spec


def iteration(dtype):
    """One D step (real + generated batch, smoothed targets) then one G step with D frozen."""
    G = models.generator().to(dtype)
    D = models.discriminator(dropout_module=models.ReplayDropout(0.4, [m.to(dtype) for m in masks])).to(dtype)
    for model in (G, D):
        for j, ((name, p), (scale, offset)) in enumerate(zip(model.named_parameters(), init_spec(model))):
            values = torch.from_numpy(offset + scale * (2 * hash_uniform(j, p.numel()) - 1))
            with torch.no_grad():
                p.copy_(values.to(torch.float32).to(dtype).reshape(p.shape))
    x, a, b, tr, tf = (t.to(dtype) for t in (real, z1, z2, t_real, t_fake))
    optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    out = {}
    optD.zero_grad()
    loss_real = bce(D(x), tr)
    loss_real.backward()
    loss_fake = bce(D(G(a).detach()), tf)
    loss_fake.backward()
    out.update({f"dstep.grad.{n}": p.grad.clone() for n, p in D.named_parameters()})
    optD.step()
    out["out.loss_d"] = (loss_real + loss_fake).detach().reshape(1)
    for p in D.parameters():
        p.requires_grad_(False)
    optG.zero_grad()
    loss_g = bce(D(G(b)), torch.ones(N, 1, dtype=dtype))
    loss_g.backward()
    out.update({f"gstep.grad.{n}": p.grad.clone() for n, p in G.named_parameters()})
    optG.step()
    out["out.loss_g"] = loss_g.detach().reshape(1)
    for prefix, model in [("G", G), ("D", D)]:
        for name, t in list(model.named_parameters()) + [(n, b) for n, b in model.named_buffers() if b.dtype.is_floating_point]:
            out[f"after.{prefix}.{name}"] = t.detach().clone()
    return out, init_spec(G), init_spec(D), G, D


r32, spec_g, spec_d, G, D = iteration(torch.float32)
r64, _, _, _, _ = iteration(torch.float64)
for prefix, model, spec in [("G", G, spec_g), ("D", D, spec_d)]:
    for (name, _), so in zip(model.named_parameters(), spec):
        put(f"init.{prefix}.{name}", torch.tensor(so))
for key in r32:
    a32, a64 = r32[key].double().reshape(-1), r64[key].reshape(-1)
    # Large tensors are sampled every 97th value to keep the fixture small.
    sample = (lambda t: t) if a64.numel() <= 10000 else (lambda t: t[::97])
    put(key, sample(a64))
    tol = 1e-4 * float(a64.abs().max()) + 2 * float((a32 - a64).abs().max()) + 1e-7
    # A bias in front of BatchNorm has a true gradient of 0: its Adam step is ±lr·(rounding noise)/|noise|,
    # a direction no implementation can reproduce, so its value after the step is checked to within 2·lr.
    if key.startswith("after."):
        grad_key = ("gstep.grad." if key.startswith("after.G.") else "dstep.grad.") + key.split(".", 2)[2]
        if grad_key in r64 and float(r64[grad_key].abs().max()) < 1e-9:
            tol += 2 * (1e-4 if key.startswith("after.G.") else 2e-4)
    put(f"tol.{key}", torch.tensor([tol]))
safetensors_io.save(T, os.path.join(OUT, "reference_seed_iteration.safetensors"))
print(f"reference_seed_iteration: {len(T)} tensors, loss_d {float(r64['out.loss_d']):.6f}, loss_g {float(r64['out.loss_g']):.6f}")
