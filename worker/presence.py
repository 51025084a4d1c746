"""A worker's heartbeat in the database, so the API knows whether any worker is alive.

Recorded when the worker is ready, refreshed every ``worker_heartbeat_seconds`` (with the
submission it evaluates), deleted when it stops; a killed worker's row goes stale and is
pruned a day later by the next worker to start.
"""

import logging
import os
import socket

from server.state.config import get_settings
from server.state.db import session_scope
from server.state.workers import forget_workers, record_worker
from worker.periodic import Periodic
from worker.runner import WORKER_ID

log = logging.getLogger(__name__)

PRUNE_AFTER = 24 * 3600.0


def _beat() -> None:
    with session_scope() as session:
        record_worker(session=session, worker_id=WORKER_ID, hostname=socket.gethostname(), pid=os.getpid())


_beats = Periodic("arena-presence", log, "worker heartbeat failed")


class Presence:
    """The heartbeat thread of this worker process (one per process, like the reconciler)."""

    @classmethod
    def start_background(cls) -> None:
        if _beats.running:
            return
        interval = get_settings().worker_heartbeat_seconds
        with session_scope() as session:
            forget_workers(session=session, unseen_for=PRUNE_AFTER)
        _beat()
        _beats.start(interval, _beat)

    @classmethod
    def stop_background(cls) -> None:
        _beats.stop(wait=5)
        try:
            with session_scope() as session:
                forget_workers(session=session, worker_id=WORKER_ID)
        except Exception:  # noqa: BLE001 - the row goes stale instead
            log.exception("could not delete the worker heartbeat")
