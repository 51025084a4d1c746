"""Projected gradient descent (Madry et al. 2018, arXiv:1706.06083) in ℓ∞ or ℓ2.

Inputs are [0, 1] images (N, C, H, W) and labels (N,). Every iterate, the random start
included, is a candidate: the forward pass that yields the step's gradient also judges the
iterate, and an image leaves the batch as soon as an iterate fools it. With a ``guide``
(a surrogate such as a relaxed twin of the model, in the spirit of BPDA, Athalye et al.
2018) gradients come from the guide while success is still judged on the real model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worker.engine.balls import Ball
from worker.engine.classifier import Classifier
from worker.engine.outcome import AttackResult
from worker.engine.suites import Loss


class PGD:
    """PGD with ``steps`` steps of ``step_size`` inside ``ball``, ascending ``loss``."""

    def __init__(
        self,
        judge: Classifier,
        ball: Ball,
        *,
        steps: int,
        step_size: float,
        loss: Loss = Loss.CE,
        random_start: bool = True,
        guide: Classifier | None = None,
    ) -> None:
        self.judge = judge
        self.ball = ball
        self.steps = steps
        self.step_size = step_size
        self.loss = loss
        self.random_start = random_start
        self.guide = guide

    def __call__(self, images: Tensor, labels: Tensor, targets: Tensor | None = None) -> AttackResult:
        result = AttackResult.empty(images)
        index = torch.arange(len(images), device=images.device)
        x = self.ball.random_start(images) if self.random_start else images.clone()
        clean, y, t = images, labels, targets
        for _ in range(self.steps):
            grad, correct = self._gradient(x, y, t)
            result.record(index, x, correct)
            alive = correct > 0
            if not alive.all():
                if not alive.any():
                    return result
                index, x, grad = index[alive], x[alive], grad[alive]
                clean, y = clean[alive], y[alive]
                t = None if t is None else t[alive]
            x = self.ball.project(self.ball.step(x, grad, self.step_size), clean)
        result.record(index, x, self.judge.correct(x, y))
        return result

    def _gradient(self, x: Tensor, y: Tensor, t: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.guide is None:
            return self.judge.gradient(x, y, self.loss, t)
        grad, _ = self.guide.gradient(x, y, self.loss, t)
        return grad, self.judge.correct(x, y)
