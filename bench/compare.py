"""Runs `cifar-gan bench` and the PyTorch peer back to back and prints the ratios.

    python3 bench/compare.py [--batch-sizes 64,128] [--seconds 10] [--rounds 2]

PyTorch runs at its fastest known setting: channels_last plus glibc malloc tunables that stop it
returning large buffers to the kernel each step, and also in its default layout. cifar-gan runs with its
default kernels (oneDNN convolutions where installed) and with BLAS kernels only
(CIFAR_GAN_CONVOLUTION=blas, what a machine without oneDNN gets). Rounds alternate the
two programs so that drift in this shared machine's speed hits both alike; the ratio uses the best
round of each. Needs `swift build -c release` (done here) and `pip install torch`.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=8589934592"


def run(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch-sizes", default="64,128")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-default-layout", action="store_true", help="skip PyTorch's default (NCHW) layout")
    args = p.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "cifar-gan"], cwd=ROOT, check=True)
    swift = os.path.join(ROOT, ".build", "release", "cifar-gan")
    fast_env = dict(os.environ, GLIBC_TUNABLES=TUNABLES)
    rows = []
    for n in [int(b) for b in args.batch_sizes.split(",")]:
        best = {}
        for _ in range(args.rounds):
            runs = {
                "swift": lambda: run([swift, "bench", "--json", "--batch-size", str(n), "--seconds", str(args.seconds)]),
                "swift_blas": lambda: run([swift, "bench", "--json", "--batch-size", str(n), "--seconds", str(args.seconds)],
                                          dict(os.environ, CIFAR_GAN_CONVOLUTION="blas")),
                "torch_fastest": lambda: run([sys.executable, "bench/pytorch_bench.py", "--channels-last",
                                             "--batch-size", str(n), "--seconds", str(args.seconds)], fast_env),
            }
            if not args.no_default_layout:
                runs["torch_default"] = lambda: run([sys.executable, "bench/pytorch_bench.py",
                                                     "--batch-size", str(n), "--seconds", str(args.seconds)])
            for name, f in runs.items():
                r = f()
                for key in ("train_images_per_sec", "generate_images_per_sec"):
                    best[(name, key)] = max(best.get((name, key), 0), r[key])
                best[(name, "peak_rss_mb")] = r.get("train_peak_rss_mb", r["peak_rss_mb"])
        rows.append((n, best))
    print(f"{'batch':>5}  {'swift img/s':>11}  {'torch fastest':>13}  {'ratio':>6}  {'torch default':>13}  {'ratio':>6}  "
          f"{'swift gen/s':>11}  {'torch gen/s':>11}  {'ratio':>6}  {'swift MB':>8}  {'torch MB':>8}  "
          f"{'BLAS-only img/s':>15}  {'ratio':>6}  {'gen/s':>6}  {'ratio':>6}")
    for n, b in rows:
        s, t = b[("swift", "train_images_per_sec")], b[("torch_fastest", "train_images_per_sec")]
        d = b.get(("torch_default", "train_images_per_sec"), float("nan"))
        sg, tg = b[("swift", "generate_images_per_sec")], b[("torch_fastest", "generate_images_per_sec")]
        print(f"{n:>5}  {s:>11.1f}  {t:>13.1f}  {s / t:>6.2f}  {d:>13.1f}  {s / d:>6.2f}  "
              f"{sg:>11.1f}  {tg:>11.1f}  {sg / tg:>6.2f}  {b[('swift', 'peak_rss_mb')]:>8.0f}  {b[('torch_fastest', 'peak_rss_mb')]:>8.0f}  "
              f"{b[('swift_blas', 'train_images_per_sec')]:>15.1f}  {b[('swift_blas', 'train_images_per_sec')] / t:>6.2f}  "
              f"{b[('swift_blas', 'generate_images_per_sec')]:>6.0f}  {b[('swift_blas', 'generate_images_per_sec')] / tg:>6.2f}")
    ratio = lambda b, key: b[("swift", key)] / b[("torch_fastest", key)]
    train = min(ratio(b, "train_images_per_sec") for _, b in rows)
    generate = min(ratio(b, "generate_images_per_sec") for _, b in rows)
    print(f"lowest ratio against PyTorch's fastest: training {train:.2f}, generation {generate:.2f} "
          f"(issue 6's goal: at least 1.25 for both: {'met' if min(train, generate) >= 1.25 else 'not met'})")


if __name__ == "__main__":
    main()
