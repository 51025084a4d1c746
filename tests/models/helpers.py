"""Helpers for the model-intake tests: payloads that must never run, archives, networks."""

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


class FileCreator:
    """Unpickling this creates ``target`` (through ``__reduce__``): a stand-in for any payload."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def rewrite_zip(source: Path, destination: Path, edit: Callable[[dict[str, bytes]], None]) -> Path:
    """Copy a zip archive with its entries edited in memory (names -> bytes)."""
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    edit(entries)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return destination


def torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class TinyNet(nn.Module):
    """A custom (non-zoo) CNN for the torch.export tests."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


def export_to(model: nn.Module, path: Path) -> Path:
    """The export recipe of models/checkpoints/EXPORT.md."""
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (torch.rand(2, 3, 32, 32),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, str(path))
    return path
