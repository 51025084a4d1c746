"""``arena evaluate`` as a whole process beside a plain torchattacks script, same images.

    .venv/bin/python bench/end_to_end.py [--runs 3] [--images 256] [--suite class]

Both sides are timed as whole processes (interpreter start, imports, loading, attacks,
output), on the same machine, alternating, ``--runs`` times each; the medians and their
ratio are printed, with both sides' accuracies. The model is a class-format project folder
holding the pretrained ResNet-20 (``bench/class_project.py``, built under ``bench/.cache/``),
the images the first ``--images`` of the class split (the first 1024 CIFAR-10 training
images). The peer, ``bench/torchattacks_class.py``, runs torchattacks' FGSM, PGD ℓ∞ and PGDL2
at the class suite's budgets with the suite's random starts (same seeds); ``arena evaluate``
runs the whole suite (its ensembles included). A speed-up counts only if every robust
accuracy of ours is equal or lower.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.class_project import class_split, resnet20_project  # noqa: E402
from bench.fixtures import ROOT, table  # noqa: E402

KEYS = ("natural", "fgsm", "pgd_linf", "pgd_l2")


def run(command: list[str]) -> tuple[float, str]:
    """Wall seconds of ``command`` as a process, and its standard output."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    """Time both processes, alternating, and print medians, ratio and accuracies.

    Long because it is the benchmark read top to bottom: the two command lines, the
    alternating runs, then the table and the verdict.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--images", type=int, default=256, help="first N class-split images")
    parser.add_argument("--suite", default="class")
    args = parser.parse_args()
    project, eval_set = resnet20_project(), class_split()
    bin_dir = Path(sys.executable).parent
    commands = {
        "arena evaluate": [
            str(bin_dir / "arena"),
            "evaluate",
            str(project),
            "--suite",
            args.suite,
            "--limit",
            str(args.images),
            "--eval-set",
            str(eval_set),
            "--device",
            "cpu",
            "--json",
        ],
        "torchattacks script": [
            sys.executable,
            str(ROOT / "bench" / "torchattacks_class.py"),
            str(project),
            str(eval_set),
            "--limit",
            str(args.images),
        ],
    }
    seconds: dict[str, list[float]] = {side: [] for side in commands}
    accuracy: dict[str, dict[str, float]] = {}
    for repeat in range(args.runs):
        order = list(commands) if repeat % 2 == 0 else list(reversed(commands))
        for side in order:
            elapsed, out = run(commands[side])
            seconds[side].append(elapsed)
            result = json.loads(out.strip().splitlines()[-1])
            accuracy[side] = {
                k: float(result[k]["accuracy"] if isinstance(result[k], dict) else result[k]) for k in KEYS
            }
            print(f"run {repeat + 1}: {side}: {elapsed:.2f} s", flush=True)
    ours, theirs = (statistics.median(seconds[s]) for s in commands)
    print(
        f"\n{args.images} class-split images, {args.suite} suite, {args.runs} runs per side "
        f"(alternating), medians:\n"
    )
    rows = [
        [
            side,
            f"{statistics.median(seconds[side]):.2f}",
            " ".join(f"{s:.1f}" for s in seconds[side]),
            *(f"{100 * accuracy[side][k]:.2f}%" for k in KEYS),
        ]
        for side in commands
    ]
    print(table(["process", "median s", "runs s", *KEYS], rows))
    weaker = [k for k in KEYS[1:] if accuracy["arena evaluate"][k] > accuracy["torchattacks script"][k]]
    verdict = "yes" if not weaker else f"NO ({', '.join(weaker)})"
    print(
        f"\nratio (arena evaluate / torchattacks script): {ours / theirs:.2f}×; "
        f"every robust accuracy equal or lower: {verdict}"
    )


if __name__ == "__main__":
    main()
