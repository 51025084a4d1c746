"""Random noise on the surface of the ε-ball: the sanity check of gradient attacks.

If random points fool a model that gradient attacks do not, its gradients are masked
(Carlini et al. 2019, "On evaluating adversarial robustness", §5). ℓ∞ draws random sign
corners of the ball, ℓ2 draws uniform directions at radius ε; images fooled by one draw
skip the rest. Each candidate is judged by a single forward pass (the many noise draws
already average over a stochastic model's randomness; the ensemble rescores the chosen
candidate with fresh draws).
"""

from __future__ import annotations

import torch
from torch import Tensor

from worker.engine.balls import Ball
from worker.engine.classifier import Classifier
from worker.engine.outcome import AttackResult


class Noise:
    """``draws`` random points on the surface of ``ball`` per image."""

    def __init__(self, judge: Classifier, ball: Ball, *, draws: int = 20) -> None:
        self.judge = judge
        self.ball = ball
        self.draws = draws

    def __call__(self, images: Tensor, labels: Tensor) -> AttackResult:
        result = AttackResult.empty(images)
        index = torch.arange(len(images), device=images.device)
        clean, y = images, labels
        for _ in range(self.draws):
            x = self.ball.surface(clean)
            correct = self.judge.correct(x, y, draws=1)
            result.record(index, x, correct)
            alive = correct > 0
            if not alive.all():
                if not alive.any():
                    break
                index, clean, y = index[alive], clean[alive], y[alive]
        return result
