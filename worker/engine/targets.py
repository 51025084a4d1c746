"""Which wrong classes targeted restarts aim at: the nearest decision boundaries.

Ranking by logits picks the most likely wrong class, which is not always the nearest one in
the threat model's norm. As DeepFool and FAB do, each boundary's distance is estimated to
first order, (z_y − z_t) / ‖∇(z_t − z_y)‖_*, with the dual norm of the threat (ℓ1 for ℓ∞,
ℓ2 for ℓ2); for a linear model the estimate is exact.

Only the images that untargeted PGD left standing are ranked (``worker.engine.ensemble``):
one forward pass per draw, its graph walked back once per wrong class.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worker.engine.classifier import Classifier
from worker.engine.losses import objective
from worker.engine.suites import Loss, ThreatModel

_DUAL = {ThreatModel.LINF: 1.0, ThreatModel.L2: 2.0}


def nearest_classes(judge: Classifier, x: Tensor, y: Tensor, count: int, threat: ThreatModel) -> Tensor:
    """The ``count`` wrong classes with the nearest estimated boundaries, shaped (count, N)."""
    margins, logits = _margin_gradients(judge, x, y)
    classes = logits.shape[1]
    candidates = (y[None, :] + torch.arange(1, classes, device=y.device)[:, None]) % classes
    own = logits.gather(1, y[:, None]).squeeze(1)
    scale = margins.flatten(2).norm(p=_DUAL[ThreatModel(threat)], dim=2) / judge.draws
    gap = own[None, :] - logits.gather(1, candidates.T).T
    distances = gap / scale.clamp_min(1e-12)
    order = distances.argsort(dim=0, stable=True)[: min(count, classes - 1)]
    return candidates.gather(0, order)


def _margin_gradients(judge: Classifier, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Input gradients of z_t − z_y for t = y+1, …, y+C−1 (mod C), summed over the draws and
    shaped (C − 1, N, ...), and the logits averaged over the same draws (weights frozen by the
    caller: input gradients only)."""
    margins: Tensor | None = None
    total: Tensor | None = None
    with torch.enable_grad():
        for _ in range(judge.draws):
            leaf = x.detach().requires_grad_(True)
            logits = judge.logits(leaf)
            classes = logits.shape[1]
            if margins is None:
                margins = x.new_zeros(classes - 1, *x.shape)
            for shift in range(1, classes):
                t = (y + shift) % classes
                value = objective(Loss.TARGETED, logits, y, t)
                margins[shift - 1] += torch.autograd.grad(value, leaf, retain_graph=shift < classes - 1)[0]
            total = logits.detach() if total is None else total + logits.detach()
    assert margins is not None and total is not None
    return torch.nan_to_num_(margins, nan=0.0, posinf=0.0, neginf=0.0), total / judge.draws
