"""Breaking things for real: killed workers, a flushed broker, a restarted API, hung models."""

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import make_checkpoint
from tests.e2e.test_platform import database_url
from tests.processes import Platform

pytestmark = pytest.mark.slow


def result_rows(env: dict[str, str], submission_id: int) -> int:
    engine = create_engine(database_url(env))
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM results WHERE submission_id = :id"), {"id": submission_id}
        ).scalar_one()
    engine.dispose()
    return count


def flush_broker(env: dict[str, str]) -> None:
    """Lose every waiting message, as a Redis restart without persistence would."""
    if "ARENA_BROKER_URL" in env:
        import redis

        redis.Redis.from_url(env["ARENA_BROKER_URL"]).flushdb()
        return
    engine = create_engine(f"sqlite:///{Path(env['ARENA_HOME']) / 'broker.db'}")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM kombu_message"))
    engine.dispose()


def submit_slow(platform: Platform, token: str, tmp_path: Path) -> dict:
    response = platform.submit(token, tmp_path / "slow.pth", arch="resnet20")
    assert response.status_code == 202, response.text
    return response.json()


def wait_running(platform: Platform, submission_id: int, token: str, past: str = "fgsm") -> dict:
    """Wait until the evaluation has reached ``past`` (so it is truly in the middle)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = platform.wait_for(submission_id, token, statuses={"running", "finished", "failed"})
        progress = body.get("progress") or {}
        if body["status"] != "running" or progress.get("stage") in (past, "pgd_linf", "pgd_l2"):
            return body
        time.sleep(0.3)
    raise TimeoutError(platform.logs_text())


def test_sigkilled_worker_submission_finishes_exactly_once(slow_env, tmp_path):
    platform = Platform(slow_env, tmp_path, with_worker=False)
    try:
        first = platform.start_worker()
        token = platform.create_team("Resilient")
        created = submit_slow(platform, token, tmp_path)
        body = wait_running(platform, created["id"], token)
        assert body["status"] == "running", body
        first.kill()  # SIGKILL: no cleanup, no acknowledgement, lease left behind
        platform.start_worker()
        body = platform.wait_for(created["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())
        assert body["results"]["natural"]["accuracy"] == 1.0  # every image went through PGD
        assert body["attempts"] == 2
        assert result_rows(slow_env, created["id"]) == 1
    finally:
        platform.stop()


def test_flushed_broker_loses_no_submission(arena_env, tmp_path):
    platform = Platform(arena_env, tmp_path, with_worker=False)
    try:
        submitted = []
        for name in ("One", "Two", "Three"):
            token = platform.create_team(name)
            response = platform.submit(token, make_checkpoint(tmp_path / f"{name}.pth"))
            assert response.status_code == 202
            submitted.append((response.json()["id"], token))
        flush_broker(arena_env)
        platform.start_worker()
        for submission_id, token in submitted:
            body = platform.wait_for(submission_id, token)
            assert body["status"] == "finished", (body, platform.logs_text())
            assert result_rows(arena_env, submission_id) == 1
    finally:
        platform.stop()


def test_api_restart_while_running_loses_nothing(slow_env, tmp_path):
    platform = Platform(slow_env, tmp_path, with_worker=False)
    try:
        platform.start_worker()
        token = platform.create_team("Patient")
        created = submit_slow(platform, token, tmp_path)
        wait_running(platform, created["id"], token, past="natural")
        platform.restart_api()
        body = platform.wait_for(created["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())
        assert result_rows(slow_env, created["id"]) == 1
    finally:
        platform.stop()


def test_time_limit_fails_with_reason_and_worker_goes_on(arena_env, tmp_path):
    # On the class suite, certification (N = 100 000 noise draws per image) outlasts a 15 s
    # limit while the attacks alone on 16 images do not.
    env = {**arena_env, "ARENA_SUITE": "class", "ARENA_SOFT_TIME_LIMIT": "15", "ARENA_HARD_TIME_LIMIT": "20"}
    platform = Platform(env, tmp_path, with_worker=False)
    try:
        platform.start_worker()
        slow_token = platform.create_team("Slow")
        created = platform.submit(slow_token, make_checkpoint(tmp_path / "m.pth"), sigma="0.25")
        body = platform.wait_for(created.json()["id"], slow_token)
        assert body["status"] == "failed", body
        assert "time limit" in body["error"]
        token = platform.create_team("Quick")
        created = platform.submit(token, make_checkpoint(tmp_path / "q.pth")).json()
        body = platform.wait_for(created["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())
        assert len(platform.workers) == 1 and platform.workers[0].proc.poll() is None
    finally:
        platform.stop()


def test_concurrent_uploads_respect_the_quota(arena_env, tmp_path):
    env = {**arena_env, "ARENA_MAX_ACTIVE_PER_TEAM": "100", "ARENA_SUBMISSIONS_PER_DAY": "3"}
    platform = Platform(env, tmp_path, with_worker=False)
    try:
        import concurrent.futures

        token = platform.create_team("Eager")
        checkpoint = make_checkpoint(tmp_path / "m.pth")
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(lambda _: platform.submit(token, checkpoint).status_code, range(20)))
        assert codes.count(202) == 3, codes
        assert set(codes) == {202, 429}
        quota = httpx.get(
            platform.url + "/api/teams/me/quota", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert quota["remaining_today"] == 0
    finally:
        platform.stop()
