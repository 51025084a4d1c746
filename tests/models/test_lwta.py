"""The LWTA activation: its two-competitor sampler draws the authors' Gumbel-softmax masks, its
written-out gate gradient is the exact one, its batch norm folded in eval mode is the same map."""

import numpy as np
import pytest
import torch
from scipy.stats import ks_1samp, ks_2samp

from models.architectures.lwta import (
    LWTA,
    LWTABlock,
    PairGate,
    concrete_pair,
    concrete_sample,
    logistic_noise,
)


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


def reference_gate(x, noise, temperature):
    """The gate as plain autograd operations: x · [s, 1 − s], s = σ((a − b + noise) / τ)."""
    groups = x.reshape(x.shape[0], x.shape[1] // 2, 2, *x.shape[2:])
    share = torch.sigmoid((groups[:, :, 0] - groups[:, :, 1] + noise) / temperature)
    return x * torch.stack([share, 1 - share], dim=2).reshape(x.shape)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_the_written_out_gate_gradient_is_the_exact_gradient(temperature):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    noise = logistic_noise(x[:, :3].detach())
    assert torch.autograd.gradcheck(lambda t: PairGate.apply(t, noise, temperature), (x,))


@pytest.mark.parametrize("temperature", [0.01, 1.0])
def test_the_gate_matches_autograd_through_its_operations(temperature):
    torch.manual_seed(1)
    x = torch.randn(8, 16, 6, 6, requires_grad=True)
    noise = logistic_noise(x[:, :8].detach())
    weights = torch.randn(8, 16, 6, 6)
    mine = PairGate.apply(x, noise, temperature)
    (ours,) = torch.autograd.grad((mine * weights).sum(), x)
    theirs_out = reference_gate(x, noise, temperature)
    (theirs,) = torch.autograd.grad((theirs_out * weights).sum(), x)
    torch.testing.assert_close(mine, theirs_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_the_noise_follows_the_seed_and_the_logistic_law():
    like = torch.empty(200_000)
    torch.manual_seed(5)
    first = logistic_noise(like)
    torch.manual_seed(5)
    assert torch.equal(first, logistic_noise(like))
    assert not torch.equal(first, logistic_noise(like))
    # logit(U) is logistic(0, 1): its distribution function is the sigmoid.
    assert ks_1samp(first.double().numpy(), lambda v: 1 / (1 + np.exp(-v))).pvalue > 1e-3


def test_folding_the_batch_norm_keeps_the_block_s_function():
    torch.manual_seed(2)
    block = LWTABlock(16, 32, stride=2)
    for bn in (block.bn1, block.bn2):  # statistics and affine parameters as after training
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    block.eval()
    x = torch.randn(4, 16, 8, 8)
    folded = block.conv1_bn2(x)
    torch.testing.assert_close(folded, block.bn2(block.conv1(x)), rtol=1e-5, atol=1e-5)
    block.train()
    assert torch.equal(block.conv1_bn2(x), block.bn2(block.conv1(x)))  # training: unfolded
