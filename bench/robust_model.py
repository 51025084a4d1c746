"""A small adversarially trained CNN, so the attack benchmark also has a model that resists.

Trained on the subset's 4000 training images with "fast" adversarial training (FGSM from a
random start, step 1.25 ε, Wong, Rice & Kolter 2020) at ℓ∞ ε = 8/255, random crops and flips,
for a few minutes on two CPU cores. The weights are cached in ``bench/.cache/`` under a name
that changes with the recipe, so later runs load them instead of training again.
"""

from __future__ import annotations

import hashlib
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.fixtures import CACHE, cifar10

RECIPE = {
    "arch": "small-cnn-2",
    "epochs": 30,
    "batch": 128,
    "eps": 8 / 255,
    "step": 10 / 255,
    "lr": 0.2,
    "seed": 0,
}
_KEY = hashlib.sha256(repr(sorted(RECIPE.items())).encode()).hexdigest()[:12]
CACHE_FILE = CACHE / f"robust-cnn-{_KEY}.pt"


class SmallCNN(nn.Module):
    """Three 3x3 conv layers (32, 64, 64 channels), each with batch norm and 2x2 max-pooling."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(3, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            nn.MaxPool2d(2),
            *block(64, 64),
            nn.MaxPool2d(2),
        )
        self.linear = nn.Linear(64 * 4 * 4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x).flatten(1))


def robust_cnn(device: torch.device, retrain: bool = False) -> nn.Module:
    """The cached robust CNN in eval mode with frozen weights (trained first if absent)."""
    model = SmallCNN()
    if CACHE_FILE.is_file() and not retrain:
        model.load_state_dict(torch.load(CACHE_FILE, map_location="cpu", weights_only=True))
    else:
        train(model, device)
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), CACHE_FILE)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _augment(x: Tensor) -> Tensor:
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    i, j = torch.randint(0, 9, (2,)).tolist()
    out = padded[:, :, i : i + 32, j : j + 32]
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def train(model: nn.Module, device: torch.device) -> None:
    """FGSM-RS adversarial training on the 4000 training images (prints one line per epoch)."""
    r = RECIPE
    torch.manual_seed(r["seed"])
    images, labels = cifar10("train")
    images, labels = images.to(device), labels.to(device)
    model.to(device).train()
    steps = r["epochs"] * ((len(images) + r["batch"] - 1) // r["batch"])
    optimizer = torch.optim.SGD(
        model.parameters(), lr=r["lr"], momentum=0.9, weight_decay=5e-4, nesterov=True
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=r["lr"], total_steps=steps)
    start = time.perf_counter()
    for epoch in range(r["epochs"]):
        order, hits = torch.randperm(len(images), device=device), 0
        for batch in order.split(r["batch"]):
            x, y = _augment(images[batch]), labels[batch]
            delta = torch.empty_like(x).uniform_(-r["eps"], r["eps"]).requires_grad_(True)
            loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
            (grad,) = torch.autograd.grad(loss, delta)
            delta = (delta + r["step"] * grad.sign()).clamp(-r["eps"], r["eps"]).detach()
            logits = model((x + delta).clamp(0, 1))
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(logits, y).backward()
            optimizer.step()
            schedule.step()
            hits += int((logits.argmax(1) == y).sum())
        print(
            f"  robust CNN epoch {epoch + 1}/{r['epochs']}: adversarial train accuracy "
            f"{hits / len(images):.3f} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    model.eval()
