"""One threat model's robust accuracy: the worst case, image by image, over several attacks.

A model can hide its gradients from one attack but rarely from all of them (Croce & Hein
2020; Tramèr et al. 2020). The ensemble runs PGD with cross-entropy and with the margin loss,
targeted margin restarts against the wrong classes with the nearest boundaries, random
noise on the ball's surface and, when the model declares one, PGD through a surrogate
judged on the real model.

Each attack runs on every clean-correct image, so its own figure stays visible; restarts
and targets inside one attack skip images it has already fooled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


class Attack(StrEnum):
    """Names of the per-attack figures under a metric's ``attacks``."""

    FGSM = "fgsm"
    PGD_CE = "pgd_ce"
    PGD_MARGIN = "pgd_margin"
    PGD_TARGETED = "pgd_targeted"
    NOISE = "noise"
    SURROGATE = "surrogate"


DIRECT = (Attack.PGD_CE, Attack.PGD_MARGIN, Attack.PGD_TARGETED)


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

    def __call__(
        self, images: Tensor, labels: Tensor, clean: Tensor, targets: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Per-attack robustness (N,) in [0, 1], each at most the clean score ``clean``.

        ``targets`` (count, M): the ranked target classes of the M clean-correct images, when
        the caller has them already (``CleanGradients.nearest``); ranked here otherwise.
        """
        index = (clean > 0).nonzero().squeeze(1)
        whole = len(index) == len(images)
        x, y = (images, labels) if whole else (images[index], labels[index])
        scores = {}
        for name, runs in self._attacks(x, y, targets):
            if len(index) == 0:
                scores[str(name)] = torch.zeros_like(clean)
                continue
            result = _cascade(x, y, runs)
            if self.judge.stochastic:
                robust = self.judge.correct(result.adversarial, y, self.accuracy_draws)
            else:
                robust = result.correct
            full = torch.zeros_like(clean)
            full[index] = torch.minimum(clean[index], robust)
            scores[str(name)] = full
        return scores

    def _attacks(
        self, x: Tensor, y: Tensor, targets: Tensor | None = None
    ) -> Iterator[tuple[Attack, list[Run]]]:
        p = self.params
        for loss in (loss for loss in p.losses if loss != Loss.TARGETED):
            yield Attack(f"pgd_{loss}"), self._pgd(loss) * p.restarts
        if p.targets > 0 and len(x):
            ranked = targets
            if ranked is None:
                ranked = nearest_classes(self.judge, x, y, p.targets, p.threat)
            runs = [self._targeted(ranked[k]) for k in range(len(ranked))] * p.restarts
            yield Attack.PGD_TARGETED, runs
        noise = Noise(self.judge, self.ball, draws=p.noise_draws)
        yield Attack.NOISE, [lambda xs, ys, _: noise(xs, ys)]
        if self.surrogate is not None:
            losses = [loss for loss in p.losses if loss != Loss.TARGETED]
            runs = [run for loss in losses for run in self._pgd(loss, guide=self.surrogate)]
            yield Attack.SURROGATE, runs * p.restarts

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


def worst_case(scores: dict[str, Tensor]) -> Tensor:
    """Image-by-image minimum over attacks: robust only against every one of them."""
    return torch.stack(list(scores.values())).amin(dim=0)


def direct_worst(scores: dict[str, Tensor]) -> Tensor | None:
    """Worst case over the direct gradient attacks (PGD on the model itself)."""
    direct = {name: s for name, s in scores.items() if name in DIRECT}
    return worst_case(direct) if direct else None
