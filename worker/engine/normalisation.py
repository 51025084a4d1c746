"""Which input normalisation a network was trained with, read from its natural accuracy.

A checkpoint carries no record of the ``(x - mean) / std`` its training applied, and a wrong
guess evaluates a different model. So before any attack every candidate normalisation is
tried on the same first K labelled images, and each is compared with the one in force by an
exact McNemar test (the two-sided binomial test on the images exactly one of the two gets
right). A candidate *beats* the one in force when the test rejects at level ``alpha`` and its
accuracy is at least ``min_gain`` higher. Which verdict follows (keep, switch, stop) is
``decide``'s: switch with nothing declared, stop with a declaration, keep when insisted on.

The one in force is measured first; every other candidate only until it is out of reach,
when even being right on every image left would not give it the gain (``out_of_reach``). The
decision is the one measuring everything gives, at a fraction of the passes: a well-trained
network (over 95% accurate) leaves every other candidate out of reach before its first image.
"""

from __future__ import annotations

import functools
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
    """One candidate against the one in force on the same images (``None`` for itself).

    ``measured`` is the number of the first images it was measured on: all of them, or
    fewer once it was out of reach (then nothing is compared and it does not beat)."""

    candidate: Candidate
    correct: int
    measured: int
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

    def comparison(self, candidate: Candidate) -> Comparison:
        return next(c for c in self.comparisons if c.candidate.name == candidate.name)

    def correct(self, candidate: Candidate) -> int:
        """Images that ``candidate`` classifies correctly, of those it was measured on (all
        ``n`` for the one in force and for any that beats it)."""
        return self.comparison(candidate).correct

    def accuracy(self, candidate: Candidate) -> float | None:
        """Accuracy on the images ``candidate`` was measured on; None if on none."""
        found = self.comparison(candidate)
        return found.correct / found.measured if found.measured else None


def out_of_reach(correct: int, measured: int, n: int, reference: int, params: NormalisationParams) -> bool:
    """Whether a candidate right on ``correct`` of its first ``measured`` of ``n`` images can
    no longer beat the one in force, right on ``reference`` of them: gained − lost is the
    difference of the two counts, so even right on every image left it would gain fewer than
    ``min_gain`` · n (``decide``'s condition, exactly)."""
    return correct + (n - measured) - reference < params.min_gain * n - 1e-9


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
    stop: Callable[[int, int], bool] | None = None,
) -> Tensor:
    """Per image, whether ``net`` classifies ``(image - mean) / std`` correctly (bool, CPU);
    ``channels_last``: feed channels-last images (where a probe found the same predictions).

    ``stop(correct, measured)``, asked before each batch, ends the measurement there: the
    result then covers the first ``measured`` images only (the same values as in a whole
    measurement, since batches run in order from the same seed).
    """
    mean = torch.tensor(candidate.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(candidate.std, device=device).view(1, 3, 1, 1)
    parts, correct, measured = [torch.zeros(0, dtype=torch.bool)], 0, 0
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            if stop is not None and stop(correct, measured):
                break
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            x = (x - mean) / std
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            parts.append((net(x).argmax(1) == y).cpu())
            correct, measured = correct + int(parts[-1].sum()), measured + len(parts[-1])
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
    images, so "at least 5 points" holds exactly. A candidate measured on fewer images than
    the one in force must be out of reach there (``out_of_reach``): it does not beat it.
    """
    reference = next(c for c in candidates if c.name == in_force)
    base = correct[in_force]
    n = len(base)
    comparisons, best = [], None
    for candidate in candidates:
        hits = correct[candidate.name]
        if candidate.name == in_force:
            comparisons.append(Comparison(candidate, int(hits.sum()), n))
            continue
        if len(hits) < n:
            if not out_of_reach(int(hits.sum()), len(hits), n, int(base.sum()), params):
                raise ValueError(f"{candidate.name} was measured on {len(hits)} of {n} images, within reach")
            comparisons.append(Comparison(candidate, int(hits.sum()), len(hits)))
            continue
        gained, lost, p_value = exact_mcnemar(base, hits)
        beats = p_value < params.alpha and (gained - lost) >= params.min_gain * n - 1e-9
        found = Comparison(candidate, int(hits.sum()), n, gained, lost, p_value, beats)
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
    """Measure the candidates on the first ``params.images`` images and ``decide``: the one
    in force on all of them, the others until they are out of reach.

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

        def measure(values: tuple[Triple, Triple], stop: Callable[[int, int], bool] | None = None) -> Tensor:
            torch.manual_seed(seed)
            hits = natural_correct(
                net,
                images,
                labels,
                distinct[values],
                device=device,
                batch_size=batch_size,
                channels_last=channels_last,
                progress=advance,
                stop=stop,
            )
            advance(k - len(hits))  # the images it was not measured on
            return hits

        in_force_values = (reference.mean, reference.std)
        measured[in_force_values] = measure(in_force_values)
        base = int(measured[in_force_values].sum())
        beyond = functools.partial(out_of_reach, n=k, reference=base, params=params)
        for values in distinct:
            if values not in measured:
                measured[values] = measure(values, beyond)
    correct = {c.name: measured[(c.mean, c.std)] for c in candidates}
    return decide(correct, candidates, in_force, declared=declared, insist=insist, params=params)
