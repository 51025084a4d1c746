"""Stochastic Local Winner-Takes-All WideResNet (Panousis et al., "Stochastic Local
Winner-Takes-All Networks Enable Profound Adversarial Robustness", 2021).

Keys match the authors' konpanousis/Adversarial-LWTA-AutoAttack (``models/wideresnet_lwta.py``
and ``models/layers/layers.py``): ``conv1``, ``block{1,2,3}.layer.i.{bn1,lwta1,conv1,bn2,lwta2,
conv2,convShortcut}``, ``sub_block1``, ``bn1``, ``lwta``, ``fc``, where every ``lwta*`` holds
the scalar ``temp``. Channels compete in blocks of ``U = 2``; each forward pass samples the
winner of every block from a Gumbel-softmax over the block's activations, at the learnt
temperature ``softplus(temp)`` in training and at ``test_temperature`` (0.01) in eval mode. The
network is therefore random at test time too, as its robustness relies on.
"""

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.architectures.wide_resnet import NetworkBlock, WideBlock, init_weights

TEST_TEMPERATURE = 0.01
SURROGATE_TEMPERATURE = 1.0


def concrete_sample(logits: torch.Tensor, temperature, dim: int) -> torch.Tensor:
    """A Gumbel-softmax (concrete) relaxation of a one-hot sample along ``dim``."""
    uniform = torch.rand_like(logits)
    gumbel = -torch.log(-torch.log(uniform + 1e-8) + 1e-8)
    return F.softmax((logits + gumbel) / temperature, dim=dim)


def logistic_noise(like: torch.Tensor) -> torch.Tensor:
    """logit(U) for U uniform on (0, 1), one per element of ``like``, drawn in the contiguous
    layout (so one seed gives one network whatever the memory layout of the input).

    On the CPU the uniforms come from numpy's PCG64, seeded by one draw of torch's generator
    (so ``torch.manual_seed`` still fixes them): torch's CPU sampler runs on one thread and was
    an eighth of the WRN-34-1's forward and backward time; PCG64 takes about 0.6 of its time.
    Elsewhere, and while ``torch.export`` traces the network (a team exporting its own LWTA
    program), torch's sampler and operators the platform's ``.pt2`` allowlist holds.
    """
    if like.device.type == "cpu" and not torch.compiler.is_compiling():
        seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
        drawn = np.random.Generator(np.random.PCG64(seed)).random(tuple(like.shape), dtype=np.float32)
        return torch.logit(torch.from_numpy(drawn).to(like.dtype), eps=1e-8)
    uniform = torch.rand_like(like, memory_format=torch.contiguous_format).clamp_min(1e-8)  # < 1
    return torch.log(uniform / (1 - uniform))


def concrete_pair(first: torch.Tensor, second: torch.Tensor, temperature) -> torch.Tensor:
    """``concrete_sample`` over two competitors: the first one's share of the mask.

    The same distribution with half the noise: the difference of two independent Gumbel
    variables is logistic, logit(U), and a softmax over two is the sigmoid of the difference,
    so softmax((a + g₁, b + g₂) / τ)₁ = σ((a − b + logit U) / τ).
    """
    return torch.sigmoid((first - second + logistic_noise(first)) / temperature)


