"""The attacked network as the attacks see it: logits, EOT gradients and per-draw accuracy.

A model whose outputs are probabilities is attacked through their logarithm (logits up to a
constant), so softmax saturation does not hide its gradients. A model that stays random in
eval mode is queried ``draws`` times per step: gradients are summed over the draws
(Expectation over Transformation, Athalye et al. 2018) and correctness is the fraction of
draws that classify correctly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from worker.engine.losses import objective
from worker.engine.suites import Loss


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
            for _ in range(draws):
                hits += self.logits(x).argmax(dim=1) == labels
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
            for _ in range(self.draws):
                leaf = x.detach().requires_grad_(True)
                logits = self.logits(leaf)
                hits += logits.detach().argmax(dim=1) == labels
                value = objective(loss, logits, labels, targets)
                step = torch.autograd.grad(value, leaf)[0]
                grad = step if grad is None else grad.add_(step)
        assert grad is not None
        correct = hits / self.draws if self.draws > 1 else hits
        return torch.nan_to_num_(grad, nan=0.0, posinf=0.0, neginf=0.0), correct


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
