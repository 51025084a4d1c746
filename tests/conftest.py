"""Shared fixtures: an isolated platform home, small real data, real services when configured.

Set ARENA_TEST_DATABASE_URL (PostgreSQL) and ARENA_TEST_REDIS_URL to run the platform tests
against real servers; otherwise they use the embedded SQLite database and broker.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.state.config import get_settings
from worker.forking import Forkserver
from worker.isolation import Sandbox
from worker.protocol import Job

ADMIN_TOKEN = "test-admin-token"


def make_eval_set(path: Path, n: int = 16, seed: int = 0) -> Path:
    """A small CIFAR-shaped evaluation set of random images (torchvision's layout)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    np.savez(path, images=images, labels=labels)
    return path


def make_labelled_eval_set(path: Path, checkpoint: Path, arch: str, n: int) -> Path:
    """Random images labelled by the network in ``checkpoint``: it classifies all of them
    correctly, so every attack of a suite runs on every image (a long evaluation by design,
    for tests that must see one in the middle however fast the machine)."""
    import torch

    from models.architectures.registry import build_model
    from worker.data import load_eval_set, save_eval_set

    images, _ = load_eval_set(make_eval_set(path, n=n))
    model = build_model(arch)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    with torch.inference_mode():
        labels = model.eval()(images).argmax(1).numpy()
    save_eval_set(path, (images * 255).round().byte().numpy(), labels)
    return path


def make_checkpoint(path: Path, arch: str = "lenet", seed: int = 0, **wrap: object) -> Path:
    """A state_dict of a freshly initialised zoo network, saved like a training script would."""
    import torch

    from models.architectures.registry import build_model

    torch.manual_seed(seed)
    state = build_model(arch).state_dict()
    torch.save({"state_dict": state, **wrap} if wrap else state, path)
    return path


@pytest.fixture
def postgres_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database per test when ARENA_TEST_DATABASE_URL is set."""
    base = os.environ.get("ARENA_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"arena_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str | None]:
    """The test Redis (flushed before and after) when ARENA_TEST_REDIS_URL is set."""
    url = os.environ.get("ARENA_TEST_REDIS_URL")
    if url:
        import redis

        client = redis.Redis.from_url(url)
        client.flushdb()
        yield url
        client.flushdb()
    else:
        yield None


@pytest.fixture
def arena_env(tmp_path: Path, postgres_url: str | None, redis_url: str | None) -> dict[str, str]:
    """Environment variables of an isolated platform (fast settings for tests)."""
    env = {
        "ARENA_HOME": str(tmp_path / "home"),
        "ARENA_EVAL_SET": str(make_eval_set(tmp_path / "eval.npz")),
        "ARENA_SUITE": "smoke",
        "ARENA_ADMIN_TOKEN": ADMIN_TOKEN,
        "ARENA_DEVICE": "cpu",
        "ARENA_LEASE_SECONDS": "6",
        "ARENA_RECONCILE_SECONDS": "2",
        "ARENA_REQUEUE_AFTER_SECONDS": "5",
        "ARENA_SUBMISSIONS_PER_DAY": "50",
        "ARENA_MAX_UPLOAD_MB": "20",
    }
    if postgres_url:
        env["ARENA_DATABASE_URL"] = postgres_url
    if redis_url:
        env["ARENA_BROKER_URL"] = redis_url
    return env


@pytest.fixture
def settings_env(arena_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Apply ``arena_env`` to this process (for in-process API tests) and migrate the schema."""
    for key, value in arena_env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    from server.state.migrate import upgrade

    upgrade()
    yield arena_env
    get_settings.cache_clear()


def evaluation_job(box: "Sandbox", suite: str, eval_set_name: str = "set.npz") -> "Job":
    """The job of a LeNet evaluation in ``box``, opened on (checkpoint, evaluation set)."""
    from worker.protocol import Job

    return Job(
        kind="evaluate",
        message_fd=box.message_fd,
        checkpoint_fd=box.fds[0],
        eval_set_fd=box.fds[1],
        eval_set_name=eval_set_name,
        arch="lenet",
        suite=suite,
        device="cpu",
    )


@pytest.fixture(scope="session")
def forkserver() -> Iterator["Forkserver"]:
    """The fork server evaluating children start from (``worker.forking.shared``), once per run."""
    from worker import forking

    server = forking.shared()
    yield server
    forking.stop_shared()
