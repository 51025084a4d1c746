"""Geometry of the threat models: steps, projections and random points of an ε-ball.

Every point a ``Ball`` returns lies in [0, 1] and within ε of its clean image (up to float
rounding), because clamping to [0, 1] only moves a coordinate towards the clean value.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worker.engine.suites import ThreatModel

_TINY = 1e-12


def _norms(x: Tensor) -> Tensor:
    """Per-image ℓ2 norms shaped to broadcast over (N, C, H, W)."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


class Ball:
    """The ε-ball of one norm around each clean image, intersected with [0, 1]."""

    threat: ThreatModel

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def step(self, x: Tensor, grad: Tensor, size: float) -> Tensor:
        """Steepest-ascent step of length ``size`` in this norm."""
        raise NotImplementedError

    def project(self, adv: Tensor, clean: Tensor) -> Tensor:
        """The point of the ball nearest ``adv`` (then clamped to [0, 1])."""
        raise NotImplementedError

    def random_start(self, clean: Tensor) -> Tensor:
        """A random point inside the ball (PGD's random start)."""
        raise NotImplementedError

    def surface(self, clean: Tensor) -> Tensor:
        """A random point on the ball's surface: the random-noise attack's draw."""
        raise NotImplementedError

    def distance(self, adv: Tensor, clean: Tensor) -> Tensor:
        """Per-image distance in this norm."""
        raise NotImplementedError


class LinfBall(Ball):
    threat = ThreatModel.LINF

    def step(self, x: Tensor, grad: Tensor, size: float) -> Tensor:
        return x + size * grad.sign()

    def project(self, adv: Tensor, clean: Tensor) -> Tensor:
        delta = (adv - clean).clamp_(-self.eps, self.eps)
        return delta.add_(clean).clamp_(0, 1)

    def random_start(self, clean: Tensor) -> Tensor:
        noise = torch.empty_like(clean).uniform_(-self.eps, self.eps)
        return noise.add_(clean).clamp_(0, 1)

    def surface(self, clean: Tensor) -> Tensor:
        signs = torch.randint_like(clean, 0, 2).mul_(2).sub_(1)
        return signs.mul_(self.eps).add_(clean).clamp_(0, 1)

    def distance(self, adv: Tensor, clean: Tensor) -> Tensor:
        return (adv - clean).flatten(1).abs().amax(dim=1)


class L2Ball(Ball):
    threat = ThreatModel.L2

    def step(self, x: Tensor, grad: Tensor, size: float) -> Tensor:
        return x + size * grad / (_norms(grad) + _TINY)

    def project(self, adv: Tensor, clean: Tensor) -> Tensor:
        delta = adv - clean
        delta.mul_((self.eps / (_norms(delta) + _TINY)).clamp_(max=1.0))
        return delta.add_(clean).clamp_(0, 1)

    def random_start(self, clean: Tensor) -> Tensor:
        direction = torch.randn_like(clean)
        radius = torch.rand(len(clean), device=clean.device, dtype=clean.dtype)
        scale = radius.view(-1, *([1] * (clean.dim() - 1))) * self.eps
        direction.mul_(scale / (_norms(direction) + _TINY))
        return direction.add_(clean).clamp_(0, 1)

    def surface(self, clean: Tensor) -> Tensor:
        direction = torch.randn_like(clean)
        direction.mul_(self.eps / (_norms(direction) + _TINY))
        return direction.add_(clean).clamp_(0, 1)

    def distance(self, adv: Tensor, clean: Tensor) -> Tensor:
        return (adv - clean).flatten(1).norm(dim=1)


def make_ball(threat: ThreatModel, eps: float) -> Ball:
    """The ball of ``threat`` with radius ``eps``."""
    return {ThreatModel.LINF: LinfBall, ThreatModel.L2: L2Ball}[ThreatModel(threat)](eps)
