"""Attack objectives, summed over the batch so each image's gradient is its own.

Cross-entropy is PGD's classic loss; it saturates and can stall on confident points, which is
why the ensemble adds the margin loss of Carlini & Wagner and targeted margins
(z_t − z_y), as AutoAttack does with APGD-DLR and APGD-T.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from worker.engine.suites import Loss


def margin(logits: Tensor, labels: Tensor) -> Tensor:
    """max_{j≠y} z_j − z_y per image: positive exactly when the image is misclassified."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return others.amax(dim=1) - true


def objective(loss: Loss, logits: Tensor, labels: Tensor, targets: Tensor | None) -> Tensor:
    """The scalar an attack ascends (sum over images)."""
    if loss == Loss.CE:
        return F.cross_entropy(logits, labels, reduction="sum")
    if loss == Loss.MARGIN:
        return margin(logits, labels).sum()
    if targets is None:
        raise ValueError("the targeted loss needs target classes")
    chosen = logits.gather(1, targets[:, None]) - logits.gather(1, labels[:, None])
    return chosen.sum()
