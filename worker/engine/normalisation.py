"""Which input normalisation a network was trained with, read from its natural accuracy.

A checkpoint carries no record of the ``(x - mean) / std`` its training applied, and a wrong
guess evaluates a different model. So before any attack every candidate normalisation is
tried on the same first K labelled images, and each is compared with the one in force by an
exact McNemar test (the two-sided binomial test on the images exactly one of the two gets
right). A candidate *beats* the one in force when the test rejects at level ``alpha`` and its
accuracy is at least ``min_gain`` higher. Which verdict follows (keep, switch, stop) is
``decide``'s: switch with nothing declared, stop with a declaration, keep when insisted on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor, nn

from worker.engine.diagnosis import channels_last_agrees
from worker.engine.suites import NormalisationParams

Triple = tuple[float, float, float]
Progress = Callable[[str, int, int], None]
STAGE = "normalisation"


@dataclass(frozen=True)
class Candidate:
    name: str
    mean: Triple
    std: Triple
    label: str = ""


class Verdict(StrEnum):
    KEPT = "kept"  # nothing beats the one in force
    SWITCHED = "switched"  # nothing was declared and a candidate beats the default
    STOPPED = "stopped"  # a candidate beats the declared normalisation
    INSISTED = "insisted"  # a candidate beats the one in force, kept because the team insisted


@dataclass(frozen=True)
class Comparison:
    """One candidate against the one in force on the same images (``None`` for itself)."""

    candidate: Candidate
    correct: int
    gained: int | None = None  # images it gets right and the one in force gets wrong
    lost: int | None = None  # the converse
    p_value: float | None = None
    beats: bool = False


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    in_force: Candidate
    chosen: Candidate
    best: Comparison | None  # the strongest candidate that beats the one in force, if any
    comparisons: list[Comparison]
    n: int
    params: NormalisationParams

    def correct(self, candidate: Candidate) -> int:
        """Images of the ``n`` that ``candidate`` classifies correctly."""
        return next(c.correct for c in self.comparisons if c.candidate.name == candidate.name)

    def accuracy(self, candidate: Candidate) -> float:
        return self.correct(candidate) / self.n


def exact_mcnemar(reference: Tensor, candidate: Tensor) -> tuple[int, int, float]:
    """(gained, lost, two-sided exact p-value) of ``candidate`` against ``reference``.

    Both are per-image booleans on the same images; only the discordant images count: under
    the null each is a fair coin, so the p-value is twice the binomial tail of the rarer side
    (statsmodels' ``mcnemar(exact=True)``, computed with ``scipy.special.bdtr``: importing
    statsmodels would add most of a second to every evaluation's start).
    """
    from scipy.special import bdtr

    gained = int((candidate & ~reference).sum())
    lost = int((reference & ~candidate).sum())
    p_value = 2 * float(bdtr(min(gained, lost), gained + lost, 0.5))
    return gained, lost, min(1.0, p_value)


def natural_correct(  # noqa: PLR0913 - the network and data, then options by keyword
    net: nn.Module,
    images: Tensor,
    labels: Tensor,
    candidate: Candidate,
    *,
    device: torch.device,
    batch_size: int,
    channels_last: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Per image, whether ``net`` classifies ``(image - mean) / std`` correctly (bool, CPU);
    ``channels_last``: feed channels-last images (where a probe found the same predictions)."""
    mean = torch.tensor(candidate.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(candidate.std, device=device).view(1, 3, 1, 1)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            x = (x - mean) / std
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            parts.append((net(x).argmax(1) == y).cpu())
            if progress is not None:
                progress(len(parts[-1]))
    return torch.cat(parts)


def decide(
    correct: dict[str, Tensor],
    candidates: list[Candidate],
    in_force: str,
    *,
    declared: bool,
    insist: bool,
    params: NormalisationParams,
) -> Decision:
    """Apply the rule to per-image correctness of every candidate (see the module docstring).

    Ties in accuracy go to the earlier candidate. Accuracy gains are compared in whole
    images, so "at least 5 points" holds exactly.
    """
    reference = next(c for c in candidates if c.name == in_force)
    base = correct[in_force]
    n = len(base)
    comparisons, best = [], None
    for candidate in candidates:
        hits = correct[candidate.name]
        if candidate.name == in_force:
            comparisons.append(Comparison(candidate, int(hits.sum())))
            continue
        gained, lost, p_value = exact_mcnemar(base, hits)
        beats = p_value < params.alpha and (gained - lost) >= params.min_gain * n - 1e-9
        found = Comparison(candidate, int(hits.sum()), gained, lost, p_value, beats)
        comparisons.append(found)
        if beats and (best is None or found.correct > best.correct):
            best = found
    if best is None:
        verdict, chosen = Verdict.KEPT, reference
    elif insist:
        verdict, chosen = Verdict.INSISTED, reference
    elif declared:
        verdict, chosen = Verdict.STOPPED, reference
    else:
        verdict, chosen = Verdict.SWITCHED, best.candidate
    return Decision(verdict, reference, chosen, best, comparisons, n, params)


def check_normalisation(  # noqa: PLR0913 - the data and candidates, then the rule by keyword
    net: nn.Module,
    images: Tensor,
    labels: Tensor,
    candidates: list[Candidate],
    in_force: str,
    *,
    declared: bool,
    insist: bool,
    params: NormalisationParams,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    seed: int = 0,
    progress: Progress | None = None,
) -> Decision:
    """Measure every candidate on the first ``params.images`` images and ``decide``.

    ``net`` takes normalised inputs (the network as trained, without any wrapper). Candidates
    with the same values are measured once, on channels-last images where the engine's probe
    (``channels_last_agrees``, on the candidate in force) finds the same predictions and
    scores: on the CPU such passes are several times faster. Seeded, with the caller's random
    state restored.
    """
    device = torch.device(device)
    k = min(params.images, len(images))
    images, labels = images[:k], labels[:k]
    distinct: dict[tuple[Triple, Triple], Candidate] = {}
    for candidate in candidates:
        distinct.setdefault((candidate.mean, candidate.std), candidate)
    report = progress or (lambda stage, done, total: None)
    total, done = k * len(distinct), 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report(STAGE, done, total)

    report(STAGE, 0, total)
    measured: dict[tuple[Triple, Triple], Tensor] = {}
    net = net.to(device).eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    reference = next(c for c in candidates if c.name == in_force)
    with torch.random.fork_rng(devices=devices):
        probe = images[:16].to(device)
        mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (reference.mean, reference.std))
        channels_last = channels_last_agrees(net, (probe - mean) / std)
        for values, candidate in distinct.items():
            torch.manual_seed(seed)
            measured[values] = natural_correct(
                net,
                images,
                labels,
                candidate,
                device=device,
                batch_size=batch_size,
                channels_last=channels_last,
                progress=advance,
            )
    correct = {c.name: measured[(c.mean, c.std)] for c in candidates}
    return decide(correct, candidates, in_force, declared=declared, insist=insist, params=params)
