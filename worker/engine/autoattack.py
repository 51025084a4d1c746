"""Standard AutoAttack (Croce & Hein 2020) through torchattacks' maintained implementation.

APGD-CE, APGD-T, FAB-T and Square as RobustBench runs them; for a stochastic model the
"rand" version (APGD-CE and APGD-DLR with 20 EOT draws), as RobustBench does for randomized
defenses. Success is judged by this engine on the real model, and the returned images are
projected onto the ε-ball first, so the figure can only reflect genuine adversarial points.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worker.engine.balls import make_ball
from worker.engine.classifier import Classifier
from worker.engine.suites import ThreatModel

_NORMS = {ThreatModel.LINF: "Linf", ThreatModel.L2: "L2"}


class _Logits(nn.Module):
    """The classifier as a module returning logits (torchattacks reads the device off it)."""

    def __init__(self, classifier: Classifier, device: torch.device) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)
        self.model = classifier.model
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.logits(x)


def autoattack_version(classifier: Classifier, version: str) -> str:
    return "rand" if classifier.stochastic else version


def autoattack(  # noqa: PLR0913 - the data, then torchattacks.AutoAttack's own settings
    classifier: Classifier,
    images: Tensor,
    labels: Tensor,
    clean: Tensor,
    *,
    threat: ThreatModel,
    eps: float,
    version: str,
    num_classes: int,
    seed: int,
    accuracy_draws: int,
) -> Tensor:
    """Per-image robustness (N,) in [0, 1] under AutoAttack, at most the clean score."""
    import torchattacks  # heavy and only needed by the robustbench suite

    scores = torch.zeros_like(clean)
    index = (clean > 0).nonzero().squeeze(1)
    if len(index) == 0:
        return scores
    x, y = images[index], labels[index]
    attack = torchattacks.AutoAttack(
        _Logits(classifier, images.device).eval(),
        norm=_NORMS[ThreatModel(threat)],
        eps=eps,
        version=autoattack_version(classifier, version),
        n_classes=num_classes,
        seed=seed,
    )
    adversarial = make_ball(threat, eps).project(attack(x, y).detach(), x)
    draws = accuracy_draws if classifier.stochastic else 1
    scores[index] = torch.minimum(clean[index], classifier.correct(adversarial, y, draws))
    return scores
