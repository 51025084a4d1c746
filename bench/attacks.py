"""Our FGSM and PGD (ℓ∞, ℓ2) against torchattacks' FGSM, PGD and PGDL2, side by side.

    .venv/bin/python bench/attacks.py [--device cpu|cuda] [--images 256] [--steps 20]
        [--repeats 3] [--models resnet20,robust] [--no-ensemble] [--retrain]

Models: (a) the pretrained, non-robust ResNet-20 and (b) a small CNN adversarially trained
for a few minutes on the real CIFAR-10 subset (``bench/robust_model.py``, cached in
``bench/.cache/``). Images: the first ``--images`` of the subset's test split, in batches of
256 (the suites' batch size).

Like with like: both sides attack every image with the same ε, step, steps and random start
(same seed, so the same starting points), one restart, cross-entropy loss, and the timing of
each side covers producing its robust accuracy (torchattacks' attack plus one forward pass
to score its images; our attack scores as it goes). Each pair runs ``--repeats`` times in
alternating order and the fastest time of each side is kept. A speed-up counts only if our
robust accuracy is equal or lower (column "as strong").

The second table is the cost of what the suites really run per threat model: the whole
ensemble (PGD cross-entropy, PGD margin, targeted PGD, random noise), for context.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torchattacks
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fixtures import add_device, cifar10, machine, resnet20, table, timed  # noqa: E402
from bench.robust_model import robust_cnn  # noqa: E402
from worker.engine.balls import make_ball  # noqa: E402
from worker.engine.classifier import Classifier, frozen  # noqa: E402
from worker.engine.ensemble import Ensemble, worst_case  # noqa: E402
from worker.engine.fgsm import FGSM  # noqa: E402
from worker.engine.memory import retain_freed_memory  # noqa: E402
from worker.engine.pgd import PGD  # noqa: E402
from worker.engine.suites import Loss, PGDParams, ThreatModel, get_suite  # noqa: E402

BATCH = 256
Run = Callable[[Tensor, Tensor], Tensor]


def _batched(run: Run, images: Tensor, labels: Tensor) -> Tensor:
    """Per-image robustness (N,) from ``run`` applied batch by batch."""
    parts = [run(x, y) for x, y in zip(images.split(BATCH), labels.split(BATCH), strict=True)]
    return torch.cat(parts).float()


def _theirs(model: nn.Module, attack: torchattacks.Attack) -> Run:
    def run(x: Tensor, y: Tensor) -> Tensor:
        adversarial = attack(x, y)
        with torch.no_grad():
            return model(adversarial).argmax(dim=1) == y

    return run


def _ours(attack: Callable) -> Run:
    return lambda x, y: attack(x, y).correct


def _pair(model: nn.Module, kind: str, params: PGDParams | float) -> tuple[Run, Run]:
    """(torchattacks, ours) for ``kind`` in fgsm, linf, l2 at the same budget."""
    judge = Classifier(model)
    if kind == "fgsm":
        return _theirs(model, torchattacks.FGSM(model, eps=params)), _ours(FGSM(judge, eps=params))
    reference = torchattacks.PGD if kind == "linf" else torchattacks.PGDL2
    theirs = reference(model, eps=params.eps, alpha=params.step_size, steps=params.steps, random_start=True)
    ours = PGD(
        judge,
        make_ball(params.threat, params.eps),
        steps=params.steps,
        step_size=params.step_size,
        loss=Loss.CE,
        random_start=True,
    )
    return _theirs(model, theirs), _ours(ours)


def compare(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    kind: str,
    params: PGDParams | float,
    repeats: int,
    device: torch.device,
) -> dict[str, float]:
    """Fastest time and robust accuracy of each side, the same seed before every run."""
    runs = dict(zip(("theirs", "ours"), _pair(model, kind, params), strict=True))
    best: dict[str, float] = {}
    accuracy: dict[str, float] = {}
    for repeat in range(repeats):
        for side in ("theirs", "ours") if repeat % 2 == 0 else ("ours", "theirs"):
            torch.manual_seed(0)
            seconds, robust = timed(lambda side=side: _batched(runs[side], images, labels), device)
            best[side] = min(best.get(side, float("inf")), seconds)
            accuracy.setdefault(side, float(robust.mean()))
    return {
        "theirs_s": best["theirs"],
        "ours_s": best["ours"],
        "theirs_acc": accuracy["theirs"],
        "ours_acc": accuracy["ours"],
    }


def ensemble(
    model: nn.Module, images: Tensor, labels: Tensor, params: PGDParams, device: torch.device
) -> tuple[float, float]:
    """Seconds and worst-case accuracy of the suite's whole ensemble for one threat model."""
    judge = Classifier(model)
    attacks = Ensemble(judge, params)

    def run(x: Tensor, y: Tensor) -> Tensor:
        return worst_case(attacks(x, y, judge.correct(x, y)))

    torch.manual_seed(0)
    seconds, robust = timed(lambda: _batched(run, images, labels), device)
    return seconds, float(robust.mean())


