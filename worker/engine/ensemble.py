"""One threat model's robust accuracy: the worst case, image by image, over several attacks.

A model can hide its gradients from one attack but rarely from all of them (Croce & Hein
2020; Tramèr et al. 2020). The ensemble runs PGD with cross-entropy and with the margin loss,
targeted margin restarts against the wrong classes with the nearest boundaries, PGD through a
surrogate judged on the real model when the model declares one, and last random noise on the
ball's surface.

As AutoAttack does, each attack runs only on the images that the attacks before it left
standing (a score above zero), so an image broken early costs nothing more; PGD on the
cross-entropy comes first and so runs on every clean-correct image, which the check of
iterative against single-step attacks needs. Restarts and targets inside one attack skip
images it has already fooled in the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor

from worker.engine.balls import make_ball
from worker.engine.classifier import Classifier
from worker.engine.noise import Noise
from worker.engine.outcome import AttackResult
from worker.engine.pgd import PGD
from worker.engine.suites import Loss, PGDParams
from worker.engine.targets import nearest_classes

Run = Callable[[Tensor, Tensor, Tensor], AttackResult]
#: The runs of one attack, made for the images it is about to attack (targets are ranked there).
Runs = Callable[[Tensor, Tensor], list[Run]]


class Attack(StrEnum):
    """Names of the per-attack figures under a metric's ``attacks``."""

    FGSM = "fgsm"
    PGD_CE = "pgd_ce"
    PGD_MARGIN = "pgd_margin"
    PGD_TARGETED = "pgd_targeted"
    NOISE = "noise"
    SURROGATE = "surrogate"


DIRECT = (Attack.PGD_CE, Attack.PGD_MARGIN, Attack.PGD_TARGETED)


@dataclass(frozen=True)
class AttackScores:
    """One attack's per-image robustness (N,) in [0, 1]: its own score on the images it ran on
    (``ran``), 0 on the others, which the attacks before it had already broken."""

    own: Tensor
    ran: Tensor

    @classmethod
    def cat(cls, parts: list[AttackScores]) -> AttackScores:
        return cls(torch.cat([p.own for p in parts]), torch.cat([p.ran for p in parts]))

    @classmethod
    def everywhere(cls, own: Tensor) -> AttackScores:
        """Scores of an attack run on every image (FGSM)."""
        return cls(own, torch.ones(len(own), dtype=torch.bool, device=own.device))


class Ensemble:
    """The attacks of ``params`` against ``judge``; scores are fractions of correct draws."""

    def __init__(
        self,
        judge: Classifier,
        params: PGDParams,
        *,
        surrogate: Classifier | None = None,
        accuracy_draws: int = 1,
    ) -> None:
        self.judge = judge
        self.params = params
        self.ball = make_ball(params.threat, params.eps)
        self.surrogate = surrogate
        self.accuracy_draws = accuracy_draws

    def __call__(self, images: Tensor, labels: Tensor, clean: Tensor) -> dict[str, AttackScores]:
        """Per-attack scores in the order the attacks ran, each at most the clean score ``clean``.

        An attack runs on the images whose worst score so far (``clean`` first) is above zero.
        """
        left = clean.clone()
        scores = {}
        for name, runs in self._attacks():
            index = (left > 0).nonzero().squeeze(1)
            own = torch.zeros_like(clean)
            ran = torch.zeros(len(clean), dtype=torch.bool, device=clean.device)
            if len(index):
                whole = len(index) == len(images)
                x, y = (images, labels) if whole else (images[index], labels[index])
                result = _cascade(x, y, runs(x, y))
                if self.judge.stochastic:
                    robust = self.judge.correct(result.adversarial, y, self.accuracy_draws)
                else:
                    robust = result.correct
                own[index] = torch.minimum(clean[index], robust)
                ran[index] = True
                left[index] = torch.minimum(left[index], own[index])
            scores[str(name)] = AttackScores(own, ran)
        return scores

    def _attacks(self) -> Iterator[tuple[Attack, Runs]]:
        p = self.params
        for loss in (loss for loss in p.losses if loss != Loss.TARGETED):
            yield Attack(f"pgd_{loss}"), _fixed(self._pgd(loss) * p.restarts)
        if p.targets > 0:
            yield Attack.PGD_TARGETED, self._targeted_runs
        if self.surrogate is not None:
            losses = [loss for loss in p.losses if loss != Loss.TARGETED]
            guide = self.surrogate
            runs = [run for loss in losses for run in self._pgd(loss, guide=guide)] * p.restarts
            yield Attack.SURROGATE, _fixed(runs)
        noise = Noise(self.judge, self.ball, draws=p.noise_draws)
        yield Attack.NOISE, _fixed([lambda xs, ys, _: noise(xs, ys)])

    def _pgd(self, loss: Loss, guide: Classifier | None = None) -> list[Run]:
        p = self.params
        attack = PGD(
            self.judge,
            self.ball,
            steps=p.steps,
            step_size=p.step_size,
            loss=loss,
            random_start=p.random_start,
            guide=guide,
        )
        return [lambda xs, ys, _: attack(xs, ys)]

    def _targeted_runs(self, x: Tensor, y: Tensor) -> list[Run]:
        """A run per target class, ranked for the images still standing (``x``, ``y``)."""
        p = self.params
        ranked = nearest_classes(self.judge, x, y, p.targets, p.threat)
        return [self._targeted(ranked[k]) for k in range(len(ranked))] * p.restarts

    def _targeted(self, targets: Tensor) -> Run:
        p = self.params
        attack = PGD(
            self.judge,
            self.ball,
            steps=p.steps,
            step_size=p.step_size,
            loss=Loss.TARGETED,
            random_start=p.random_start,
        )
        return lambda xs, ys, index: attack(xs, ys, targets[index])


def _fixed(runs: list[Run]) -> Runs:
    """Runs that do not depend on which images they attack."""
    return lambda x, y: runs


def _cascade(x: Tensor, y: Tensor, runs: list[Run]) -> AttackResult:
    """Run ``runs`` in turn, each on the images no earlier run has fooled."""
    result = AttackResult.empty(x)
    index = torch.arange(len(x), device=x.device)
    for run in runs:
        if len(index) == 0:
            break
        whole = len(index) == len(x)
        sub = run(x if whole else x[index], y if whole else y[index], index)
        result.merge(index, sub)
        index = index[~sub.fooled]
    return result


def worst_case(scores: dict[str, AttackScores]) -> Tensor:
    """Image-by-image minimum over attacks: robust only against every one of them."""
    return torch.stack([s.own for s in scores.values()]).amin(dim=0)


def left_after(scores: dict[str, AttackScores]) -> dict[str, float]:
    """Robust accuracy left after each attack and the ones before it, in order (AutoAttack's
    running figures): the last one is the threat model's accuracy."""
    running: Tensor | None = None
    out = {}
    for name, s in scores.items():
        running = s.own if running is None else torch.minimum(running, s.own)
        out[name] = float(running.double().mean())
    return out


def direct_worst(scores: dict[str, AttackScores]) -> Tensor | None:
    """Worst case over the direct gradient attacks (PGD on the model itself)."""
    direct = {name: s for name, s in scores.items() if name in DIRECT}
    return worst_case(direct) if direct else None
