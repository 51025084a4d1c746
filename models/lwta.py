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

import math

import torch
import torch.nn.functional as F
from torch import nn

TEST_TEMPERATURE = 0.01
SURROGATE_TEMPERATURE = 1.0


def concrete_sample(logits: torch.Tensor, temperature, dim: int) -> torch.Tensor:
    """A Gumbel-softmax (concrete) relaxation of a one-hot sample along ``dim``."""
    uniform = torch.rand_like(logits)
    gumbel = -torch.log(-torch.log(uniform + 1e-8) + 1e-8)
    return F.softmax((logits + gumbel) / temperature, dim=dim)


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
        mask = concrete_sample(groups, temperature, dim=2)
        return x * mask.reshape(x.shape)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.lwta1 = LWTA()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.lwta2 = LWTA()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.convShortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor, test_temperature: float | None = None) -> torch.Tensor:
        if self.equal_in_out:
            out = self.lwta1(self.bn1(x), test_temperature)
        else:
            x = self.lwta1(self.bn1(x), test_temperature)
            out = x
        out = self.lwta2(self.bn2(self.conv1(out)), test_temperature)
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(x)
        return shortcut + out


class NetworkBlock(nn.Module):
    def __init__(self, blocks: int, in_planes: int, out_planes: int, stride: int, drop_rate=0.0):
        super().__init__()
        self.layer = nn.Sequential(
            *(
                BasicBlock(
                    in_planes if i == 0 else out_planes,
                    out_planes,
                    stride if i == 0 else 1,
                    drop_rate,
                )
                for i in range(blocks)
            )
        )

    def forward(self, x: torch.Tensor, test_temperature: float | None = None) -> torch.Tensor:
        for block in self.layer:
            x = block(x, test_temperature)
        return x


class LWTAWideResNet(nn.Module):
    """LWTA WideResNet-depth-width; ``sub_block1`` is built but unused, as in the reference."""

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
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        if sub_block1:
            self.sub_block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.lwta = LWTA()
        self.fc = nn.Linear(channels[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.Linear):
                module.bias.data.zero_()

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
