#!/usr/bin/env python3
"""The .npz round trip of `NumpyArchive` against numpy and pytorch-fid (NumpyArchiveTests runs it):

    python3 tools/check_npz.py DIR

reads DIR/a.npz and DIR/b.npz (written by the toolkit: mu_i = sin(i + k), sigma = A Aᵀ/d with
A_ij = cos(i + 2j + k), k = 0 for a and 1 for b), checks them against those formulas with np.load, prints
pytorch-fid's `calculate_frechet_distance` between them, and writes DIR/compressed.npz (np.savez_compressed,
float64) and DIR/float32.npz (np.savez, float32) of the formulas for the toolkit to read back.
"""
import os
import sys
import types

import numpy as np

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))


def stats(d, k):
    i = np.arange(d)
    a = np.cos(i[:, None] + 2 * i[None, :] + k)
    return np.sin(i + k), a @ a.T / d


def main(folder, d=6):
    from pytorch_fid.fid_score import calculate_frechet_distance
    got = {}
    for name, k in [("a", 0), ("b", 1)]:
        f = np.load(os.path.join(folder, f"{name}.npz"))
        mu, sigma = stats(d, k)
        if not (np.allclose(f["mu"], mu, rtol=0, atol=1e-12) and np.allclose(f["sigma"], sigma, rtol=0, atol=1e-12)):
            print(f"{name}.npz: values differ from the formulas")
            return 1
        got[name] = (f["mu"], f["sigma"])
    fid = calculate_frechet_distance(*got["a"], *got["b"])
    mu, sigma = stats(d, 2)
    np.savez_compressed(os.path.join(folder, "compressed.npz"), mu=mu, sigma=sigma)
    np.savez(os.path.join(folder, "float32.npz"), mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))
    print(f"np.load read both files; pytorch-fid FID(a, b) = {float(fid)!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
