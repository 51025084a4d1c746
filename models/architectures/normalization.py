"""Input normalisation inside the model, as buffers, so everything outside works on [0, 1].

Attacks, certificates and budgets (eps = 8/255, ...) are defined on pixels in [0, 1]; a network
trained on normalised inputs is wrapped once here, and its mean and std then travel with it
(``.to(device)``, ``state_dict``) like any other buffer.
"""

import torch
from torch import nn

from models.architectures.catalog import Triple


class Normalized(nn.Module):
    """``Normalized(net, mean, std)(x) == net((x - mean) / std)`` per channel, x in [0, 1]."""

    net: nn.Module
    mean: torch.Tensor  # buffers (1, 3, 1, 1), registered in __init__
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: Triple, std: Triple) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"expected three means and three positive stds, got {mean}, {std}")
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
