"""Markdown tables of a same-wall-clock run (experiments/same-wall-clock.sh OUT).

    python3 experiments/summarize.py OUT
"""
import json
import os
import sys

OUT = sys.argv[1]
ROWS = [("original", "original recipe (smoothed BCE, DCGAN)"), ("non_saturating", "+ non-saturating loss"),
        ("hinge", "+ hinge loss"), ("spectral_norm", "+ spectral norm (D)"), ("ema", "+ EMA of G (0.999)"),
        ("diff_augment", "+ DiffAugment (color, translation, cutout)"),
        ("select_best", "+ best-FID checkpoint (FID every epoch)"), ("sngan", "`sngan` preset (residual, hinge, SN, EMA)"),
        ("modern", "**`modern` preset** (DiffAugment + best-FID checkpoint)")]


def seen(run):
    """Epochs begun and images seen, from metrics.jsonl."""
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    batch = json.load(open(os.path.join(run, "config.json")))["batch_size"]
    return len(lines), sum(m["iterations"] for m in lines) * batch


def evaluated(run):
    """The checkpoint `evaluate` scored by default: best, else final, else latest."""
    for p in ["best", "final", "latest"]:
        f = os.path.join(run, "checkpoints", p)
        if os.path.exists(f):
            return f"{open(f).read().strip().replace('epoch-', '')} ({p})"
    return "?"


def row(label, cls, r, run):
    epochs, images = seen(run)
    rec = "–" if r.get("recognition_rate") is None else f"{r['recognition_rate']:.3f}"
    return (f"| {label} | {cls} | {epochs} | {images:,} | {evaluated(run)} | {r['fid']:.3f} | {r['kid']:.4f} ± {r['kid_std']:.4f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {rec} |")


head = ("| recipe | class | epochs | images seen | checkpoint | FID ↓ | KID ↓ | precision ↑ | recall ↑ | recognition ↑ |\n"
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|")
print(head)
best = {}
for key, label in ROWS:
    for cls in ["cat", "automobile"]:
        path = os.path.join(OUT, key, f"{cls}.json")
        if os.path.exists(path):
            r = json.load(open(path))
            best.setdefault(cls, {})[key] = r["fid"]
            print(row(label, cls, r, os.path.join(OUT, key, cls)))
for cls, fids in best.items():
    if "original" in fids and "modern" in fids:
        o, m = fids["original"], fids["modern"]
        print(f"\n{cls}: modern FID {m:.3f} vs original {o:.3f}: {o - m:+.3f} ({100 * (o - m) / o:.0f}% lower)", end="")
print()

cond = os.path.join(OUT, "conditional")
if os.path.exists(os.path.join(cond, "conditional.json")):
    print("\n| model(s) | class | FID ↓ | KID ↓ | precision ↑ | recall ↑ | recognition ↑ |\n|---|---|---:|---:|---:|---:|---:|")
    sums = {}
    for name, label in [("original-all", "original recipe, ten models"), ("conditional", "`modern` conditional, one model")]:
        classes = json.load(open(os.path.join(cond, f"{name}.json")))["classes"]
        for cls, r in classes.items():
            print(f"| {label} | {cls} | {r['fid']:.3f} | {r['kid']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['recognition_rate']:.3f} |")
            s = sums.setdefault(name, [0, 0, 0, 0, 0, 0])
            for i, k in enumerate(["fid", "kid", "precision", "recall", "recognition_rate"]):
                s[i] += r[k]
            s[5] += 1
    for name, s in sums.items():
        n = s[5]
        print(f"| **{name} mean** | all {n} | {s[0] / n:.3f} | {s[1] / n:.4f} | {s[2] / n:.3f} | {s[3] / n:.3f} | {s[4] / n:.3f} |")
    for name in ["conditional", "original-all"]:
        run = os.path.join(cond, name)
        if name == "conditional":
            e, im = seen(run)
            print(f"\n{name}: {e} epochs begun, {im:,} images seen")
        else:
            tot = [seen(os.path.join(run, c)) for c in sorted(os.listdir(run)) if os.path.isdir(os.path.join(run, c))]
            print(f"{name}: {sum(t[1] for t in tot):,} images seen over {len(tot)} models")
