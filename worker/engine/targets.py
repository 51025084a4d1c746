"""Which wrong classes targeted restarts aim at: the nearest decision boundaries.

Ranking by logits picks the most likely wrong class, which is not always the nearest one in
the threat model's norm. As DeepFool and FAB do, each boundary's distance is estimated to
first order, (z_y − z_t) / ‖∇(z_t − z_y)‖_*, with the dual norm of the threat (ℓ1 for ℓ∞,
ℓ2 for ℓ2); for a linear model the estimate is exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worker.engine.classifier import Classifier
from worker.engine.suites import Loss, ThreatModel

_DUAL = {ThreatModel.LINF: 1.0, ThreatModel.L2: 2.0}


def nearest_classes(
    judge: Classifier, x: Tensor, y: Tensor, count: int, threat: ThreatModel
) -> Tensor:
    """The ``count`` wrong classes with the nearest estimated boundaries, shaped (count, N)."""
    logits = judge.mean_logits(x)
    classes = logits.shape[1]
    own = logits.gather(1, y[:, None]).squeeze(1)
    candidates, distances = [], []
    for shift in range(1, classes):
        t = (y + shift) % classes
        grad, _ = judge.gradient(x, y, Loss.TARGETED, t)
        scale = grad.flatten(1).norm(p=_DUAL[ThreatModel(threat)], dim=1) / judge.draws
        gap = own - logits.gather(1, t[:, None]).squeeze(1)
        candidates.append(t)
        distances.append(gap / scale.clamp_min(1e-12))
    order = torch.stack(distances).argsort(dim=0, stable=True)[: min(count, classes - 1)]
    return torch.stack(candidates).gather(0, order)
