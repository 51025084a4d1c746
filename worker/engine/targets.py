"""Which wrong classes targeted restarts aim at: the nearest decision boundaries.

Ranking by logits picks the most likely wrong class, which is not always the nearest one in
the threat model's norm. As DeepFool and FAB do, each boundary's distance is estimated to
first order, (z_y − z_t) / ‖∇(z_t − z_y)‖_*, with the dual norm of the threat (ℓ1 for ℓ∞,
ℓ2 for ℓ2); for a linear model the estimate is exact.

The gradients at the clean images serve more than one attack, so ``clean_gradients`` takes
them all from one forward pass per draw: the cross-entropy gradient (FGSM's step) and the
margin gradients that rank the targets of every threat model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worker.engine.classifier import Classifier
from worker.engine.losses import objective
from worker.engine.suites import Loss, ThreatModel

_DUAL = {ThreatModel.LINF: 1.0, ThreatModel.L2: 2.0}


@dataclass(frozen=True)
class CleanGradients:
    """Input gradients at clean images (N, ...), summed over the classifier's draws.

    ``loss``: of the cross-entropy; ``margins``: of z_t − z_y for t = y+1, …, y+C−1 (mod C),
    shaped (C − 1, N, ...); ``logits``: averaged over the same draws; ``draws``: how many.
    """

    loss: Tensor
    margins: Tensor
    logits: Tensor
    draws: int

    def nearest(self, labels: Tensor, count: int, threat: ThreatModel) -> Tensor:
        """The ``count`` wrong classes with the nearest estimated boundaries, shaped (count, N)."""
        y, logits = labels, self.logits
        classes = logits.shape[1]
        candidates = (y[None, :] + torch.arange(1, classes, device=y.device)[:, None]) % classes
        own = logits.gather(1, y[:, None]).squeeze(1)
        scale = self.margins.flatten(2).norm(p=_DUAL[ThreatModel(threat)], dim=2) / self.draws
        gap = own[None, :] - logits.gather(1, candidates.T).T
        distances = gap / scale.clamp_min(1e-12)
        order = distances.argsort(dim=0, stable=True)[: min(count, classes - 1)]
        return candidates.gather(0, order)


def nearest_classes(judge: Classifier, x: Tensor, y: Tensor, count: int, threat: ThreatModel) -> Tensor:
    """The ``count`` wrong classes with the nearest estimated boundaries, shaped (count, N)."""
    return clean_gradients(judge, x, y).nearest(y, count, threat)


def clean_gradients(judge: Classifier, x: Tensor, y: Tensor) -> CleanGradients:
    """One forward pass per draw, its graph walked back once for the cross-entropy and once
    per wrong class (weights frozen by the caller: input gradients only)."""
    loss: Tensor | None = None
    margins: Tensor | None = None
    total: Tensor | None = None
    with torch.enable_grad():
        for _ in range(judge.draws):
            leaf = x.detach().requires_grad_(True)
            logits = judge.logits(leaf)
            classes = logits.shape[1]
            if margins is None:
                margins = x.new_zeros(classes - 1, *x.shape)
            step = torch.autograd.grad(objective(Loss.CE, logits, y, None), leaf, retain_graph=True)[0]
            loss = step if loss is None else loss.add_(step)
            for shift in range(1, classes):
                t = (y + shift) % classes
                value = objective(Loss.TARGETED, logits, y, t)
                margins[shift - 1] += torch.autograd.grad(value, leaf, retain_graph=shift < classes - 1)[0]
            total = logits.detach() if total is None else total + logits.detach()
    assert loss is not None and margins is not None and total is not None
    return CleanGradients(
        loss=torch.nan_to_num_(loss, nan=0.0, posinf=0.0, neginf=0.0),
        margins=torch.nan_to_num_(margins, nan=0.0, posinf=0.0, neginf=0.0),
        logits=total / judge.draws,
        draws=judge.draws,
    )
