"""Leases and idempotent results: one worker runs an evaluation, one result row is written,
and failures of the platform give the quota back."""

import signal
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from server.api.probe import probe_checkpoint
from server.state.config import get_settings
from server.state.db import session_scope
from server.state.lifecycle import (
    cancel_evaluation,
    claim_evaluation,
    finish_evaluation,
    mark_queued,
    requeue_expired,
)
from server.state.submissions import reserve_submission
from server.state.tables import Evaluation, Result, Status, utcnow
from server.state.teams import create_team, quota_usage
from tests.conftest import make_checkpoint
from tests.server.rows import default_target
from worker.runner import WORKER_ID, ChildOutcome, _settle

RESULTS = {"suite": {"name": "smoke", "version": "1"}, "natural": {"accuracy": 0.5}}


def queued_evaluation(session, name: str = "Ada") -> int:
    team, _ = create_team(session=session, name=name)
    evaluation = reserve_submission(
        session=session,
        team_id=team.id,
        **default_target(session),
        per_day=5,
        max_active=1,
        arch="lenet",
        stored_name="x.pth",
        sha256="0" * 64,
        size_bytes=1,
        suite="smoke",
    )
    mark_queued(session=session, evaluation_id=evaluation.id, task_id="t1")
    return evaluation.id


def test_a_live_lease_keeps_other_workers_out(settings_env):
    with session_scope() as session:
        sid = queued_evaluation(session)
        assert claim_evaluation(session=session, evaluation_id=sid, owner="A", lease_seconds=60)
        assert not claim_evaluation(session=session, evaluation_id=sid, owner="B", lease_seconds=60)
        assert not mark_queued(session=session, evaluation_id=sid, task_id="dup")
        assert session.get(Evaluation, sid).status == Status.RUNNING


def test_result_is_written_once_by_the_lease_holder(settings_env):
    with session_scope() as session:
        sid = queued_evaluation(session)
        claim_evaluation(session=session, evaluation_id=sid, owner="A", lease_seconds=60)
        assert not finish_evaluation(session=session, evaluation_id=sid, owner="B", results=RESULTS)
        assert finish_evaluation(session=session, evaluation_id=sid, owner="A", results=RESULTS)
        assert not finish_evaluation(session=session, evaluation_id=sid, owner="A", results=RESULTS)
        assert not claim_evaluation(session=session, evaluation_id=sid, owner="C", lease_seconds=60)
        rows = session.scalar(select(func.count(Result.id)).where(Result.evaluation_id == sid))
    assert rows == 1


def test_expired_lease_is_requeued_then_failed_uncharged(settings_env):
    with session_scope() as session:
        sid = queued_evaluation(session)
        team_id = session.get(Evaluation, sid).submission.team_id
        for attempt in range(1, 4):
            assert claim_evaluation(session=session, evaluation_id=sid, owner=f"w{attempt}", lease_seconds=60)
            session.execute(
                update(Evaluation)
                .where(Evaluation.id == sid)
                .values(lease_expires=utcnow() - timedelta(seconds=1))
            )
            session.commit()
            status = requeue_expired(session=session, evaluation_id=sid, max_attempts=3)
            assert status == (Status.QUEUED if attempt < 3 else Status.FAILED)
        evaluation = session.get(Evaluation, sid)
        session.refresh(evaluation)
        session.refresh(evaluation.submission)
        assert evaluation.status == Status.FAILED and not evaluation.submission.charged
        assert "does not count against your quota" in evaluation.error
        used, active = quota_usage(session=session, team_id=team_id)
    assert (used, active) == (0, 0)


@pytest.mark.parametrize("returncode", [-signal.SIGINT, -signal.SIGTERM])
def test_a_child_interrupted_by_a_stop_goes_back_uncounted(settings_env, returncode):
    """Ctrl-C or SIGTERM to the worker's group ends its child so: never "out of memory?",
    never one of the submission's tries, however often the server is restarted."""
    with session_scope() as session:
        sid = queued_evaluation(session)
    for _restart in range(4):
        with session_scope() as session:
            assert claim_evaluation(session=session, evaluation_id=sid, owner=WORKER_ID, lease_seconds=60)
        interrupted = ChildOutcome(returncode, None, timed_out=False, lease_lost=False)
        assert _settle(sid, interrupted, None, get_settings()) == "released"
    with session_scope() as session:
        evaluation = session.get(Evaluation, sid)
        assert (evaluation.status, evaluation.attempts, evaluation.error) == ("queued", 0, None)
        assert evaluation.lease_owner is None and evaluation.progress is None


def test_cancelled_submission_is_not_run_and_not_charged(settings_env):
    with session_scope() as session:
        sid = queued_evaluation(session)
        assert cancel_evaluation(session=session, evaluation_id=sid)
        assert not claim_evaluation(session=session, evaluation_id=sid, owner="A", lease_seconds=60)
        team_id = session.get(Evaluation, sid).submission.team_id
        assert quota_usage(session=session, team_id=team_id) == (0, 0)


def test_probe_runs_under_a_memory_limit(settings_env, tmp_path, monkeypatch):
    from server.state.config import get_settings

    checkpoint = make_checkpoint(tmp_path / "m.pth")
    assert probe_checkpoint(checkpoint, arch="lenet", mean=None, std=None, settings=get_settings()).ok
    monkeypatch.setenv("ARENA_PROBE_MEMORY_LIMIT_MB", "300")
    get_settings.cache_clear()
    starved = probe_checkpoint(checkpoint, arch="lenet", mean=None, std=None, settings=get_settings())
    assert not starved.ok
    assert "crashed the loading process" in starved.message or "memory" in starved.message
