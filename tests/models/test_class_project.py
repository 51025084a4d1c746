"""The class's project folder (model.py with Net.load_for_testing) loads for local evaluation."""

import sys
import textwrap

import pytest
import torch

from models.checkpoints.errors import CheckpointError
from models.checkpoints.loading import load_class_project, probe_model

MODEL_PY = textwrap.dedent(
    """
    import os

    import torch
    import torch.nn as nn

    from layers import HIDDEN  # a helper module next to model.py


    class Net(nn.Module):
        model_file = "models/default_model.pth"

        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(3 * 32 * 32, HIDDEN)
            self.fc2 = nn.Linear(HIDDEN, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

        def load_for_testing(self, project_dir="./"):
            path = os.path.join(project_dir, Net.model_file)
            self.load_state_dict(torch.load(path, map_location="cpu"))
    """
)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "team-project"
    (folder / "models").mkdir(parents=True)
    (folder / "model.py").write_text(MODEL_PY)
    (folder / "layers.py").write_text("HIDDEN = 16\n")
    torch.manual_seed(0)
    weights = {
        "fc1.weight": torch.randn(16, 3072) * 0.01,
        "fc1.bias": torch.zeros(16),
        "fc2.weight": torch.randn(10, 16),
        "fc2.bias": torch.zeros(10),
    }
    torch.save(weights, folder / "models" / "default_model.pth")
    return folder, weights


def test_class_project_loads_its_weights_and_takes_pixels(project):
    folder, weights = project
    path_before = list(sys.path)
    loaded = load_class_project(folder)
    assert sys.path == path_before
    assert loaded.arch == "class-project" and loaded.surrogate is None
    probe_model(loaded)
    x = torch.rand(2, 3, 32, 32)
    expected = torch.relu(x.flatten(1) @ weights["fc1.weight"].T) @ weights["fc2.weight"].T
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), expected, atol=1e-5)


def test_broken_projects_are_reported(project, tmp_path):
    folder, _ = project
    (folder / "models" / "default_model.pth").unlink()
    with pytest.raises(CheckpointError, match="model.py failed: FileNotFoundError"):
        load_class_project(folder)
    with pytest.raises(CheckpointError, match="no model.py"):
        load_class_project(tmp_path)
    (folder / "model.py").write_text("import torch\n")
    with pytest.raises(CheckpointError, match="defines no class Net"):
        load_class_project(folder)
