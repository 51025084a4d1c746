"""The real pretrained checkpoints go through the upload API as they are (wrapped,
``module.``-prefixed, saved on CUDA, legacy format), and the stored file, loaded as the worker
loads it, scores the measured natural accuracy: with their ImageNet mean and std declared, and
without them, through the evaluation's first step (the normalisation check on the first 1000
test images, which is all that costs here: no attack runs)."""

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from tests.conftest import ADMIN_TOKEN
from tests.models.test_pretrained import SHARED, pytestmark  # noqa: F401 - skip without data

CASES = [("resnet20", "resnet20-12fca82f.th", 915), ("resnet56", "resnet56-4bfd9763.th", 926)]
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def upload(settings_env: dict[str, str], expected: str, filename: str, **data: str) -> Path:
    """Upload through the API (the architecture found must be ``expected``); the stored file
    the worker will read."""
    client = TestClient(create_app())
    token = client.post(
        "/api/teams", json={"name": filename}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["token"]
    response = client.post(
        "/api/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data=data,
        files={"checkpoint": (filename, (SHARED / "pretrained" / filename).read_bytes())},
    )
    assert response.status_code == 202, response.text
    assert response.json()["normalisation"] == "auto" and response.json()["arch"] == expected
    (stored,) = (Path(settings_env["ARENA_HOME"]) / "uploads").iterdir()
    return stored


def first_test_images(tmp_path: Path):
    from worker.data import load_eval_set

    data = np.load(SHARED / "cifar10" / "cifar10_subset.npz")
    eval_set = tmp_path / "test1000.npz"
    np.savez(eval_set, images=data["test_data"][:1000], labels=data["test_labels"][:1000])
    return load_eval_set(eval_set)  # the worker's reader, planar rows accepted


@pytest.mark.parametrize(("arch", "filename", "correct"), CASES)
def test_real_checkpoint_uploads_and_scores(settings_env, tmp_path, arch, filename, correct):
    import torch

    from models.checkpoints.loading import load_model

    stored = upload(
        settings_env, arch, filename, arch=arch, mean="0.485,0.456,0.406", std="0.229,0.224,0.225"
    )
    loaded = load_model(stored, arch=arch, **IMAGENET)
    images, labels = first_test_images(tmp_path)
    with torch.inference_mode():
        predicted = torch.cat([loaded.model(batch).argmax(1) for batch in images.split(500)])
    assert int((predicted == labels).sum()) == correct


@pytest.mark.parametrize(("arch", "filename", "correct"), CASES)
def test_real_checkpoint_without_mean_std_keeps_its_known_accuracy(
    settings_env, tmp_path, arch, filename, correct
):
    import torch

    from models.checkpoints.loading import load_model
    from worker.engine.suites import get_suite
    from worker.normalisation import settle_normalisation

    stored = upload(settings_env, arch, filename, arch="auto")
    loaded = load_model(stored, arch=arch)  # as the worker: the detected arch, no mean/std
    images, labels = first_test_images(tmp_path)
    settled, record = settle_normalisation(
        loaded, images, labels, get_suite(settings_env["ARENA_SUITE"]), device=torch.device("cpu")
    )
    chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
    print(
        f"{arch}: "
        + ", ".join(f"{c['name']} {c['accuracy'] or 0:.3f} on {c['measured']}" for c in record["candidates"])
    )
    assert record["n"] == 1000 and record["verdict"] == "kept" and not record["inferred"]
    assert chosen["accuracy"] == pytest.approx(correct / 1000, abs=0.01)
    assert (settled.mean, settled.std) == (IMAGENET["mean"], IMAGENET["std"])