class PairGate(torch.autograd.Function):
    """``x · [s, 1 − s]`` over each pair (a, b) of channels, s = σ((a − b + noise) / τ) for a
    fixed τ, with the gradient written out: with g the output's gradient and
    c = (g_a·a − g_b·b)·s(1 − s)/τ, ∂a = g_a·s + c and ∂b = g_b·(1 − s) − c. The same values as
    autograd through those operations (tested), in fewer passes over memory: no stacked mask,
    no gradients of slices. Eval mode only (a learnt temperature needs its own gradient).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, noise: torch.Tensor, temperature: float) -> torch.Tensor:
        pairs = x.reshape(x.shape[0], x.shape[1] // 2, 2, *x.shape[2:])
        a, b = pairs[:, :, 0], pairs[:, :, 1]
        share = torch.sub(a, b).add_(noise).div_(temperature).sigmoid_()
        out = torch.empty(pairs.shape, dtype=x.dtype, device=x.device)
        torch.mul(a, share, out=out[:, :, 0])
        torch.addcmul(b, b, share, value=-1, out=out[:, :, 1])
        ctx.save_for_backward(pairs, share)
        ctx.temperature = temperature
        return out.view(x.shape)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        pairs, share = ctx.saved_tensors
        g = grad.reshape(pairs.shape)
        ga, gb = g[:, :, 0], g[:, :, 1]
        common = torch.mul(ga, pairs[:, :, 0]).addcmul_(gb, pairs[:, :, 1], value=-1)
        common.mul_(torch.addcmul(share, share, share, value=-1)).div_(ctx.temperature)
        out = torch.empty(pairs.shape, dtype=grad.dtype, device=grad.device)
        torch.addcmul(common, ga, share, out=out[:, :, 0])
        torch.addcmul(gb, gb, share, value=-1, out=out[:, :, 1]).sub_(common)
        return out.view(grad.shape), None, None


class LWTA(nn.Module):
    """Stochastic LWTA activation: each block of ``U`` channels passes only its sampled winner.

    ``forward(x, test_temperature)`` overrides the eval-mode temperature for one call; the
    surrogate uses it to make winner selection soft without copying or mutating the network.
    """

    def __init__(self, competitors: int = 2, test_temperature: float = TEST_TEMPERATURE):
        super().__init__()
        self.U = competitors
        self.test_temperature = test_temperature
        self.temp = nn.Parameter(torch.tensor(-0.01))

    def forward(self, x: torch.Tensor, test_temperature: float | None = None) -> torch.Tensor:
        if self.training:
            temperature = F.softplus(self.temp) if x.dim() > 2 else 0.67
        else:
            temperature = self.test_temperature if test_temperature is None else test_temperature
        groups = x.reshape(x.shape[0], x.shape[1] // self.U, self.U, *x.shape[2:])
        if self.U == 2 and not self.training and not torch.compiler.is_compiling():
            return PairGate.apply(x, logistic_noise(groups[:, :, 0]), temperature)
        if self.U == 2:
            share = concrete_pair(groups[:, :, 0], groups[:, :, 1], temperature)
            mask = torch.stack([share, 1 - share], dim=2)
        else:
            mask = concrete_sample(groups, temperature, dim=2)
        return x * mask.reshape(x.shape)


class LWTABlock(WideBlock):
    """The wide block with an LWTA activation after each batch norm."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__(in_planes, out_planes, stride, drop_rate)
        self.lwta1 = LWTA()
        self.lwta2 = LWTA()

    def conv1_bn2(self, x: torch.Tensor) -> torch.Tensor:
        """In eval mode the batch norm folded into the convolution before it (one pass
        instead of two, the same affine map: scale the kernels, add a bias). Not torch's
        ``fuse_conv_bn_weights``: it returns new Parameters, detached from the weights."""
        if self.training:
            return super().conv1_bn2(x)
        bn, conv = self.bn2, self.conv1
        assert bn.running_var is not None and bn.running_mean is not None
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        bias = -bn.running_mean * scale
        if bn.bias is not None:
            bias = bias + bn.bias
        weight = conv.weight * scale.view(-1, 1, 1, 1)
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    def forward(self, x: torch.Tensor, test_temperature: float | None = None) -> torch.Tensor:
        return self.residual(
            x,
            functools.partial(self.lwta1, test_temperature=test_temperature),
            functools.partial(self.lwta2, test_temperature=test_temperature),
        )


class LWTAWideResNet(nn.Module):
    """LWTA WideResNet-depth-width; ``sub_block1`` is built but unused, as in the reference."""

    #: Every winner is sampled for each image on its own (batch norm runs on its running
    #: statistics in eval mode): the engine may take several draws in one batch.
    independent_draws = True

    def __init__(
        self,
        depth: int = 34,
        width: int = 1,
        num_classes: int = 10,
        drop_rate: float = 0.0,
        sub_block1: bool = True,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.width = width
        self.conv1 = nn.Conv2d(3, channels[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate, LWTABlock)
        if sub_block1:
            self.sub_block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate, LWTABlock)
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2, drop_rate, LWTABlock)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2, drop_rate, LWTABlock)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.lwta = LWTA()
        self.fc = nn.Linear(channels[3], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor, test_temperature: float | None = None) -> torch.Tensor:
        out = self.conv1(x)
        for block in (self.block1, self.block2, self.block3):
            out = block(out, test_temperature)
        out = self.lwta(self.bn1(out), test_temperature)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class SoftWinnerSurrogate(nn.Module):
    """The declared attack surrogate: the same LWTA network (shared, not copied) with the
    test-time temperature raised, so winners are mixed softly and gradients are informative.
    """

    def __init__(self, net: nn.Module, temperature: float = SURROGATE_TEMPERATURE) -> None:
        super().__init__()
        self.net = net
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, test_temperature=self.temperature)
