"""Warnings shown beside the numbers: how the model was treated and signs of gradient masking.

The masking checks follow AutoAttack's flags and Carlini et al. 2019: an iterative attack
weaker than a single step, random noise beating gradient attacks, or gradients through a
surrogate beating the model's own gradients all mean the direct attacks were misled, and
the ensemble's worst case is the figure to trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import torch
from torch import Tensor

from worker.engine.diagnosis import Diagnosis, Outputs
from worker.engine.ensemble import AttackScores


class FlagCode(StrEnum):
    STOCHASTIC = "stochastic"
    PROBABILITY_OUTPUTS = "probability_outputs"
    ZERO_GRADIENTS = "zero_gradients"
    NONFINITE_GRADIENTS = "nonfinite_gradients"
    ITERATIVE_WEAKER = "iterative_weaker_than_single_step"
    NOISE_BEATS_ATTACK = "noise_beats_gradient_attack"
    SURROGATE_BEATS_DIRECT = "surrogate_beats_direct_attack"
    AUTOATTACK_BEATS_ENSEMBLE = "autoattack_beats_ensemble"


def _flag(code: FlagCode, message: str) -> dict[str, str]:
    return {"code": str(code), "message": message}


def _pct(value: float | Tensor) -> str:
    if isinstance(value, Tensor):
        value = float(value.double().mean()) if len(value) else 0.0
    return f"{100 * value:.1f}%"


def model_flags(
    diagnosis: Diagnosis, *, gradient_draws: int, accuracy_draws: int, zero_fraction: float
) -> list[dict[str, str]]:
    """Flags about the model itself, from the probes run before attacking."""
    flags = []
    if diagnosis.stochastic:
        flags.append(
            _flag(
                FlagCode.STOCHASTIC,
                "Two eval-mode forward passes on the same images disagree: gradients were averaged "
                f"over {gradient_draws} draws per step (EOT) and each accuracy is the mean over "
                f"{accuracy_draws} draws per image.",
            )
        )
    if diagnosis.outputs == Outputs.PROBABILITIES:
        flags.append(
            _flag(
                FlagCode.PROBABILITY_OUTPUTS,
                "The model returns probabilities, not logits; it was attacked through their "
                "logarithm so that saturated softmax outputs cannot hide its gradients.",
            )
        )
    if diagnosis.zero_gradient_fraction > zero_fraction:
        flags.append(
            _flag(
                FlagCode.ZERO_GRADIENTS,
                f"The input gradient is exactly zero on {_pct(diagnosis.zero_gradient_fraction)} "
                "of probed images: gradient attacks are blind there; see the noise and surrogate "
                "figures.",
            )
        )
    if diagnosis.nonfinite_gradients:
        flags.append(
            _flag(
                FlagCode.NONFINITE_GRADIENTS,
                "The input gradient contains NaN or infinite entries; they were treated as zero.",
            )
        )
    return flags


def beats(challenger: Tensor, incumbent: Tensor, margin: float, where: Tensor | None = None) -> bool:
    """Whether ``challenger`` leaves clearly less per-image accuracy than ``incumbent``.

    Paired over images: the mean gap must exceed ``margin`` and twice its standard error,
    so the noise of a stochastic model's per-image estimates does not raise a flag. With
    ``where``, only those images count towards the gap (the challenger ran on them alone),
    the others count as no gap.
    """
    gap = (incumbent - challenger).double()
    if where is not None:
        gap = torch.where(where, gap, torch.zeros_like(gap))
    if len(gap) == 0:
        return False
    mean = float(gap.mean())
    error = float(gap.std()) / len(gap) ** 0.5 if len(gap) > 1 else 0.0
    return mean > margin and mean > 2 * error


def masking_flags(
    metric: str, scores: Mapping[str, AttackScores], *, direct: Tensor | None, margin: float
) -> list[dict[str, str]]:
    """Signs of gradient masking in one metric's per-image, per-attack scores.

    ``direct`` is the worst case over PGD on the model itself. A check fires when the
    weaker-in-principle attack leaves clearly less accuracy (see ``beats``) on the images it
    ran on: noise and the surrogate run only where the direct attacks left an image standing,
    so what they break there is what the direct attacks missed.
    """
    flags = []
    pgd, fgsm = scores.get("pgd_ce"), scores.get("fgsm")
    if pgd is not None and fgsm is not None and beats(fgsm.own, pgd.own, margin):
        flags.append(
            _flag(
                FlagCode.ITERATIVE_WEAKER,
                f"{metric}: iterative PGD (cross-entropy) leaves {_pct(pgd.own)} but single-step "
                f"FGSM leaves {_pct(fgsm.own)}: the gradients mislead iterative attacks.",
            )
        )
    noise = scores.get("noise")
    if direct is not None and noise is not None and beats(noise.own, direct, margin, noise.ran):
        flags.append(
            _flag(
                FlagCode.NOISE_BEATS_ATTACK,
                f"{metric}: random noise of the same budget breaks {_pct(_broken(noise, direct))} "
                f"of the images, ones that gradient attacks could not break ({_pct(direct)} "
                "robust to them): gradients are masked.",
            )
        )
    surrogate = scores.get("surrogate")
    if direct is not None and surrogate is not None and beats(surrogate.own, direct, margin, surrogate.ran):
        flags.append(
            _flag(
                FlagCode.SURROGATE_BEATS_DIRECT,
                f"{metric}: PGD through the declared surrogate breaks "
                f"{_pct(_broken(surrogate, direct))} of the images, ones that PGD on the model "
                f"itself could not break ({_pct(direct)} robust to it): its own gradients are "
                "obfuscated.",
            )
        )
    return flags


def _broken(challenger: AttackScores, direct: Tensor) -> Tensor:
    """Per image, the accuracy the challenger took away where it ran (as a fraction of all)."""
    return torch.where(challenger.ran, (direct - challenger.own).clamp_min(0), torch.zeros_like(direct))


def autoattack_flag(autoattack: Tensor, ensemble: Tensor, *, margin: float) -> list[dict[str, str]]:
    """AutoAttack found clearly more than the ensemble: the PGD figures overstate robustness."""
    if not beats(autoattack, ensemble, margin):
        return []
    return [
        _flag(
            FlagCode.AUTOATTACK_BEATS_ENSEMBLE,
            f"AutoAttack (ℓ∞) leaves {_pct(autoattack)}, less than the ensemble's {_pct(ensemble)}.",
        )
    ]
