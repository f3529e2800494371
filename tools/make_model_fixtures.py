"""Writes the PyTorch reference for whole models of the quality work (issue 13), which the Swift tests compare against.

    pip install torch numpy && python3 tools/make_model_fixtures.py

Output (committed; CI does not need PyTorch):
  Tests/CIFARGANTests/Fixtures/reference_models.safetensors
For each case: the state dict (parameters and buffers, the keys a checkpoint has), the input, dy, the output,
dx, every parameter's gradient and every buffer after the pass (training mode: batch statistics, one power
iteration of spectral norm), with the class labels of a conditional model.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import models  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "CIFARGANTests", "Fixtures", "reference_models.safetensors")
torch.manual_seed(13)
torch.set_num_threads(1)
T = {}


def put(name, t):
    T[name] = t.detach().cpu().numpy().astype(np.float32)


def model_case(prefix, module, x, labels=None, y_labels=None, training=True):
    """Forward in training mode (or eval mode), then backward of sum(y * dy)."""
    module.train(training)
    if labels is not None:
        labels.labels = y_labels
        put(f"{prefix}.labels", y_labels.float())
    for name, t in module.state_dict().items():
        if t.dtype.is_floating_point:
            put(f"{prefix}.{name}", t)
    x = x.clone().requires_grad_(True)
    y = module(x)
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    put(f"{prefix}.x", x)
    put(f"{prefix}.dy", dy)
    put(f"{prefix}.y", y)
    put(f"{prefix}.dx", x.grad)
    for name, p in module.named_parameters():
        put(f"{prefix}.grad.{name}", p.grad)
    for name, t in module.state_dict().items():
        if t.dtype.is_floating_point and name not in dict(module.named_parameters()):
            put(f"{prefix}.after.{name}", t)


labels = models.Labels()
y = torch.tensor([2, 0, 1, 2])
for up in ["transposed", "nearest"]:
    G = models.cnn_generator(latent_dim=6, width=16, num_classes=3, labels=labels, upsampling=up)
    with torch.no_grad():   # per-class scales away from 1, so a wrong class index shows
        for m in G.modules():
            if isinstance(m, models.ConditionalBatchNorm2d):
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.3)
    model_case(f"cnn_g_{up}", G, torch.randn(4, 6), labels, y)
    G.zero_grad()
    model_case(f"cnn_g_{up}_eval", G, torch.randn(4, 6), labels, y, training=False)   # running statistics from the pass above
    model_case(f"dcgan_g_{up}", models.generator(latent_dim=5, width=8, upsampling=up), torch.randn(3, 5))
# A wider generator in eval mode, at the sizes of the finite-difference test (channels 32 → 4).
G = models.cnn_generator(latent_dim=5, width=32, num_classes=3, labels=labels, upsampling="nearest")
for _ in range(3):
    labels.labels = y
    G.train(True)(torch.randn(4, 5))
model_case("cnn_g_w32_eval", G, torch.randn(2, 5), labels, y[:2], training=False)
D = models.cnn_discriminator(width=4, slope=0.1, spectral_norm=True, num_classes=3, labels=labels)
model_case("cnn_d", D, torch.randn(4, 3, 32, 32) * 0.5, labels, y)
model_case("cnn_d_plain", models.cnn_discriminator(width=4, slope=0.1, spectral_norm=False), torch.randn(2, 3, 32, 32) * 0.5)
# LeCam regularisation (the authors' formula): anchors are bias-corrected EMAs (decay 0.99) of batch means.
real_means, fake_means = torch.tensor([0.9, 1.4, 1.1]), torch.tensor([-0.7, -1.2, -0.2])
ema_r = ema_f = 0.0
for r, f in zip(real_means.tolist(), fake_means.tolist()):
    ema_r, ema_f = 0.99 * ema_r + 0.01 * r, 0.99 * ema_f + 0.01 * f
alpha_r, alpha_f = ema_r / (1 - 0.99 ** 3), ema_f / (1 - 0.99 ** 3)
d_real = (torch.randn(16, 1) * 0.8).requires_grad_(True)
d_fake = (torch.randn(16, 1) * 0.8).requires_grad_(True)
lam = 0.3
reg_real = lam * torch.mean(torch.relu(d_real - alpha_f).pow(2))
reg_fake = lam * torch.mean(torch.relu(alpha_r - d_fake).pow(2))
(reg_real + reg_fake).backward()
for name, t in [("real_means", real_means), ("fake_means", fake_means), ("d_real", d_real), ("d_fake", d_fake),
                ("penalty_real", reg_real.reshape(1)), ("penalty_fake", reg_fake.reshape(1)),
                ("grad_real", d_real.grad), ("grad_fake", d_fake.grad)]:
    put(f"lecam.{name}", t)
# ADA's controller (StyleGAN2-ADA's training_loop: adjust = sign(r_t - target) * (batch * interval) / (kimg * 1000),
# p = max(p + adjust, 0); the toolkit also clamps at 1), fed batches of D(real) logits drifting upwards.
batch, interval, speed, target = 8, 4, 40.0, 0.6   # a fast speed so that p moves visibly in a few steps
logits = torch.randn(40, batch, 1) + torch.linspace(-1.5, 2.5, 40).view(40, 1, 1)
p, signs, ps = 0.0, [], []
for step in range(40):
    signs.append(torch.sign(logits[step]).mean().item())
    if (step + 1) % interval == 0:
        rt = sum(signs) / len(signs)
        p = min(1.0, max(p + float(np.sign(rt - target)) * batch * interval / speed, 0.0))
        signs = []
    ps.append(p)
put("ada.logits", logits)
put("ada.p", torch.tensor(ps))
safetensors_io.save(T, OUT)
print(f"reference_models: {len(T)} tensors")
