"""Small models with known answers, built in a second or two on a CPU."""

from __future__ import annotations

import copy
from functools import lru_cache

import torch
from torch import Tensor, nn

SHAPE = (3, 32, 32)
DIM = 3 * 32 * 32


class Linear(nn.Module):
    """Multiclass linear classifier on flattened [0, 1] images."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def linear_problem(
    n: int = 600, seed: int = 0, classes: int = 10, confidence: float = 30.0
) -> tuple[Linear, Tensor, Tensor]:
    """A linear model on images with pixels in [0.3, 0.7] and mid-range exact robustness.

    The weights live on 400 of the 3072 pixels, which puts the class suite's ℓ∞ 8/255 and
    ℓ2 0.5 balls at comparable reach; images lean towards their class by a random amount so
    distances to the decision boundaries spread across both radii. Labels are the model's
    own predictions (natural accuracy 100%). ``confidence`` scales the logits: at 30 the
    softmax saturates in float32 and plain cross-entropy PGD stalls on many points.
    """
    g = torch.Generator().manual_seed(seed)
    support = torch.randperm(DIM, generator=g)[:400]
    weight = torch.zeros(classes, DIM)
    weight[:, support] = torch.randn(classes, len(support), generator=g)
    bias = 0.5 * torch.randn(classes, generator=g)
    rows = weight[:, support] / weight[:, support].norm(dim=1, keepdim=True)
    lean = torch.randint(0, classes, (n,), generator=g)
    amount = 25 * torch.rand(n, 1, generator=g)
    noise = 0.6 * torch.randn(n, len(support), generator=g)
    images = torch.full((n, DIM), 0.5)
    images[:, support] = 0.5 + 0.2 * torch.tanh(amount * rows[lean] + noise)
    model = Linear(confidence * weight, confidence * bias)
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    return model, images.view(n, *SHAPE), labels


def exact_robust_accuracy(model: Linear, images: Tensor, labels: Tensor, eps: float, dual: float) -> float:
    """Exact robust accuracy of a linear model: every margin must exceed ε‖w_y − w_j‖_dual.

    ``dual`` is 1 for the ℓ∞ threat and 2 for ℓ2; valid while the worst-case perturbation
    stays inside [0, 1], which the images' margin from 0 and 1 ensures.
    """
    w, b = model.weight.detach().double(), model.bias.detach().double()
    x = images.flatten(1).double()
    logits = x @ w.T + b
    margins = logits.gather(1, labels[:, None]) - logits
    norms = (w[labels][:, None, :] - w[None, :, :]).norm(p=dual, dim=-1)
    own = torch.arange(w.shape[0])[None, :] == labels[:, None]
    robust = ((margins > eps * norms) | own).all(dim=1) & (logits.argmax(dim=1) == labels)
    return robust.double().mean().item()


def pattern_data(n: int, seed: int = 0, classes: int = 10) -> tuple[Tensor, Tensor]:
    """Images of faint class-specific patterns under pixel noise, in [0, 1]."""
    g = torch.Generator().manual_seed(1234)
    patterns = torch.nn.functional.interpolate(
        torch.rand(classes, 3, 4, 4, generator=g), size=SHAPE[1:], mode="bilinear"
    )
    g.manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    noise = 0.12 * torch.randn(n, *SHAPE, generator=g)
    images = (0.3 + 0.4 * patterns[labels] + noise).clamp(0, 1)
    return images, labels


def small_cnn(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(4),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, classes),
    )


def train(model: nn.Module, images: Tensor, labels: Tensor, epochs: int = 6) -> nn.Module:
    """A few epochs of Adam; returns the model in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=g).split(64):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
    return model.eval()


@lru_cache(maxsize=1)
def trained_cnn() -> tuple[nn.Module, Tensor, Tensor]:
    """A small CNN trained for a few seconds, with 64 held-out images (cached per session)."""
    images, labels = pattern_data(464)
    model = train(small_cnn(), images[:400], labels[:400], epochs=4)
    model.requires_grad_(False)
    return model, images[400:], labels[400:]


class Shattered(nn.Module):
    """A linear classifier whose class is sampled by a near-zero-temperature Gumbel-softmax.

    The output is ``scale`` · softmax((z + noise · Gumbel) / temperature) with z the linear
    logits: a hard one-hot sample (scaled, so it does not look like probabilities). The
    sample is the linear model's argmax unless two logits are within about ``noise``, so the
    exact robust accuracy is the linear model's up to that thin band. At near-zero
    temperature the input gradient is exactly zero except at near-ties, where it explodes;
    ``relaxed()`` is the same network at temperature 1, whose gradient is smooth.
    """

    def __init__(
        self, linear: Linear, *, temperature: float = 0.01, noise: float = 0.01, scale: float = 10.0
    ) -> None:
        super().__init__()
        self.linear = linear
        self.temperature, self.noise, self.scale = temperature, noise, scale

    def forward(self, x: Tensor) -> Tensor:
        logits = self.linear(x)
        u = torch.rand_like(logits).clamp_(1e-6, 1 - 1e-6)
        gumbel = -(-u.log()).log()
        return self.scale * torch.softmax((logits + self.noise * gumbel) / self.temperature, dim=1)

    def relaxed(self) -> Shattered:
        """The relaxed twin: the same weights at temperature 1."""
        twin = copy.copy(self)
        twin.temperature = 1.0
        return twin


class Noisy(nn.Module):
    """A model that stays random in eval mode: Gaussian input noise and random feature gating."""

    def __init__(self, model: nn.Sequential, *, noise: float = 0.1, keep: float = 0.5) -> None:
        super().__init__()
        self.model, self.noise, self.keep = model, noise, keep

    def forward(self, x: Tensor) -> Tensor:
        h = x + self.noise * torch.randn_like(x)
        for i, layer in enumerate(self.model):
            h = layer(h)
            if i == 1:
                h = h * torch.bernoulli(torch.full_like(h, self.keep)) / self.keep
        return h
