"""WideResNets in the layout of the adversarial-training literature (TRADES, Madry-style).

Keys match yaodongyu/TRADES ``models/wideresnet.py``: ``conv1``, ``block{1,2,3}.layer.i.*``
(``bn1``, ``conv1``, ``bn2``, ``conv2``, ``convShortcut``), ``sub_block1``, ``bn1``, ``fc``.
``sub_block1`` is built but unused in ``forward``, exactly as in those checkpoints;
``sub_block1=False`` gives the variant that omits it (RobustBench-style checkpoints).
"""

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class WideBlock(nn.Module):
    """The pre-activation wide residual block without its activations, which subclasses add:
    ``relu1``/``relu2`` here, ``lwta1``/``lwta2`` in the LWTA network (models/architectures/lwta.py). The 1x1
    ``convShortcut`` exists only when shapes change."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.convShortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def residual(
        self,
        x: torch.Tensor,
        act1: Callable[[torch.Tensor], torch.Tensor],
        act2: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        if self.equal_in_out:
            out = act1(self.bn1(x))
        else:
            x = act1(self.bn1(x))
            out = x
        out = act2(self.conv1_bn2(out))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(x)
        return shortcut + out

    def conv1_bn2(self, x: torch.Tensor) -> torch.Tensor:
        """The first convolution and the batch norm after it (a subclass may fold them)."""
        return self.bn2(self.conv1(x))


class BasicBlock(WideBlock):
    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__(in_planes, out_planes, stride, drop_rate)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x, self.relu1, self.relu2)


class NetworkBlock(nn.Module):
    """``blocks`` wide blocks in ``layer``; extra forward arguments go to every block."""

    def __init__(
        self,
        blocks: int,
        in_planes: int,
        out_planes: int,
        stride: int,
        drop_rate: float = 0.0,
        block: type[WideBlock] = BasicBlock,
    ) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *(
                block(
                    in_planes if i == 0 else out_planes,
                    out_planes,
                    stride if i == 0 else 1,
                    drop_rate,
                )
                for i in range(blocks)
            )
        )

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        for block in self.layer:
            x = block(x, *args)
        return x


def init_weights(network: nn.Module) -> None:
    """The reference initialisation: He-normal convolutions (fan-out), zero linear biases."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            module.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
        elif isinstance(module, nn.Linear):
            module.bias.data.zero_()


class WideResNet(nn.Module):
    """WRN-depth-widen_factor for 32x32 inputs; depth must be 6n + 4."""

    def __init__(
        self,
        depth: int = 34,
        widen_factor: int = 10,
        num_classes: int = 10,
        drop_rate: float = 0.0,
        sub_block1: bool = True,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, channels[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        if sub_block1:
            self.sub_block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(channels[3], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
