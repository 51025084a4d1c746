"""The real pretrained checkpoints (akamaster/pytorch_resnet_cifar10, as found in the wild:
legacy format, saved on CUDA, wrapped, ``module.``-prefixed, ImageNet normalisation) upload as
they are and score their measured natural accuracy on the first 1000 CIFAR-10 test images."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoints.inspection import inspect_checkpoint
from models.checkpoints.loading import load_model

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ARENA_SHARED_DATA", REPO.parent / "shared" / "data"))
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

pytestmark = pytest.mark.skipif(
    not (SHARED / "pretrained").is_dir() or not (SHARED / "cifar10").is_dir(),
    reason=f"needs the real data, which is not part of the project: cifar10/cifar10_subset.npz "
    f"and pretrained/resnet20-12fca82f.th, resnet56-4bfd9763.th under {SHARED} (../shared/data "
    "beside the clone, or set ARENA_SHARED_DATA); CI has them",
)


@pytest.fixture(scope="module")
def test_images():
    data = np.load(SHARED / "cifar10" / "cifar10_subset.npz")
    images = torch.from_numpy(data["test_data"][:1000].reshape(-1, 3, 32, 32)).float() / 255
    return images, torch.from_numpy(data["test_labels"][:1000])


@pytest.mark.parametrize(
    ("arch", "filename", "accuracy"),
    [("resnet20", "resnet20-12fca82f.th", 0.915), ("resnet56", "resnet56-4bfd9763.th", 0.926)],
)
def test_real_checkpoint_reaches_its_measured_accuracy(test_images, arch, filename, accuracy):
    path = SHARED / "pretrained" / filename
    assert inspect_checkpoint(path) == "torch-legacy"
    loaded = load_model(path, arch=arch, **IMAGENET)
    assert loaded.arch == arch
    assert any("'module.' prefix" in note for note in loaded.notes)
    assert any("cuda" in note for note in loaded.notes)
    images, labels = test_images
    with torch.inference_mode():
        predictions = torch.cat([loaded.model(batch).argmax(1) for batch in images.split(500)])
    assert int((predictions == labels).sum()) == round(accuracy * len(labels))
