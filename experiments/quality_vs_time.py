"""Evaluation and summary of the quality-versus-time study (experiments/quality-vs-time.sh).

    python3 experiments/quality_vs_time.py evaluate OUT [--marks 15,30,60,120] [--count 2000] [--bin PATH] [--runs A,B]
    python3 experiments/quality_vs_time.py summarize OUT [--svg FILE]

`evaluate` finds, for each run folder OUT/*/ (a conditional run) and each mark, the epoch checkpoint whose
cumulative training time (metrics.jsonl "seconds") is nearest the mark, scores it with
`cifar-gan evaluate --run RUN --checkpoint EPOCH --count N --json` (every class, latent seed 0, against each
class's training images), and appends one line per (run, mark) to OUT/results.jsonl; lines already there are
skipped, so it can run while the study trains and again later. `summarize` prints the markdown table (mean
over the ten classes) and draws FID against minutes as an SVG.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

METRICS = ["fid", "kid", "precision", "recall", "recognition_rate"]


def epochs_of(run):
    """[(epoch, cumulative minutes, cumulative images)] from a run's metrics.jsonl."""
    cfg = json.load(open(os.path.join(run, "config.json")))
    out, seconds, images = [], 0.0, 0
    for line in open(os.path.join(run, "metrics.jsonl")):
        m = json.loads(line)
        seconds += m["seconds"]
        images += m["iterations"] * cfg["batch_size"]
        out.append((m["epoch"], seconds / 60, images))
    return out


def runs_in(out):
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(out, "*", "config.json")))


def evaluate(a):
    results = os.path.join(a.out, "results.jsonl")
    done = set()
    if os.path.exists(results):
        for line in open(results):
            r = json.loads(line)
            done.add((r["run"], r["mark"], r["count"]))
    for run in runs_in(a.out):
        name = os.path.basename(run)
        if a.runs and name not in a.runs.split(","):
            continue
        epochs = epochs_of(run)
        if not epochs:
            continue
        for mark in [float(m) for m in a.marks.split(",")]:
            if (name, mark, a.count) in done:
                continue
            finished = os.path.exists(os.path.join(run, "checkpoints", "final"))
            if epochs[-1][1] < mark and not finished:
                continue   # the run has not reached this mark yet: a later epoch may be nearer
            epoch, minutes, images = min(epochs, key=lambda e: abs(e[1] - mark))
            if abs(minutes - mark) > max(6.0, 0.25 * mark):
                continue   # the run stopped short of this mark
            if not os.path.isdir(os.path.join(run, "checkpoints", f"epoch-{epoch:04d}")):
                print(f"{name}: no checkpoint for epoch {epoch}", file=sys.stderr)
                continue
            cmd = [a.bin, "evaluate", "--run", run, "--checkpoint", str(epoch), "--count", str(a.count), "--json"]
            print(f"{name} @ {mark:g} min: epoch {epoch} ({minutes:.1f} min, {images} images): {' '.join(cmd)}", flush=True)
            report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            # a per-class run reports its one class at the top level
            classes = report["classes"] if "classes" in report else {report["name"]: report}
            mean = {k: sum(c[k] for c in classes.values()) / len(classes) for k in METRICS}
            line = {"run": name, "mark": mark, "epoch": epoch, "minutes": round(minutes, 2), "images": images,
                    "count": a.count, "mean": mean, "classes": classes, "command": " ".join(cmd)}
            with open(results, "a") as f:
                f.write(json.dumps(line) + "\n")
            print(f"  mean FID {mean['fid']:.3f}, precision {mean['precision']:.3f}, recall {mean['recall']:.3f}, "
                  f"recognition {mean['recognition_rate']:.3f}", flush=True)


