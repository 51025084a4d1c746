"""Evaluation protocols ("suites"): named, versioned, every parameter in one place.

A result records ``Suite.to_dict()`` next to its numbers, so two figures are comparable only
when suite name and version match. Changing any value below means bumping the version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class ThreatModel(StrEnum):
    """The norm bounding a perturbation: pixel-space ℓ∞ or ℓ2 on [0, 1] images."""

    LINF = "linf"
    L2 = "l2"


class Loss(StrEnum):
    """Objectives PGD maximises (``targeted`` pushes towards one chosen wrong class)."""

    CE = "ce"
    MARGIN = "margin"
    TARGETED = "targeted"


@dataclass(frozen=True)
class FGSMParams:
    eps: float


@dataclass(frozen=True)
class PGDParams:
    """One threat model's attack ensemble (see ``worker.engine.ensemble``)."""

    threat: ThreatModel
    eps: float
    step_size: float
    steps: int
    random_start: bool = True
    restarts: int = 1
    losses: tuple[Loss, ...] = (Loss.CE, Loss.MARGIN)
    targets: int = 3
    noise_draws: int = 20


@dataclass(frozen=True)
class DrawParams:
    """Forward passes used for models that stay random in eval mode."""

    gradient: int = 8
    accuracy: int = 16


@dataclass(frozen=True)
class SmoothingParams:
    """Randomized-smoothing certification (Cohen et al. 2019), run only when σ is declared."""

    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    images: int = 500
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
    radius: float = 0.5
    predict_n: int = 10_000
    predict_alpha: float = 0.001
    batch_size: int = 1000


@dataclass(frozen=True)
class AutoAttackParams:
    """Standard AutoAttack as RobustBench runs it ("rand" version for stochastic models)."""

    linf_eps: float | None = 8 / 255
    l2_eps: float | None = 0.5
    version: str = "standard"


@dataclass(frozen=True)
class CheckParams:
    """Model probes and gradient-masking thresholds."""

    probe_images: int = 64
    masking_margin: float = 0.005
    zero_gradient_fraction: float = 0.1


@dataclass(frozen=True)
class NormalisationParams:
    """The first step: which input normalisation the network was trained with.

    Natural accuracy of each candidate on the first ``images`` images (all when fewer); a
    candidate beats the one in force when an exact McNemar test rejects at ``alpha`` and it
    is at least ``min_gain`` more accurate (see ``worker.engine.normalisation``).
    """

    images: int = 1024
    alpha: float = 0.001
    min_gain: float = 0.05


@dataclass(frozen=True)
class Suite:
    """A complete evaluation protocol; ``images`` caps how many of the given images are used."""

    name: str
    version: str
    description: str
    dataset: str
    images: int | None
    fgsm: FGSMParams
    pgd_linf: PGDParams
    pgd_l2: PGDParams
    smoothing: SmoothingParams
    draws: DrawParams = field(default_factory=DrawParams)
    checks: CheckParams = field(default_factory=CheckParams)
    normalisation: NormalisationParams = field(default_factory=NormalisationParams)
    autoattack: AutoAttackParams | None = None
    batch_size: int | None = 256

    def to_dict(self) -> dict[str, Any]:
        """Name, version and every parameter, as plain JSON types."""
        data = _plain(asdict(self))
        return {"name": data.pop("name"), "version": data.pop("version"), "params": data}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, StrEnum):
        return str(value)
    return value


def params_dict(params: Any) -> dict[str, Any]:
    """One parameter group as plain JSON types (for a metric's ``params``)."""
    return _plain(asdict(params))


SUITES: dict[str, Suite] = {
    "class": Suite(
        name="class",
        version="5",
        description="The class platform's protocol: 1024 training images, 20-step PGD.",
        dataset="CIFAR-10 training split, first 1024 images",
        images=1024,
        fgsm=FGSMParams(eps=8 / 255),
        pgd_linf=PGDParams(ThreatModel.LINF, eps=8 / 255, step_size=2 / 255, steps=20),
        pgd_l2=PGDParams(ThreatModel.L2, eps=0.5, step_size=0.1, steps=20),
        smoothing=SmoothingParams(),
    ),
    "robustbench": Suite(
        name="robustbench",
        version="5",
        description="RobustBench-comparable: test split, 100-step PGD, restarts, AutoAttack.",
        dataset="CIFAR-10 test split (10000 images)",
        images=10_000,
        fgsm=FGSMParams(eps=8 / 255),
        pgd_linf=PGDParams(
            ThreatModel.LINF, eps=8 / 255, step_size=1 / 255, steps=100, restarts=2, targets=9
        ),
        pgd_l2=PGDParams(ThreatModel.L2, eps=0.5, step_size=0.025, steps=100, restarts=2, targets=9),
        smoothing=SmoothingParams(),
        autoattack=AutoAttackParams(),
    ),
    "smoke": Suite(
        name="smoke",
        version="5",
        description="A few steps and N = 1000 smoothing draws, for tests and CPU demos.",
        dataset="the first 64 images given",
        images=64,
        fgsm=FGSMParams(eps=8 / 255),
        pgd_linf=PGDParams(ThreatModel.LINF, eps=8 / 255, step_size=4 / 255, steps=5, targets=1),
        pgd_l2=PGDParams(ThreatModel.L2, eps=0.5, step_size=0.2, steps=5, targets=1),
        smoothing=SmoothingParams(n0=64, n=1000, images=16, predict_n=1000),
        draws=DrawParams(gradient=4, accuracy=4),
        batch_size=64,
    ),
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``; ValueError naming the known ones otherwise."""
    try:
        return SUITES[name]
    except KeyError:
        known = ", ".join(sorted(SUITES))
        raise ValueError(f"unknown suite {name!r}; known suites: {known}") from None
