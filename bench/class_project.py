"""A class-format project folder holding the pretrained ResNet-20, and the class split.

The folder is what a team hands in under the class's rules: ``model.py`` defining ``Net`` (its
own ResNet-20 code, normalisation inside ``forward``) with ``load_for_testing(project_dir)``,
and the weights under ``models/``. The evaluation set is the class split: the first 1024
training images of the real CIFAR-10 subset, written as ``arena data import`` would. Both
are built once under ``bench/.cache/``.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np

from bench.fixtures import CACHE, DATA

CLASS_IMAGES = 1024
MODEL_PY = textwrap.dedent(
    '''
    """ResNet-20 for CIFAR-10 (He et al. 2016, option-A shortcuts), takes [0, 1] pixels."""

    import os

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            short = x if self.pad is None else F.pad(
                x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + short)


    class Net(nn.Module):
        model_file = "models/default_model.pth"

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            layers, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = [Block(cin, cout, stride)] + [Block(cout, cout, 1) for _ in range(2)]
                layers.append(nn.Sequential(*blocks))
                cin = cout
            self.layer1, self.layer2, self.layer3 = layers
            self.linear = nn.Linear(64, 10)
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

        def forward(self, x):
            x = (x - self.mean) / self.std
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))

        def load_for_testing(self, project_dir="./"):
            path = os.path.join(project_dir, Net.model_file)
            state = torch.load(path, map_location="cpu")
            state = {k.removeprefix("module."): v for k, v in state["state_dict"].items()}
            self.load_state_dict(state)
            self.eval()
    '''
)


def resnet20_project() -> Path:
    """The project folder (built once): model.py and models/default_model.pth."""
    folder = CACHE / "resnet20-project"
    weights = DATA / "pretrained" / "resnet20-12fca82f.th"
    if not weights.is_file():
        raise SystemExit(f"{weights} is missing: set ARENA_SHARED_DATA to the folder holding pretrained/")
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(MODEL_PY)
    target = folder / "models" / "default_model.pth"
    if not target.is_file():
        shutil.copyfile(weights, target)
    return folder


def class_split() -> Path:
    """The class split as an evaluation set file (first 1024 training images)."""
    from worker.data import save_eval_set

    path = CACHE / "cifar10-class.npz"
    if not path.is_file():
        source = DATA / "cifar10" / "cifar10_subset.npz"
        if not source.is_file():
            raise SystemExit(f"{source} is missing: set ARENA_SHARED_DATA to the folder holding cifar10/")
        with np.load(source) as archive:
            pixels = archive["train_data"][:CLASS_IMAGES].reshape(-1, 3, 32, 32)
            labels = archive["train_labels"][:CLASS_IMAGES]
        save_eval_set(path, pixels, labels)
    return path
