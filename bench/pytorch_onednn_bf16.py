"""PyTorch's own oneDNN (bundled with torch) on the standard CNN's convolutions in bfloat16, per primitive.

    ONEDNN_VERBOSE=1 OMP_NUM_THREADS=2 python3 bench/pytorch_onednn_bf16.py > /tmp/verbose.txt
    python3 bench/pytorch_onednn_bf16.py --summarise /tmp/verbose.txt

The first form runs each layer (batch 128, channels_last, bfloat16 tensors) forward and backward three times with
oneDNN's verbose log on; the second prints the best time per primitive in µs per sample, beside the implementation
oneDNN chose — to compare with our oneDNN 2.6's (`bench/onednn_verbose_summary.py` on a `cifar-gan bench` log):
whether a newer oneDNN would have faster bfloat16 kernels for these shapes (docs/performance.md, session 15).
"""
import collections
import sys

SHAPES = [("D.2", 32, 32, 32, 4, 2), ("D.4", 32, 64, 16, 3, 1), ("D.6", 64, 64, 16, 4, 2), ("D.8", 64, 128, 8, 3, 1),
          ("D.10", 128, 128, 8, 4, 2), ("D.12", 128, 256, 4, 3, 1), ("G.4 mirror", 128, 256, 8, 4, 2),
          ("G.7 mirror", 64, 128, 16, 4, 2), ("G.10 mirror", 32, 64, 32, 4, 2)]
N = 128


def run():
    import torch
    torch.set_num_threads(2)
    for _, ic, oc, h, k, s in SHAPES:
        x = torch.randn(N, ic, h, h).to(torch.bfloat16).to(memory_format=torch.channels_last).requires_grad_()
        w = torch.randn(oc, ic, k, k).to(torch.bfloat16).to(memory_format=torch.channels_last).requires_grad_()
        g = torch.randn_like(torch.nn.functional.conv2d(x, w, padding=1, stride=s))
        for _ in range(3):
            torch.nn.functional.conv2d(x, w, padding=1, stride=s).backward(g)


def summarise(path):
    best = collections.defaultdict(lambda: float("inf"))
    for line in open(path):
        f = line.strip().split(",")
        if len(f) < 10 or "exec" not in f[:4] or "convolution" not in f[4:6]:
            continue
        i = f.index("convolution")   # oneDNN 3.x writes "primitive,exec,cpu,convolution,…"; 2.x one field fewer
        implementation, pass_, problem, ms = f[i + 1], f[i + 2], f[-2], float(f[-1])
        key = (problem, pass_, implementation)
        best[key] = min(best[key], ms * 1000 / N)
    for (problem, pass_, implementation), us in sorted(best.items()):
        print(f"{problem:60s} {pass_:18s} {us:7.1f} µs/sample  {implementation}")


if __name__ == "__main__":
    summarise(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--summarise" else run()
