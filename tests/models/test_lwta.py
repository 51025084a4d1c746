"""The LWTA activation's two-competitor sampler draws the authors' Gumbel-softmax masks."""

import pytest
import torch
from scipy.stats import ks_2samp

from models.architectures.lwta import LWTA, concrete_pair, concrete_sample


@pytest.mark.parametrize("temperature", [0.01, 0.67, 1.0])
@pytest.mark.parametrize("gap", [-0.03, 0.0, 0.02, 1.5])
def test_the_pair_sampler_has_the_gumbel_softmax_distribution(temperature, gap):
    torch.manual_seed(0)
    n = 20_000
    first, second = torch.full((n,), gap), torch.zeros(n)
    pair = concrete_pair(first, second, temperature)
    softmax = concrete_sample(torch.stack([first, second], dim=1), temperature, dim=1)[:, 0]

    # The same law: a two-sample Kolmogorov-Smirnov test does not tell them apart (shares
    # below 1e-6 from 0 or 1 counted as 0 or 1: the two formulas underflow differently there,
    # and such a share passes nothing of the loser), and the winner's frequency matches the
    # exact probability σ(gap) (Gumbel-max) at a low τ.
    def settled(share):
        return torch.where(share < 1e-6, 0.0, torch.where(share > 1 - 1e-6, 1.0, share)).numpy()

    assert ks_2samp(settled(pair), settled(softmax)).pvalue > 1e-3
    if temperature == 0.01:
        exact = torch.sigmoid(torch.tensor(gap)).item()
        assert abs(float((pair > 0.5).double().mean()) - exact) < 4 * (exact * (1 - exact) / n) ** 0.5 + 1e-3


def test_one_seed_gives_one_network_in_either_memory_layout():
    layer = LWTA().eval()
    x = torch.randn(4, 8, 5, 5)
    torch.manual_seed(3)
    plain = layer(x)
    torch.manual_seed(3)
    again = layer(x.contiguous(memory_format=torch.channels_last))
    # The same draws pick the same winners; the values agree to float rounding (the
    # vectorised and scalar paths of the sigmoid round differently, and which one an element
    # takes depends on how the threads split the tensor, which varies with the load).
    assert torch.equal(plain / x > 0.5, again / x > 0.5)
    torch.testing.assert_close(again, plain, rtol=1e-5, atol=1e-30)
    # Each output keeps one competitor per pair, almost entirely, at the test temperature.
    pairs = plain.reshape(4, 4, 2, 5, 5) / x.reshape(4, 4, 2, 5, 5)
    assert torch.allclose(pairs.sum(dim=2), torch.ones(4, 4, 5, 5), atol=1e-4)
