"""Stopping the platform for real: signals to ``arena serve``, its group and its workers.

Whatever is stopped, no process outlives ``serve``, and the evaluation it interrupted goes
back to the queue without counting a try, to finish after the next start with one result.
"""

import signal

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.test_platform import database_url
from tests.e2e.test_reliability import submit_slow, wait_running
from tests.processes import Platform, alive, command_line, descendants, wait_until

pytestmark = pytest.mark.slow


def stored(env: dict[str, str], submission_id: int) -> dict:
    """The submission's row, read from the database (the API may be down)."""
    engine = create_engine(database_url(env))
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT status, attempts, lease_owner, error FROM submissions WHERE id = :id"),
            {"id": submission_id},
        ).mappings().one()
    engine.dispose()
    return dict(row)


def sandbox_children(pids: list[int]) -> list[int]:
    return [pid for pid in pids if "worker.sandbox" in command_line(pid)]


def test_stopped_worker_kills_its_child_and_releases_its_lease_within_seconds(slow_env, tmp_path):
    platform = Platform(slow_env, tmp_path, with_worker=False)
    try:
        worker = platform.start_worker()
        token = platform.create_team("Interrupted")
        created = submit_slow(platform, token, tmp_path)
        assert wait_running(platform, created["id"], token)["attempts"] == 1
        tree = descendants(worker.proc.pid)
        assert sandbox_children(tree), tree

        worker.proc.send_signal(signal.SIGTERM)  # the worker alone (its own session)
        released = wait_until(
            lambda: platform.submission(created["id"], token)["status"] == "queued", 5,
            f"lease released\n{platform.logs_text()}",
        )
        gone = wait_until(lambda: not any(map(alive, [worker.proc.pid, *tree])), 10,
                          f"worker and child gone\n{platform.logs_text()}")
        print(f"SIGTERM to a worker: lease released in {released:.2f} s, all gone in {gone:.2f} s")
        body = platform.submission(created["id"], token)
        assert body["attempts"] == 0 and body["error"] is None, body
        assert stored(slow_env, created["id"])["lease_owner"] is None
    finally:
        platform.stop()
