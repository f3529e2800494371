"""Per-primitive convolution times from an `ONEDNN_VERBOSE=1` log, in microseconds per sample.

    ONEDNN_VERBOSE=1 cifar-gan bench --preset cnn --conditional --seconds 4 > ours.txt 2>&1
    ONEDNN_VERBOSE=1 python3 bench/pytorch_bench.py --config cnn-c.json --channels-last --seconds 4 > torch.txt 2>&1
    python3 bench/onednn_verbose_summary.py ours.txt torch.txt

Sums the exec time of every convolution primitive by problem (the problem string without its mini-batch) and
pass, and divides by the samples those calls covered: cifar-gan calls oneDNN on batch chunks and PyTorch on the
whole batch, so per-sample times are what compares. Reads both verbose formats (oneDNN 2.x and 3.x).
"""
import collections
import re
import sys


def summarise(path):
    total = collections.defaultdict(float)
    samples = collections.Counter()
    implementation = {}
    for line in open(path, errors="replace"):
        if ",exec," not in line:
            continue
        fields = line.strip().split(",")
        if "convolution" not in fields:
            continue
        i = fields.index("convolution")
        m = re.match(r"(?:g\d+)?mb(\d+)(.*)", fields[-2])
        if not m:
            continue
        key = (m.group(2), fields[i + 2])
        total[key] += float(fields[-1])
        samples[key] += int(m.group(1))
        implementation[key] = fields[i + 1]
    return total, samples, implementation


for path in sys.argv[1:]:
    total, samples, implementation = summarise(path)
    print(path)
    for key in sorted(total):
        problem, prop = key
        print(f"  {problem[:52]:52s} {prop:18s} {1000 * total[key] / samples[key]:8.1f} us/sample  {implementation[key]}")
