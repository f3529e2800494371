"""Runs `cifar-gan bench` and the PyTorch peer back to back, for every recipe, and prints the ratios.

    python3 bench/compare.py [--recipes original,cnn+c,...] [--batch-sizes 64,128] [--seconds 10] [--rounds 2]
                             [--precision fp32|bf16|both] [--blas] [--default-layout]

A recipe is a preset name, `+c` for its class-conditional model and `/nearest` for nearest-neighbour
upsampling in G (`cnn+c/nearest`). The PyTorch peer (bench/pytorch_bench.py) builds the same recipe from the
configuration `cifar-gan bench --print-config` prints. PyTorch runs at its fastest known setting: channels_last
plus glibc malloc tunables that stop it returning large buffers to the kernel each step (and, with
`--default-layout`, also in its default layout). cifar-gan runs with its default kernels (oneDNN where
installed; with `--blas` also with BLAS kernels only, what a machine without oneDNN gets). With `--precision
bf16` both run in bfloat16: cifar-gan's `--precision bf16`, PyTorch's `torch.autocast`. Rounds alternate the
programs so that drift in this shared machine's speed hits both alike; the ratio uses the best round of each.
The last line names the lowest ratios over every recipe. Needs `swift build -c release` (done here) and
`pip install torch`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=8589934592"
ALL = "original,modern,modern+c,sngan,sngan+c,cnn,cnn+c,cnn+c/nearest,cnn-ada+c"


def run(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def recipe_flags(recipe):
    name, _, upsampling = recipe.partition("/")
    preset = name.removesuffix("+c")
    flags = ["--preset", preset] + (["--conditional"] if name.endswith("+c") else [])
    return flags + (["--upsampling", upsampling] if upsampling else [])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--recipes", default=ALL)
    p.add_argument("--batch-sizes", default="64,128")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--precision", choices=["fp32", "bf16", "both"], default="fp32")
    p.add_argument("--blas", action="store_true", help="also cifar-gan with BLAS kernels only")
    p.add_argument("--default-layout", action="store_true", help="also PyTorch in its default (NCHW) layout")
    p.add_argument("--json", help="append every measurement to this JSON-lines file")
    args = p.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "cifar-gan"], cwd=ROOT, check=True)
    swift = os.path.join(ROOT, ".build", "release", "cifar-gan")
    fast_env = dict(os.environ, GLIBC_TUNABLES=TUNABLES)
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    cpu = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    isa = "avx512_bf16" if "avx512_bf16" in cpu else "avx512f" if "avx512f" in cpu else "avx2" if "avx2" in cpu else "other"
    rows = []
    for recipe in args.recipes.split(","):
        flags = recipe_flags(recipe)
        config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        config.write(subprocess.run([swift, "bench", "--print-config"] + flags, cwd=ROOT, check=True,
                                    capture_output=True, text=True).stdout)
        config.close()
        for precision in precisions:
            for n in [int(b) for b in args.batch_sizes.split(",")]:
                common = ["--batch-size", str(n), "--seconds", str(args.seconds)]
                swift_cmd = [swift, "bench", "--json"] + flags + common + ["--precision", precision]
                torch_cmd = [sys.executable, "bench/pytorch_bench.py", "--config", config.name] + common + \
                    (["--bf16"] if precision == "bf16" else [])
                programs = {"swift": lambda: run(swift_cmd),
                            "torch": lambda: run(torch_cmd + ["--channels-last"], fast_env)}
                if args.blas:
                    programs["swift_blas"] = lambda: run(swift_cmd, dict(os.environ, CIFAR_GAN_CONVOLUTION="blas"))
                if args.default_layout:
                    programs["torch_default"] = lambda: run(torch_cmd)
                best = {}
                for _ in range(args.rounds):
                    for name, f in programs.items():
                        r = f()
                        for key in ("train_images_per_sec", "generate_images_per_sec"):
                            best[(name, key)] = max(best.get((name, key), 0), r[key])
                        best[(name, "mb")] = r.get("train_peak_rss_mb", r["peak_rss_mb"])
                rows.append((recipe, precision, n, best))
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps({"recipe": recipe, "precision": precision, "batch": n, "isa": isa,
                                            **{f"{a}.{b}": v for (a, b), v in best.items()}}) + "\n")
        os.unlink(config.name)
    print(f"instruction set: {isa}; PyTorch at its fastest (channels_last, malloc tunables)")
    extra = ("  BLAS-only  ratio" if args.blas else "") + ("  torch NCHW  ratio" if args.default_layout else "")
    print(f"{'recipe':<15} {'prec':<4} {'batch':>5}  {'swift img/s':>11}  {'torch img/s':>11}  {'ratio':>5}  "
          f"{'swift gen/s':>11}  {'torch gen/s':>11}  {'ratio':>5}  {'swift MB':>8}  {'torch MB':>8}" + extra)
    for recipe, precision, n, b in rows:
        s, t = b[("swift", "train_images_per_sec")], b[("torch", "train_images_per_sec")]
        sg, tg = b[("swift", "generate_images_per_sec")], b[("torch", "generate_images_per_sec")]
        line = (f"{recipe:<15} {precision:<4} {n:>5}  {s:>11.1f}  {t:>11.1f}  {s / t:>5.2f}  {sg:>11.0f}  {tg:>11.0f}  "
                f"{sg / tg:>5.2f}  {b[('swift', 'mb')]:>8.0f}  {b[('torch', 'mb')]:>8.0f}")
        if args.blas:
            sb = b[("swift_blas", "train_images_per_sec")]
            line += f"  {sb:>9.1f}  {sb / t:>5.2f}"
        if args.default_layout:
            d = b[("torch_default", "train_images_per_sec")]
            line += f"  {d:>10.1f}  {s / d:>5.2f}"
        print(line)
    for precision in precisions:
        mine = [(r, b) for r, pr, _, b in rows if pr == precision]
        ratio = lambda b, key: b[("swift", key)] / b[("torch", key)]
        train = min(mine, key=lambda rb: ratio(rb[1], "train_images_per_sec"))
        generate = min(mine, key=lambda rb: ratio(rb[1], "generate_images_per_sec"))
        lt, lg = ratio(train[1], "train_images_per_sec"), ratio(generate[1], "generate_images_per_sec")
        print(f"lowest ratio against PyTorch's fastest ({precision}, {isa}): training {lt:.2f} ({train[0]}), "
              f"generation {lg:.2f} ({generate[0]}) (goal: at least 1.25 for both: "
              f"{'met' if min(lt, lg) >= 1.25 else 'not met'})")


if __name__ == "__main__":
    main()
