"""Fast gradient sign method (Goodfellow et al. 2015, arXiv:1412.6572), ℓ∞.

One step of size ε along the sign of the cross-entropy gradient, clamped to [0, 1]: the same
images as ``torchattacks.FGSM`` for a deterministic model. For a stochastic model the gradient
is summed over the classifier's draws (EOT).
"""

from __future__ import annotations

import torch
from torch import Tensor

from worker.engine.classifier import Classifier
from worker.engine.outcome import AttackResult
from worker.engine.suites import Loss


class FGSM:
    """Single-step ℓ∞ attack with budget ``eps`` on [0, 1] images (N, C, H, W)."""

    def __init__(self, judge: Classifier, *, eps: float) -> None:
        self.judge = judge
        self.eps = eps

    def __call__(self, images: Tensor, labels: Tensor) -> AttackResult:
        grad, _ = self.judge.gradient(images, labels, Loss.CE)
        adversarial = self.perturb(images, grad)
        index = torch.arange(len(images), device=images.device)
        result = AttackResult.empty(images)
        result.record(index, adversarial, self.judge.correct(adversarial, labels))
        return result

    def perturb(self, images: Tensor, grad: Tensor) -> Tensor:
        """The adversarial images, from the cross-entropy gradient ``grad`` at ``images``."""
        return (images + self.eps * grad.sign()).clamp_(0, 1)
