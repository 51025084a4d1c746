"""The attacked network as the attacks see it: logits, EOT gradients and per-draw accuracy.

A model whose outputs are probabilities is attacked through their logarithm (logits up to a
constant), so softmax saturation does not hide its gradients. A model that stays random in
eval mode is queried ``draws`` times per step: gradients are summed over the draws
(Expectation over Transformation, Athalye et al. 2018) and correctness is the fraction of
draws that classify correctly.

A network may declare that its randomness is drawn independently for every image of a batch
(``independent_draws = True`` on its class, as the zoo's LWTA does): several draws then go
through one forward pass, the images repeated once per draw, up to ``PASS_IMAGES`` images a
pass. Small batches (the tail of an evaluation, a few images, a GPU) no longer pay a pass per
draw. Only a class attribute that is exactly ``True`` counts, on the network or on a
wrapper holding it as ``net``: an uploaded program's constants cannot claim it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from worker.engine.losses import objective
from worker.engine.suites import Loss

#: The most images one forward pass takes when draws are stacked (the size at which a
#: WideResNet's passes stop getting cheaper per image on a CPU).
PASS_IMAGES = 256


def independent_draws(model: nn.Module) -> bool:
    """Whether ``model``, or a network it wraps as ``net`` (a normalisation, a surrogate; a
    few levels deep), declares per-image randomness."""
    module: Any = model
    for _ in range(4):
        if not isinstance(module, nn.Module):
            return False
        if getattr(type(module), "independent_draws", False) is True:
            return True
        module = getattr(module, "net", None)
    return False


class Classifier:
    """Wraps a model taking [0, 1] images (N, C, H, W) and returning (N, classes) scores."""

    def __init__(
        self,
        model: nn.Module,
        *,
        log_probabilities: bool = False,
        stochastic: bool = False,
        draws: int = 1,
        channels_last: bool = False,
    ) -> None:
        self.model = model
        self.log_probabilities = log_probabilities
        self.stochastic = stochastic
        self.draws = draws
        self.channels_last = channels_last
        self.stacked = stochastic and independent_draws(model)

    def logits(self, x: Tensor) -> Tensor:
        """One forward pass; log-probabilities when the model outputs probabilities."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        if self.log_probabilities:
            out = out.clamp_min(torch.finfo(out.dtype).tiny).log()
        return out

    def correct(self, x: Tensor, labels: Tensor, draws: int | None = None) -> Tensor:
        """Fraction of ``draws`` forward passes classifying each image correctly, in [0, 1].

        ``no_grad`` rather than ``inference_mode``: a model that keeps state between calls
        must not end up holding inference tensors that a later gradient pass would reject.
        """
        draws = draws or self.draws
        hits = torch.zeros(len(x), device=x.device)
        with torch.no_grad():
            for k in self._groups(len(x), draws):
                predicted = self.logits(_repeat(x, k)).argmax(dim=1).view(k, len(x))
                hits += (predicted == labels).sum(dim=0)
        return hits / draws if draws > 1 else hits

    def gradient(
        self, x: Tensor, labels: Tensor, loss: Loss, targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Input gradient of ``loss`` summed over the draws, and the same passes' correctness.

        The forward passes that give the gradient also judge the point, so an attack step
        costs one forward and one backward pass per draw (weights are frozen by the caller:
        no weight gradients). Non-finite gradient entries are zeroed, so a step never leaves
        the ε-ball or [0, 1].
        """
        grad: Tensor | None = None
        hits = torch.zeros(len(x), device=x.device)
        with torch.enable_grad():
            for k in self._groups(len(x), self.draws):
                leaf = _repeat(x.detach(), k).requires_grad_(True)
                logits = self.logits(leaf)
                hits += (logits.detach().argmax(dim=1).view(k, len(x)) == labels).sum(dim=0)
                value = objective(loss, logits, _repeat(labels, k), _repeat(targets, k))
                step = torch.autograd.grad(value, leaf)[0].view(k, *x.shape).sum(dim=0)
                grad = step if grad is None else grad.add_(step)
        assert grad is not None
        correct = hits / self.draws if self.draws > 1 else hits
        return torch.nan_to_num_(grad, nan=0.0, posinf=0.0, neginf=0.0), correct

    def _groups(self, images: int, draws: int) -> list[int]:
        """How many draws each forward pass takes: one a pass, or stacked up to PASS_IMAGES."""
        per_pass = max(1, min(draws, PASS_IMAGES // max(1, images))) if self.stacked else 1
        return [min(per_pass, draws - start) for start in range(0, draws, per_pass)]


def _repeat(x: Any, k: int) -> Any:
    """``x`` stacked ``k`` times along the batch, draw-major (None stays None)."""
    if x is None or k == 1:
        return x
    return x.repeat(k, *([1] * (x.dim() - 1)))


@contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Turn off weight gradients while attacking (only input gradients are needed)."""
    params = [p for module in modules if module is not None for p in module.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
