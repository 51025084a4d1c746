"""Fixtures shared by the model-intake tests."""

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.models.helpers import TinyNet, export_to


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    model = TinyNet()
    path = export_to(model, tmp_path_factory.mktemp("export") / "tiny.pt2")
    return path, model
