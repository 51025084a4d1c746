"""Several draws of a network with per-image randomness in one forward pass: the same EOT
gradient and accuracy, fewer passes; no other network is ever stacked."""

import torch
from torch import Tensor, nn

from worker.engine.classifier import Classifier, frozen, independent_draws
from worker.engine.suites import Loss

from .toys import linear_problem


class PerImageNoise(nn.Module):
    """A linear model on inputs with Gaussian noise drawn for each image on its own."""

    independent_draws = True

    def __init__(self, inner: nn.Module, sigma: float = 0.3) -> None:
        super().__init__()
        self.inner, self.sigma = inner, sigma
        self.calls: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append(len(x))
        return self.inner(x + self.sigma * torch.randn_like(x))


class SharedNoise(PerImageNoise):
    """One noise draw for the whole batch: stacking its draws would give one draw, repeated."""

    independent_draws = False

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append(len(x))
        return self.inner(x + self.sigma * torch.randn_like(x[:1]))


def test_stacked_draws_give_the_sequential_gradient_and_accuracy_in_fewer_passes():
    linear, images, labels = linear_problem(n=6, seed=3, confidence=1.0)
    model = PerImageNoise(linear)
    stacked = Classifier(model, stochastic=True, draws=400)
    one_by_one = Classifier(model, stochastic=True, draws=400)
    one_by_one.stacked = False
    assert stacked.stacked
    with frozen(model):
        model.calls.clear()
        torch.manual_seed(0)
        together, hits = stacked.gradient(images, labels, Loss.CE)
        assert model.calls == [6 * 42] * 9 + [6 * 22]  # 400 draws, at most 256 images a pass
        model.calls.clear()
        torch.manual_seed(1)
        apart, hits_apart = one_by_one.gradient(images, labels, Loss.CE)
        assert model.calls == [6] * 400
        cosine = torch.nn.functional.cosine_similarity(together.flatten(1), apart.flatten(1), dim=1)
        assert (cosine > 0.98).all(), cosine
        assert (hits - hits_apart).abs().max() < 0.1
        assert torch.allclose(stacked.correct(images, labels, 400), hits_apart, atol=0.1)


def test_only_a_class_that_declares_it_is_stacked():
    linear, images, labels = linear_problem(n=4, seed=3)
    shared = SharedNoise(linear)
    assert not independent_draws(shared) and not Classifier(shared, stochastic=True, draws=8).stacked
    claimed = PerImageNoise(linear)
    claimed.__class__ = type("Plain", (nn.Module,), {"forward": PerImageNoise.forward})
    claimed.independent_draws = True  # an instance attribute, as a program's constant would be
    assert not independent_draws(claimed)
    holder = nn.Module()
    holder.net = PerImageNoise(linear)  # a wrapper holding the network as ``net`` (normalisation)
    assert independent_draws(holder)
    assert not Classifier(holder, stochastic=False).stacked  # nothing to stack without randomness
    with frozen(shared):
        shared.calls.clear()
        Classifier(shared, stochastic=True, draws=8).correct(images, labels)
        assert shared.calls == [4] * 8
