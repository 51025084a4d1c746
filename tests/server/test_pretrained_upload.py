"""The real pretrained checkpoints go through the upload API as they are (wrapped,
``module.``-prefixed, saved on CUDA, legacy format) with their ImageNet mean and std, and the
stored file, loaded as the worker loads it, scores the measured natural accuracy."""

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from tests.conftest import ADMIN_TOKEN
from tests.models.test_pretrained import SHARED, pytestmark  # noqa: F401 - skip without data

CASES = [("resnet20", "resnet20-12fca82f.th", 915), ("resnet56", "resnet56-4bfd9763.th", 926)]


@pytest.mark.parametrize(("arch", "filename", "correct"), CASES)
def test_real_checkpoint_uploads_and_scores(settings_env, tmp_path, arch, filename, correct):
    import torch

    client = TestClient(create_app())
    token = client.post(
        "/api/teams", json={"name": arch}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["token"]
    response = client.post(
        "/api/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"arch": arch, "mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225"},
        files={"checkpoint": (filename, (SHARED / "pretrained" / filename).read_bytes())},
    )
    assert response.status_code == 202, response.text
    assert response.json()["arch"] == arch

    from models.loading import load_model
    from worker.data import load_eval_set

    (stored,) = (Path(settings_env["ARENA_HOME"]) / "uploads").iterdir()
    loaded = load_model(stored, arch=arch, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    data = np.load(SHARED / "cifar10" / "cifar10_subset.npz")
    eval_set = tmp_path / "test1000.npz"
    np.savez(eval_set, images=data["test_data"][:1000], labels=data["test_labels"][:1000])
    images, labels = load_eval_set(eval_set)  # the worker's reader, planar rows accepted
    with torch.inference_mode():
        predicted = torch.cat([loaded.model(batch).argmax(1) for batch in images.split(500)])
    assert int((predicted == labels).sum()) == correct
