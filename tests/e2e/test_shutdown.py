"""Stopping the platform for real: signals to ``arena serve``, its group and its workers.

Whatever is stopped, no process outlives ``serve``, and the evaluation it interrupted goes
back to the queue without counting a try, to finish after the next start with one result.
"""

import os
import signal

import httpx
import pytest
from sqlalchemy import create_engine, text

from server.state.estimates import NO_WORKER
from tests.conftest import make_checkpoint
from tests.e2e.test_platform import database_url
from tests.e2e.test_reliability import result_rows, submit_slow, wait_running
from tests.processes import (
    Platform,
    alive,
    children,
    command_line,
    descendants,
    group_members,
    process_name,
    wait_until,
)

pytestmark = pytest.mark.slow


def stored(env: dict[str, str], submission_id: int) -> dict:
    """The submission's evaluation (its only one here), read from the database (the API may be
    down)."""
    engine = create_engine(database_url(env))
    with engine.connect() as connection:
        row = (
            connection.execute(
                text(
                    "SELECT status, attempts, lease_owner, error FROM evaluations WHERE submission_id = :id"
                ),
                {"id": submission_id},
            )
            .mappings()
            .one()
        )
    engine.dispose()
    return dict(row)


def sandbox_children(pids: list[int]) -> list[int]:
    """The evaluating children among ``pids``: fresh interpreters or forks of the fork server."""
    return [
        pid for pid in pids if "worker.sandbox" in command_line(pid) or process_name(pid) == "arena-child"
    ]


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
            lambda: platform.submission(created["id"], token)["status"] == "queued",
            5,
            f"lease released\n{platform.logs_text()}",
        )
        gone = released + wait_until(
            lambda: not any(map(alive, [worker.proc.pid, *tree])),
            10,
            f"worker and child gone\n{platform.logs_text()}",
        )
        print(f"SIGTERM to a worker: lease released in {released:.2f} s, all gone in {gone:.2f} s")
        body = platform.submission(created["id"], token)
        assert body["attempts"] == 0 and body["error"] is None, body
        assert stored(slow_env, created["id"])["lease_owner"] is None
    finally:
        platform.stop()


@pytest.mark.parametrize("how", ["SIGTERM to serve alone", "SIGINT to its group"])
def test_stopped_serve_leaves_no_process_and_finishes_the_evaluation_after_restart(how, slow_env, tmp_path):
    platform = Platform(slow_env, tmp_path)
    try:
        token = platform.create_team("Restarted")
        created = submit_slow(platform, token, tmp_path)
        assert wait_running(platform, created["id"], token)["attempts"] == 1
        serve = platform.api.proc.pid
        tree = descendants(serve)
        assert sandbox_children(tree), tree

        if how.startswith("SIGTERM"):
            os.kill(serve, signal.SIGTERM)
        else:
            os.killpg(serve, signal.SIGINT)
        took = wait_until(
            lambda: not group_members(serve) and not any(map(alive, [serve, *tree])),
            10,
            f"every process gone\n{platform.logs_text()}",
        )
        print(f"{how}: serve, worker and child gone in {took:.2f} s")
        row = stored(slow_env, created["id"])
        assert row["status"] == "queued" and row["attempts"] == 0, row

        # The next start evaluates 4 of the images only, to keep the test short.
        platform.env = {**slow_env, "ARENA_EVAL_LIMIT": "4"}
        platform.restart_api(with_worker=True)
        body = platform.wait_for(created["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())
        assert body["attempts"] == 1
        assert result_rows(slow_env, created["id"]) == 1
    finally:
        platform.stop()


def test_embedded_worker_that_dies_is_started_again(arena_env, tmp_path):
    platform = Platform(arena_env, tmp_path)
    try:
        serve = platform.api.proc.pid

        def workers() -> list[int]:
            return [p for p in children(serve) if "server.cli worker" in command_line(p)]

        wait_until(workers, 60, "an embedded worker")
        [first] = workers()
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: set(workers()) - {first}, 30, f"a new worker\n{platform.logs_text()}")
        assert "starting it again" in platform.api.log.read_text()
        token = platform.create_team("After the crash")
        created = platform.submit(token, make_checkpoint(tmp_path / "m.pth")).json()
        body = platform.wait_for(created["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())
    finally:
        platform.stop()


def test_without_a_live_worker_the_api_and_the_page_say_so(arena_env, tmp_path):
    platform = Platform(arena_env, tmp_path, with_worker=False)
    try:
        token = platform.create_team("Waiting")
        checkpoint = make_checkpoint(tmp_path / "m.pth")

        def says_no_worker(submission_id: int) -> bool:
            body = platform.submission(submission_id, token)
            page = httpx.get(f"{platform.url}/submissions/{submission_id}").text
            return (
                body["waiting_for_worker"]
                and NO_WORKER in body["estimate"]["summary"]
                and (NO_WORKER in page)
            )

        first = platform.submit(token, checkpoint).json()
        assert says_no_worker(first["id"])
        worker = platform.start_worker()
        body = platform.wait_for(first["id"], token)
        assert body["status"] == "finished", (body, platform.logs_text())

        worker.stop()  # a worker that stops deletes its heartbeat
        second = platform.submit(token, checkpoint).json()
        assert says_no_worker(second["id"])
    finally:
        platform.stop()
