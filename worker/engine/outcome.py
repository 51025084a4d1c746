"""What an attack leaves behind: per image, the most damaging point it tried.

Robust accuracy counts an image as robust only if every candidate tried classified it
correctly, so an attack records each candidate and an image fooled once stays fooled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_UNTRIED = 2.0


@dataclass
class AttackResult:
    """``adversarial`` (N, C, H, W) in the ε-ball; ``correct`` (N,) in [0, 1], 0 = fooled.

    ``correct`` is the lowest fraction of correct draws seen on any candidate (0 or 1 for
    a deterministic model); ``adversarial`` holds the candidate that reached it.
    """

    adversarial: Tensor
    correct: Tensor

    @classmethod
    def empty(cls, images: Tensor) -> AttackResult:
        untried = torch.full((len(images),), _UNTRIED, device=images.device)
        return cls(torch.empty_like(images), untried)

    def record(self, index: Tensor, x: Tensor, correct: Tensor) -> None:
        """Keep candidates ``x`` of images ``index`` that do at least as much damage as before."""
        better = correct <= self.correct[index]
        if better.all():
            self.adversarial[index] = x
            self.correct[index] = correct
        else:
            self.adversarial[index[better]] = x[better]
            self.correct[index[better]] = correct[better]

    def merge(self, index: Tensor, other: AttackResult) -> None:
        """Fold in a further run (a restart or another target) over images ``index``."""
        self.record(index, other.adversarial, other.correct)

    @property
    def fooled(self) -> Tensor:
        return self.correct == 0