def main() -> None:
    """Run both sides on both models and print the table.

    Long because it is the benchmark read top to bottom: per model, per attack, both sides
    timed, then the ensembles, each block one row of the printed tables.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device(parser)
    parser.add_argument("--images", type=int, default=256, help="first N test images (default 256)")
    parser.add_argument("--steps", type=int, default=20, help="PGD steps (default 20, the class suite)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; the fastest counts")
    parser.add_argument("--models", default="resnet20,robust", help="comma-separated: resnet20, robust")
    parser.add_argument("--no-ensemble", action="store_true", help="skip the full-ensemble table")
    parser.add_argument("--retrain", action="store_true", help="train the robust CNN again")
    args = parser.parse_args()
    retain_freed_memory()  # as evaluate() does on a CPU; both sides benefit alike
    device = torch.device(args.device)
    suite = get_suite("class")
    linf = PGDParams(ThreatModel.LINF, eps=8 / 255, step_size=2 / 255, steps=args.steps)
    l2 = PGDParams(ThreatModel.L2, eps=0.5, step_size=0.1, steps=args.steps)
    images, labels = cifar10("test", args.images)
    images, labels = images.to(device), labels.to(device)
    builders = {
        "resnet20": lambda: resnet20().to(device).eval(),
        "robust": lambda: robust_cnn(device, retrain=args.retrain),
    }
    print(f"machine: {machine(device)}; {len(images)} test images, batches of {BATCH}\n", flush=True)
    rows, ensemble_rows = [], []
    for name in args.models.split(","):
        model = builders[name]()
        with frozen(model):
            for kind, label, params, budget in (
                ("fgsm", "FGSM", suite.fgsm.eps, "ε 8/255, 1 step"),
                ("linf", "PGD ℓ∞", linf, f"ε 8/255, {args.steps} × 2/255"),
                ("l2", "PGD ℓ2", l2, f"ε 0.5, {args.steps} × 0.1"),
            ):
                r = compare(model, images, labels, kind, params, args.repeats, device)
                rows.append(
                    [
                        name,
                        label,
                        budget,
                        f"{r['theirs_s']:.2f}",
                        f"{r['ours_s']:.2f}",
                        f"{r['theirs_s'] / r['ours_s']:.2f}×",
                        f"{100 * r['theirs_acc']:.1f}%",
                        f"{100 * r['ours_acc']:.1f}%",
                        "yes" if r["ours_acc"] <= r["theirs_acc"] else "NO",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
            if not args.no_ensemble:
                for label, params in (("ℓ∞", suite.pgd_linf), ("ℓ2", suite.pgd_l2)):
                    seconds, accuracy = ensemble(model, images, labels, params, device)
                    ensemble_rows.append([name, label, f"{seconds:.2f}", f"{100 * accuracy:.1f}%"])
                    print(" | ".join(ensemble_rows[-1]), flush=True)
    print()
    print(
        table(
            [
                "model",
                "attack",
                "budget",
                "torchattacks s",
                "ours s",
                "speed-up",
                "torchattacks robust acc",
                "ours robust acc",
                "as strong",
            ],
            rows,
        )
    )
    if ensemble_rows:
        print(
            "\nThe class suite's full ensemble per threat model "
            "(PGD-CE, PGD-margin, 3 targeted, 20 noise draws):\n"
        )
        print(table(["model", "threat", "ensemble s", "ensemble robust acc"], ensemble_rows))


if __name__ == "__main__":
    main()
