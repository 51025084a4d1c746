"""Bringing lost work back: run in a thread of every worker.

Every ``reconcile_seconds`` it requeues evaluations whose lease expired (their worker died),
evaluations queued in the database but absent from the broker (a flushed Redis), and
evaluations left ``validating`` by an API process that stopped mid-upload. Duplicated
messages are harmless: the lease lets exactly one worker run an evaluation. It also deletes
stored upload files that no submission refers to (an API process killed mid-upload), and
starts the final phase of each competition whose development phase has ended (once, whichever
worker gets there first).
"""

import logging
import time
from pathlib import Path

from celery import Celery

from server.state.config import Settings, get_settings
from server.state.db import session_scope
from server.state.finals import competitions_due, start_final_phase
from server.state.lifecycle import expired_leases, requeue_expired, stale_evaluations
from server.state.queue import enqueue
from server.state.submissions import stored_names
from server.state.tables import Competition, Status, utcnow
from worker.broker_contents import waiting_task_ids
from worker.periodic import Periodic

log = logging.getLogger(__name__)


def _send(app: Celery, evaluation_id: int) -> None:
    with session_scope() as session:
        enqueue(session, evaluation_id, app)


def sweep_uploads(settings: Settings) -> list[Path]:
    """Delete stored files that no submission row refers to; returns them.

    Only files older than ``upload_grace_seconds`` are considered, so an upload still being
    checked (stored before its row is written) is never swept. The files are listed before
    the rows are read: a row written in between keeps its file.
    """
    folder = settings.upload_dir
    if not folder.is_dir():
        return []
    cutoff = time.time() - settings.upload_grace_seconds
    old = []
    for path in folder.iterdir():
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                old.append(path)
        except OSError:
            continue  # deleted meanwhile
    if not old:
        return []
    with session_scope() as session:
        kept = stored_names(session=session)
    swept = [path for path in old if path.name not in kept]
    for path in swept:
        path.unlink(missing_ok=True)
        log.warning("deleted %s: a stored upload no submission refers to", path.name)
    return swept


def start_due_finals(app: Celery) -> list[int]:
    """Start the final phase of every competition whose development phase has ended; returns
    the final evaluations this worker created (none when another one started them first)."""
    started: list[int] = []
    now = utcnow()
    with session_scope() as session:
        due = [competition.id for competition in competitions_due(session, now)]
    for competition_id in due:
        with session_scope() as session:
            competition = session.get(Competition, competition_id)
            if competition is None:
                continue
            created = start_final_phase(session, competition, now, app=app)
        if created:
            log.warning("competition %s: final phase started, %d evaluations", competition_id, len(created))
        started += created
    return started


def reconcile_once(app: Celery, settings: Settings) -> list[int]:
    """One pass; returns the ids it requeued."""
    requeued: list[int] = []
    try:
        start_due_finals(app)
    except Exception:  # the other duties of the pass still run
        log.exception("starting a final phase failed")
    with session_scope() as session:
        expired = [e.id for e in expired_leases(session=session)]
        validating = [
            e.id
            for e in stale_evaluations(
                session=session, status=Status.VALIDATING, older_than=2 * settings.probe_timeout
            )
        ]
        queued = {
            e.id: e.task_id
            for e in stale_evaluations(
                session=session, status=Status.QUEUED, older_than=settings.requeue_after_seconds
            )
        }
    for evaluation_id in expired:
        with session_scope() as session:
            status = requeue_expired(
                session=session, evaluation_id=evaluation_id, max_attempts=settings.max_attempts
            )
        if status == Status.QUEUED:
            log.warning("evaluation %s: worker lost, requeued", evaluation_id)
            _send(app, evaluation_id)
            requeued.append(evaluation_id)
    for evaluation_id in validating:
        log.warning("evaluation %s: upload interrupted after storing, queued", evaluation_id)
        _send(app, evaluation_id)
        requeued.append(evaluation_id)
    if queued:
        waiting = waiting_task_ids(app)
        if waiting is not None:
            for evaluation_id, task_id in queued.items():
                if task_id not in waiting:
                    log.warning("evaluation %s: message missing from broker, requeued", evaluation_id)
                    _send(app, evaluation_id)
                    requeued.append(evaluation_id)
    try:
        sweep_uploads(settings)
    except OSError:
        log.exception("sweeping the upload folder failed")
    return requeued


_rounds = Periodic("arena-reconciler", log, "reconcile pass failed")


class Reconciler:
    """The reconciler thread of this worker process (one per process)."""

    @classmethod
    def start_background(cls, app: Celery) -> None:
        if _rounds.running:
            return
        settings = get_settings()
        _rounds.start(settings.reconcile_seconds, lambda: reconcile_once(app, settings))

    @classmethod
    def stop_background(cls) -> None:
        _rounds.stop()
