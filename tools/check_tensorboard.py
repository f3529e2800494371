#!/usr/bin/env python3
"""Reads a run's TensorBoard events file with the `tensorboard` package's own reader (EventAccumulator) and
checks it: every scalar tag and the sample image logged once per epoch, steps 1…EPOCHS, values equal to
metrics.jsonl, the images valid PNGs of the sample grid's size.

    python3 tools/check_tensorboard.py RUN_FOLDER
"""
import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator

TAGS = {"loss/d": "loss_d", "loss/g": "loss_g", "D/real": "d_real", "D/fake": "d_fake",
        "accuracy/real": "accuracy_real", "accuracy/fake": "accuracy_fake", "speed/images_per_sec": "images_per_sec"}


def main(run):
    metrics = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
    epochs = [m["epoch"] for m in metrics]
    acc = event_accumulator.EventAccumulator(run, size_guidance={event_accumulator.IMAGES: 0, event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()
    problems = []
    for tag, key in TAGS.items():
        if tag not in tags["scalars"]:
            problems.append(f"scalar {tag} missing")
            continue
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        if steps != epochs:
            problems.append(f"{tag}: steps {steps}, metrics.jsonl has epochs {epochs}")
        for e, m in zip(events, metrics):
            if abs(e.value - m[key]) > 1e-5 * max(1, abs(m[key])):
                problems.append(f"{tag} step {e.step}: {e.value} against {m[key]} in metrics.jsonl")
    images = acc.Images("samples") if "samples" in tags["images"] else []
    if [i.step for i in images] != epochs:
        problems.append(f"samples: image steps {[i.step for i in images]}, epochs {epochs}")
    for i in images:
        if not i.encoded_image_string.startswith(b"\x89PNG\r\n\x1a\n") or i.width <= 0 or i.height <= 0:
            problems.append(f"samples step {i.step}: not a PNG of positive size")
    print(f"{run}: tensorboard read {len(tags['scalars'])} scalar tags and {len(images)} images over steps {epochs}"
          + ("" if not problems else "; problems: " + "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