def svg_chart(series, path, title):
    """FID against minutes, one line per run: a small hand-written SVG (no plotting library needed)."""
    W, H, L, R, T, B = 700, 400, 60, 190, 40, 50
    xs = [p[0] for s in series.values() for p in s] or [0]
    ys = [p[1] for s in series.values() for p in s] or [0]
    xmax = max(125, max(xs) * 1.05)
    ymax = max(ys) * 1.15 if ys else 1
    def X(v): return L + (W - L - R) * v / xmax
    def Y(v): return H - B - (H - T - B) * v / ymax
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    e = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">minutes of training (one thread)</text>',
         f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">mean FID over the classes of a run (judge features)</text>']
    for m in [0, 15, 30, 60, 90, 120, 180, 240, 300]:
        if m <= xmax:
            e.append(f'<line x1="{X(m):.1f}" y1="{H - B}" x2="{X(m):.1f}" y2="{H - B + 5}" stroke="black"/>'
                     f'<text x="{X(m):.1f}" y="{H - B + 18}" text-anchor="middle">{m}</text>')
    step = 10 ** int(f"{ymax:e}".split("e")[1])
    if ymax / step < 3: step /= 2
    v = 0.0
    while v <= ymax:
        e.append(f'<line x1="{L - 5}" y1="{Y(v):.1f}" x2="{W - R}" y2="{Y(v):.1f}" stroke="#ddd"/>'
                 f'<text x="{L - 8}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    for i, (name, pts) in enumerate(sorted(series.items())):
        c = colors[i % len(colors)]
        pts = sorted(pts)
        e.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="' + " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts) + '"/>')
        e += [f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3.5" fill="{c}"/>' for x, y in pts]
        e.append(f'<line x1="{W - R + 12}" y1="{T + 14 + 20 * i}" x2="{W - R + 32}" y2="{T + 14 + 20 * i}" stroke="{c}" stroke-width="2"/>'
                 f'<text x="{W - R + 38}" y="{T + 18 + 20 * i}">{name}</text>')
    e.append("</svg>")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(e) + "\n")
    os.replace(tmp, path)


def summarize(a):
    rows = [json.loads(line) for line in open(os.path.join(a.out, "results.jsonl"))]
    rows.sort(key=lambda r: (r["run"], r["mark"]))
    per_class = [r for r in rows if len(r["classes"]) == 1]
    rows = [r for r in rows if len(r["classes"]) > 1]
    print("| run | mark (min) | checkpoint | minutes | images seen | samples/class | FID ↓ | KID ↓ | precision ↑ | recall ↑ | recognition ↑ |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m = r["mean"]
        print(f"| {r['run']} | {r['mark']:g} | epoch {r['epoch']} | {r['minutes']:.1f} | {r['images']:,} | {r['count']} | "
              f"{m['fid']:.3f} | {m['kid']:.4f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['recognition_rate']:.3f} |")
    if per_class:
        # Each per-class model beside the conditional models' FID for the same class at the same mark.
        conditional = {(r["run"], r["mark"]): r for r in rows}
        print("\n| per-class run | mark (min) | checkpoint | minutes | images seen | FID ↓ | precision ↑ | recall ↑ | recognition ↑ | the conditional runs' FID for this class at this mark |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
        for r in per_class:
            (name, c), = r["classes"].items()
            beside = ", ".join(f"{run} {q['classes'][name]['fid']:.3f}" for (run, mark), q in sorted(conditional.items())
                               if mark == r["mark"] and name in q["classes"] and q["count"] == r["count"])
            print(f"| {r['run']} | {r['mark']:g} | epoch {r['epoch']} | {r['minutes']:.1f} | {r['images']:,} | {c['fid']:.3f} | "
                  f"{c['precision']:.3f} | {c['recall']:.3f} | {c['recognition_rate']:.3f} | {beside} |")
    if a.svg:
        series = {}
        for r in rows:
            # conditional runs only: a per-class run's FID is one class's, not a mean over ten
            if r["count"] == (a.count or r["count"]) and len(r["classes"]) > 1:
                series.setdefault(r["run"], []).append((r["minutes"], r["mean"]["fid"]))
        counts = sorted({r["count"] for r in rows if r["count"] == (a.count or r["count"])})
        svg_chart(series, a.svg, f"Quality against training time: conditional models, CIFAR-10 ({'/'.join(map(str, counts))} samples per class)")
        print(f"\nchart: {a.svg}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("out")
    e.add_argument("--marks", default="15,30,60,120")
    e.add_argument("--count", type=int, default=2000)
    e.add_argument("--bin", default=None)
    e.add_argument("--runs", default=None, help="only these run folders (comma-separated names)")
    s = sub.add_parser("summarize")
    s.add_argument("out")
    s.add_argument("--svg")
    s.add_argument("--count", type=int, default=None, help="chart only the evaluations with this many samples per class")
    a = p.parse_args()
    if a.what == "evaluate":
        a.bin = a.bin or os.path.join(a.out, "bin", "cifar-gan")
        evaluate(a)
    else:
        summarize(a)


if __name__ == "__main__":
    main()
