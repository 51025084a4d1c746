"""The whole path with real processes: upload → row → queue → worker → results → leaderboard."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import make_checkpoint
from tests.processes import Platform

pytestmark = pytest.mark.slow

METRICS = ("natural", "fgsm", "pgd_linf", "pgd_l2")


def database_url(env: dict[str, str]) -> str:
    return env.get("ARENA_DATABASE_URL") or f"sqlite:///{Path(env['ARENA_HOME']) / 'arena.db'}"


def test_upload_is_evaluated_by_a_real_worker_and_ranked(arena_env: dict[str, str], tmp_path: Path):
    """Long because it follows one upload through every real process, one block per step of the data flow."""
    platform = Platform(arena_env, tmp_path)
    try:
        token = platform.create_team("Team Ada")
        response = platform.submit(
            token, make_checkpoint(tmp_path / "ada.pth", seed=1), description="first try"
        )
        assert response.status_code == 202, response.text
        created = response.json()
        assert created["status"] in ("queued", "running")  # a free worker may already have it

        body = platform.wait_for(created["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())
        results = body["results"]
        for key in METRICS:
            entry = results[key]
            assert 0.0 <= entry["accuracy"] <= 1.0
            low, high = entry["ci95"]
            assert low <= entry["accuracy"] <= high
            assert entry["n"] == 16
        assert results["suite"]["name"] == "smoke"
        assert results["pgd_linf"]["accuracy"] <= results["natural"]["accuracy"]

        board = httpx.get(platform.url + "/api/leaderboard").json()
        (row,) = board["rows"]
        assert row["team"] == "Team Ada" and row["rank"] == 1
        assert row["submission_id"] == created["id"]
        expected = sum(results[k]["accuracy"] for k in ("natural", "pgd_linf", "pgd_l2")) / 3
        assert row["score"] == pytest.approx(expected)
        assert "Team Ada" in httpx.get(platform.url + "/").text

        # `arena evaluate` runs the very same evaluation locally: the same numbers.
        local = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli",
                "evaluate",
                str(tmp_path / "ada.pth"),
                "--arch",
                "lenet",
                "--json",
            ],
            env={**os.environ, **arena_env},
            capture_output=True,
            text=True,
            check=True,
        )
        mine = json.loads(local.stdout)
        for key in (*METRICS, "suite", "flags"):
            assert mine[key] == results[key], key

        # The result lives in the configured database (PostgreSQL when the test sets one).
        engine = create_engine(database_url(arena_env))
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM results")).scalar_one()
            timed = connection.execute(text("SELECT arch, device FROM throughputs")).all()
        engine.dispose()
        assert count == 1
        # The worker timed its reference network when it started and the LeNet when it met it:
        # the cost model's rates for later estimates.
        assert sorted(timed) == [("lenet", "cpu"), ("resnet20", "cpu")]
    finally:
        platform.stop()
