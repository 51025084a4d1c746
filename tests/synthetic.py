"""A learnable synthetic CIFAR-shaped task, and LeNets trained on it in seconds.

Each class is a colour (dark, 0.1 to 0.5 per channel) under strong pixel noise; the class
is in the absolute colour levels, so a network trained with one input normalisation is
accurate under it and much less under the others, as real checkpoints are.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

Triple = tuple[float, float, float]
NONE: tuple[Triple, Triple] = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
CIFAR10: tuple[Triple, Triple] = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
HALF: tuple[Triple, Triple] = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def make_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images in [0, 1] on the uint8 grid (as an evaluation set stores them), labels."""
    colours = 0.1 + 0.4 * torch.rand(10, 3, generator=torch.Generator().manual_seed(1234))
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = colours[labels].view(n, 3, 1, 1) + 0.2 * torch.randn(n, 3, 32, 32, generator=g)
    return (images.clamp(0, 1) * 255).round() / 255, labels


def save_task(path: Path, n: int, seed: int) -> Path:
    """The task as an evaluation set (torchvision's uint8 (N, 32, 32, 3) layout)."""
    images, labels = make_task(n, seed)
    pixels = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    np.savez(path, images=pixels, labels=labels.numpy())
    return path


def normalise(images: torch.Tensor, normalisation: tuple[Triple, Triple]) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalisation)
    return (images - mean) / std


def train_lenet(normalisation: tuple[Triple, Triple], steps: int = 150, seed: int = 0):
    """The zoo's ``lenet`` trained on inputs normalised with ``normalisation`` (one thread:
    a LeNet on 64 images gains nothing from more, and a busy machine loses a lot)."""
    from models.architectures.registry import build_model

    images, labels = make_task(3000, seed=100 + seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        net = build_model("lenet")
        optimiser = torch.optim.Adam(net.parameters(), lr=5e-3)
        for _ in range(steps):
            index = torch.randint(0, len(images), (64,))
            loss = F.cross_entropy(net(normalise(images[index], normalisation)), labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def accuracy(net, images: torch.Tensor, labels: torch.Tensor, normalisation: tuple[Triple, Triple]) -> float:
    """The network's own forward pass on its own normalisation, as its team would measure."""
    with torch.inference_mode():
        return float((net(normalise(images, normalisation)).argmax(1) == labels).float().mean())
