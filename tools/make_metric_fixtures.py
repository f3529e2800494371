"""Reference values for the evaluation metrics, computed with numpy/scipy as pytorch-fid and torch-fidelity do.

    pip install numpy scipy && python3 tools/make_metric_fixtures.py
Writes Tests/CIFARGANTests/Fixtures/metrics.safetensors (CI does not need scipy).
"""
import os
import sys

import numpy as np
from scipy import linalg

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(0)
d = 12
mix = rng.normal(size=(d, d))
real = (rng.normal(size=(300, d)) @ mix).astype(np.float32)
fake = (rng.normal(size=(250, d)) @ (mix * 0.8) + 0.5).astype(np.float32)
r64, f64 = real.astype(np.float64), fake.astype(np.float64)


def fid(a, b):
    """pytorch-fid's calculate_frechet_distance."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def mmd2(x, y):
    """torch-fidelity's unbiased polynomial-kernel MMD (kernel (x·y/d + 1)^3)."""
    dim = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / dim + 1) ** 3, ((y @ y.T) / dim + 1) ** 3, ((x @ y.T) / dim + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.sum() / (m * n))


def precision_recall(a, b, k=3):
    def radii(x):
        dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        return np.sort(dist, axis=1)[:, k]  # column 0 is the point itself

    def coverage(manifold, probes):
        r = radii(manifold)
        dist = ((probes[:, None, :] - manifold[None, :, :]) ** 2).sum(-1)
        return float((dist <= r[None, :]).any(axis=1).mean())

    return coverage(a, b), coverage(b, a)


logits = rng.normal(size=(100, 10)) * 2
probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
scores = []
for part in np.array_split(probs, 10):
    py = part.mean(0)
    scores.append(np.exp((part * (np.log(part) - np.log(py))).sum(1).mean()))
spd = np.cov(r64, rowvar=False)
p, r = precision_recall(r64, f64)
out = {
    "real": real, "fake": fake, "probs": probs.astype(np.float32),
    "fid": np.array([fid(r64, f64)], dtype=np.float32),
    "fid_self": np.array([fid(r64, r64)], dtype=np.float32),
    "spd": spd.astype(np.float32), "spd_sqrt": linalg.sqrtm(spd).real.astype(np.float32),
    "mmd2": np.array([mmd2(r64, f64)], dtype=np.float32),
    "precision": np.array([p], dtype=np.float32), "recall": np.array([r], dtype=np.float32),
    "is_mean": np.array([np.mean(scores)], dtype=np.float32), "is_std": np.array([np.std(scores)], dtype=np.float32),
}
safetensors_io.save(out, os.path.join(ROOT, "Tests", "CIFARGANTests", "Fixtures", "metrics.safetensors"))
print({k: float(v[0]) for k, v in out.items() if v.size == 1})
