"""Fixtures of the end-to-end tests."""

from pathlib import Path

import pytest

from tests.conftest import make_checkpoint, make_labelled_eval_set


@pytest.fixture
def slow_env(arena_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """An evaluation long enough to interrupt in the middle, however fast the machine: the
    class suite on images the submitted ResNet-20 (``slow_checkpoint``) classifies all
    correctly, so every attack of the suite runs on every image (several seconds of PGD)."""
    checkpoint = make_checkpoint(tmp_path / "slow.pth", arch="resnet20")
    eval_set = make_labelled_eval_set(tmp_path / "big.npz", checkpoint, "resnet20", n=192)
    return {**arena_env, "ARENA_EVAL_SET": str(eval_set), "ARENA_SUITE": "class"}
