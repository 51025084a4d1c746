"""Probes run before attacking: what the model outputs and whether its gradients are usable.

Two eval-mode forward passes that disagree reveal randomness eval mode does not remove
(noise injection, stochastic winner-takes-all units); such a model is attacked with EOT and
scored over several draws. Outputs that are non-negative and sum to one are treated as
probabilities and attacked through their logarithm. On the CPU, a network that gives the same
outputs on channels-last images (under the same random draws) is fed them: its convolutions
run faster that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Outputs(StrEnum):
    LOGITS = "logits"
    PROBABILITIES = "probabilities"


@dataclass(frozen=True)
class Diagnosis:
    outputs: Outputs
    stochastic: bool
    num_classes: int
    zero_gradient_fraction: float
    nonfinite_gradients: bool
    channels_last: bool = False


def diagnose(model: nn.Module, images: Tensor, labels: Tensor) -> Diagnosis:
    """Probe ``model`` (eval mode, weights frozen) on a small batch of [0, 1] images."""
    with torch.no_grad():
        first, second = model(images), model(images)
    scale = max(1.0, float(first.abs().max()))
    stochastic = not torch.allclose(first, second, rtol=0.0, atol=1e-4 * scale)
    row_sums = first.sum(dim=1)
    probabilities = bool((first >= 0).all() and (first <= 1).all() and ((row_sums - 1).abs() < 1e-3).all())
    leaf = images.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(leaf)
        logits = out.clamp_min(torch.finfo(out.dtype).tiny).log() if probabilities else out
        grad = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), leaf)[0]
    flat = grad.flatten(1)
    return Diagnosis(
        outputs=Outputs.PROBABILITIES if probabilities else Outputs.LOGITS,
        stochastic=stochastic,
        num_classes=first.shape[1],
        zero_gradient_fraction=float((flat == 0).all(dim=1).float().mean()),
        nonfinite_gradients=not bool(torch.isfinite(flat).all()),
        channels_last=channels_last_agrees(model, images[:16]),
    )


def channels_last_agrees(model: nn.Module, images: Tensor) -> bool:
    """Whether ``model`` gives the same predictions and, within float rounding, the same
    scores on channels-last images: only on the CPU, for 4-D images, under the same seed (so
    a random model's draws match); the caller's random state is kept."""
    if images.device.type != "cpu" or images.dim() != 4 or len(images) == 0:
        return False
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        try:
            torch.manual_seed(0)
            plain = model(images)
            torch.manual_seed(0)
            again = model(images.contiguous(memory_format=torch.channels_last))
        except Exception:  # a network may reject non-contiguous input (``view``): stay plain
            return False
    if plain.shape != again.shape or not torch.equal(plain.argmax(dim=1), again.argmax(dim=1)):
        return False
    scale = max(1.0, float(plain.abs().max()))
    return bool(torch.allclose(plain, again, rtol=1e-4, atol=1e-4 * scale))
