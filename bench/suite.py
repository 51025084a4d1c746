"""Wall time of a whole suite for the pretrained ResNet-20 (or any zoo network), stage by stage.

    .venv/bin/python bench/suite.py [--device cpu|cuda] [--suite class] [--images 1024]
        [--sigma 0.25] [--arch wrn-34-10]

Runs ``worker.engine.evaluate.evaluate`` exactly as a worker does, on the first ``--images``
images of the subset's training split (the class suite's evaluation set is the first 1024),
and times each stage from the engine's progress reports. ``--images`` smaller than the
suite's count shrinks the run (the table says how many images were used). Smoothing runs
only with ``--sigma``; the class suite certifies 500 images at N = 100 000, which is hours on
a CPU, so on a CPU pass ``--suite smoke`` to see the smoothing stage.

``--arch`` times another zoo network at its initial weights (no pretrained weights here).
The images are then labelled with the network's own predictions, so every image is correct
and every attack starts on all of them, as on a model right on every image; how soon the
attacks succeed (and stop early) still depends on the weights, so a trained robust model,
whose images resist all the steps, takes longer per image than this.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fixtures import add_device, cifar10, machine, resnet20, table  # noqa: E402
from models.registry import build_model  # noqa: E402
from worker.engine.evaluate import evaluate  # noqa: E402
from worker.engine.suites import get_suite  # noqa: E402


class StageClock:
    """Seconds per stage, from the engine's ``progress(stage, done, total)`` calls."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.stage: str | None = None
        self.since = time.perf_counter()

    def __call__(self, stage: str | None, done: int = 0, total: int = 0) -> None:
        if stage == self.stage:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        key = self.stage or "setup (probes)"
        self.seconds[key] = self.seconds.get(key, 0.0) + now - self.since
        self.stage, self.since = stage, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device(parser)
    parser.add_argument("--suite", default="class", help="class, robustbench or smoke (default class)")
    parser.add_argument("--images", type=int, default=None, help="first N training images (default: suite's)")
    parser.add_argument("--sigma", type=float, default=None, help="also certify with smoothing at this σ")
    parser.add_argument("--arch", default=None, help="a zoo network at its initial weights, "
                        "on images labelled by itself (default: the pretrained ResNet-20)")
    args = parser.parse_args()
    device = torch.device(args.device)
    suite = get_suite(args.suite)
    count = args.images or suite.images or 1024
    images, labels = cifar10("train", count)
    if args.arch:
        torch.manual_seed(0)
        model = build_model(args.arch).eval()
        with torch.no_grad():  # plain tensors: the engine's gradients go through them later
            labels = torch.cat([model(batch).argmax(1) for batch in images.split(256)])
        name = f"{args.arch} (initial weights, images labelled by itself)"
    else:
        model, name = resnet20(), "ResNet-20"
    print(f"machine: {machine(device)}", flush=True)
    print(f"suite {suite.name} v{suite.version}, {name}, {len(images)} images"
          f"{' (shrunk from ' + str(suite.images) + ')' if suite.images and count < suite.images else ''}"
          f"{f', σ = {args.sigma}' if args.sigma else ''}\n", flush=True)
    clock = StageClock(device)
    start = time.perf_counter()
    result = evaluate(model, images, labels, suite, sigma=args.sigma, device=device, seed=0, progress=clock)
    clock(None)
    total = time.perf_counter() - start
    rows = []
    for stage, seconds in clock.seconds.items():
        accuracy = result.get(stage, {}).get("accuracy")
        rows.append([stage, f"{seconds:.2f}", f"{100 * seconds / total:.0f}%",
                     "" if accuracy is None else f"{100 * accuracy:.2f}%"])
    rows.append(["total", f"{total:.2f}", "100%", ""])
    print(table(["stage", "seconds", "share", "accuracy"], rows))


if __name__ == "__main__":
    main()
