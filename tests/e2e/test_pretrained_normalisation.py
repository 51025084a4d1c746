"""The real pretrained ResNet-20/56 (trained on ImageNet statistics), uploaded through the real
platform without mean/std, score their known natural accuracy on the first 1000 CIFAR-10 test
images. The smoke suite keeps the attacks to 64 images: the normalisation step, on all 1000,
is what this costs. Skips without the shared data."""

from pathlib import Path

import numpy as np
import pytest

from tests.models.test_pretrained import SHARED
from tests.models.test_pretrained import pytestmark as needs_shared_data
from tests.processes import Platform

pytestmark = [needs_shared_data, pytest.mark.slow]

KNOWN = {"resnet20": ("resnet20-12fca82f.th", 0.915), "resnet56": ("resnet56-4bfd9763.th", 0.926)}


@pytest.fixture
def test_env(arena_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    data = np.load(SHARED / "cifar10" / "cifar10_subset.npz")
    eval_set = tmp_path / "test1000.npz"
    np.savez(eval_set, images=data["test_data"][:1000], labels=data["test_labels"][:1000])
    return {**arena_env, "ARENA_EVAL_SET": str(eval_set)}


def test_pretrained_resnets_without_mean_std_score_their_known_accuracy(test_env, tmp_path):
    platform = Platform(test_env, tmp_path)
    try:
        submitted = {}
        for arch, (filename, _) in KNOWN.items():
            token = platform.create_team(f"Team {arch}")
            response = platform.submit(token, SHARED / "pretrained" / filename, arch="auto")
            assert response.status_code == 202, response.text
            submitted[arch] = (response.json()["id"], token)
        for arch, (submission_id, token) in submitted.items():
            body = platform.wait_for(submission_id, token)
            assert body["status"] == "finished", (body, platform.logs_text())
            assert body["arch"] == arch
            record = body["results"]["normalisation"]
            chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
            print(f"{arch}: {chosen['accuracy']:.3f} with {record['chosen']} on {record['n']}; "
                  + ", ".join(f"{c['name']} {c['accuracy']:.3f}" for c in record["candidates"]))
            assert record["n"] == 1000
            assert chosen["accuracy"] == pytest.approx(KNOWN[arch][1], abs=0.01)
            assert chosen["mean"] == [0.485, 0.456, 0.406] and chosen["std"] == [0.229, 0.224, 0.225]
            assert body["normalisation_inferred"] is False  # the zoo's default is right here
    finally:
        platform.stop()
