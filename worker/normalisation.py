"""The first step of every evaluation: settle the input normalisation before any attack.

A checkpoint does not say which ``(x - mean) / std`` it was trained with. The candidates are
none, the architecture's reference default, both CIFAR-10 statistics in use, ImageNet's,
(0.5, 0.5, 0.5) and the declared one; the engine measures them on the worker's device and
applies the rule (``worker.engine.normalisation``). Here the decision becomes the model to
attack, the evidence stored with the result, or the message of a stop.
"""

from typing import Any

import torch
from torch import Tensor

from models.architectures.catalog import NORMALISATIONS, NormalisationMode, Triple
from models.checkpoints.loading import LoadedModel
from worker.engine.normalisation import (
    Candidate,
    Comparison,
    Decision,
    Progress,
    Verdict,
    check_normalisation,
)
from worker.engine.suites import Suite

FLAG = "normalisation_inferred"


class NormalisationRejected(Exception):
    """A candidate beats the declared normalisation: nothing is attacked (the message says
    both accuracies and how to resubmit)."""


def candidates(loaded: LoadedModel) -> tuple[list[Candidate], str]:
    """The candidates in the order they are shown, and the name of the one in force."""
    known = [Candidate(n.name, n.mean, n.std, n.label) for n in NORMALISATIONS.values()]
    default = Candidate(
        "default", loaded.default_mean, loaded.default_std, f"{loaded.arch}'s reference default"
    )
    found = [known[0], default, *known[1:]]
    if not loaded.declared:
        return found, default.name
    match = next((c for c in found if (c.mean, c.std) == (loaded.mean, loaded.std)), None)
    if match is not None:
        return found, match.name
    declared = Candidate("declared", loaded.mean, loaded.std, "the declared normalisation")
    return [*found, declared], declared.name


def settle_normalisation(
    loaded: LoadedModel,
    images: Tensor,
    labels: Tensor,
    suite: Suite,
    *,
    mode: str = NormalisationMode.AUTO,
    device: torch.device,
    progress: Progress | None = None,
) -> tuple[LoadedModel, dict[str, Any]]:
    """The model to evaluate and the evidence; raises NormalisationRejected on a stop."""
    found, in_force = candidates(loaded)
    decision = check_normalisation(
        loaded.network,
        images,
        labels,
        found,
        in_force,
        declared=loaded.declared,
        insist=NormalisationMode(mode) == NormalisationMode.AS_DECLARED,
        params=suite.normalisation,
        device=device,
        batch_size=suite.batch_size or 256,
        progress=progress,
    )
    if decision.verdict == Verdict.STOPPED:
        raise NormalisationRejected(stop_message(decision))
    if decision.verdict == Verdict.SWITCHED:
        chosen = decision.chosen
        loaded = loaded.with_normalisation(
            chosen.mean, chosen.std, f"inferred from natural accuracy: {chosen.label}"
        )
    return loaded, evidence(decision, str(mode))


def evidence(decision: Decision, mode: str) -> dict[str, Any]:
    """What is stored with the result: every candidate's accuracy (on the images it was
    measured on: all ``n``, or fewer once out of reach), the test and the choice."""
    params = decision.params
    return {
        "mode": mode,
        "verdict": str(decision.verdict),
        "inferred": decision.verdict == Verdict.SWITCHED,
        "in_force": decision.in_force.name,
        "chosen": decision.chosen.name,
        "mean": list(decision.chosen.mean),
        "std": list(decision.chosen.std),
        "n": decision.n,
        "test": {"name": "exact McNemar", "alpha": params.alpha, "min_gain": params.min_gain},
        "candidates": [_row(c) for c in decision.comparisons],
        "summary": summary(decision),
    }


def _row(comparison: Comparison) -> dict[str, Any]:
    c = comparison.candidate
    return {
        "name": c.name,
        "label": c.label,
        "mean": list(c.mean),
        "std": list(c.std),
        "accuracy": comparison.correct / comparison.measured if comparison.measured else None,
        "correct": comparison.correct,
        "measured": comparison.measured,
        "gained": comparison.gained,
        "lost": comparison.lost,
        "p_value": comparison.p_value,
        "beats": comparison.beats,
    }


def flags(record: dict[str, Any]) -> list[dict[str, str]]:
    """The ``normalisation_inferred`` flag when the platform switched, shown with the scores."""
    return [{"code": FLAG, "message": record["summary"]}] if record["inferred"] else []


def summary(decision: Decision) -> str:
    """The decision in one or two sentences, as the submission page shows it."""
    d, k = decision, decision.n
    force = _described(d.in_force)
    test = (
        f"exact McNemar test at α = {d.params.alpha:g} and a gain of at least "
        f"{100 * d.params.min_gain:g} points"
    )
    if d.verdict == Verdict.KEPT:
        return (
            f"Evaluated with {force}: no candidate was better on the first {k} images by the rule ({test})."
        )
    best = d.best
    assert best is not None
    versus = (
        f"{_described(best.candidate)} is {_pct(best.correct, k)} accurate on the first "
        f"{k} images against {_pct(d.correct(d.in_force), k)} for {force} "
        f"(exact McNemar p = {best.p_value:.2g})"
    )
    if d.verdict == Verdict.SWITCHED:
        return f"No normalisation was declared and {versus}: the network was evaluated with it."
    if d.verdict == Verdict.INSISTED:
        return f"Evaluated with {force}, as the upload insisted (as-declared), although {versus}."
    return versus


def stop_message(decision: Decision) -> str:
    """Why a declared normalisation stopped the evaluation, and how to resubmit."""
    best = decision.best
    assert best is not None
    k, c = decision.n, best.candidate
    return (
        f"Stopped before any attack: the declared input normalisation ({_values(decision.in_force)})"
        f" gives {_pct(decision.correct(decision.in_force), k)} natural accuracy on the first "
        f"{k} evaluation images, while {c.label} ({_values(c)}) gives {_pct(best.correct, k)} "
        f"(exact McNemar p = {best.p_value:.2g} < {decision.params.alpha:g}, at least "
        f"{100 * decision.params.min_gain:g} points more). This submission does not count "
        f"against your quota. Resubmit with mean={_csv(c.mean)} and std={_csv(c.std)}, or with "
        f"normalisation=as-declared to evaluate with yours anyway."
    )


def _described(c: Candidate) -> str:
    return f"{c.label} ({_values(c)})"


def _values(c: Candidate) -> str:
    return f"mean {_csv(c.mean, ', ')}, std {_csv(c.std, ', ')}"


def _csv(values: Triple, sep: str = ",") -> str:
    return sep.join(f"{v:g}" for v in values)


def _pct(correct: int, n: int) -> str:
    return f"{100 * correct / n:.1f}%" if n else "—"
