"""What the engine benchmarks share: the real CIFAR-10 subset, the models, timing and tables.

The data and the pretrained ResNet-20 come from ``ARENA_SHARED_DATA`` (default
``../shared/data`` next to the repository): ``cifar10/cifar10_subset.npz`` and
``pretrained/resnet20-12fca82f.th``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
DATA = Path(os.environ.get("ARENA_SHARED_DATA", ROOT.parent / "shared" / "data"))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cifar10(split: str, count: int | None = None) -> tuple[Tensor, Tensor]:
    """The subset's ``train`` (4000) or ``test`` (1000) images in [0, 1] and their labels."""
    path = DATA / "cifar10" / "cifar10_subset.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: set ARENA_SHARED_DATA to the folder holding cifar10/")
    with np.load(path) as archive:
        pixels, labels = archive[f"{split}_data"][:count], archive[f"{split}_labels"][:count]
    images = torch.from_numpy(pixels.reshape(-1, 3, 32, 32)).float().div_(255)
    return images, torch.from_numpy(labels.astype(np.int64))


def resnet20() -> nn.Module:
    """The pretrained, non-robust ResNet-20 (91.5% on the subset's test images)."""
    from models.checkpoints.loading import load_model

    path = DATA / "pretrained" / "resnet20-12fca82f.th"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: set ARENA_SHARED_DATA to the folder holding pretrained/")
    return load_model(path, arch="resnet20", mean=MEAN, std=STD).model


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=default_device(), help="cpu or cuda (default: cuda if available)")


def machine(device: torch.device) -> str:
    """The processor (or card) the figures come from, and the threads torch uses."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    name = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{name}, {os.cpu_count()} cores, {threads} torch threads (torch {torch.__version__})"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds ``run`` took (the device drained before and after) and what it returned."""
    synchronize(device)
    start = time.perf_counter()
    out = run()
    synchronize(device)
    return time.perf_counter() - start, out


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (it reads as plain text in a terminal too)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
