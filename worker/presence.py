"""A worker's heartbeat in the database, so the API knows whether any worker is alive.

Recorded when the worker is ready, refreshed every ``worker_heartbeat_seconds`` (with the
submission it evaluates), deleted when it stops; a killed worker's row goes stale and is
pruned a day later by the next worker to start.
"""

import logging
import os
import socket
import threading

from server.state.config import get_settings
from server.state.db import session_scope
from server.state.workers import forget_workers, record_worker
from worker.runner import WORKER_ID

log = logging.getLogger(__name__)

PRUNE_AFTER = 24 * 3600.0


def _beat() -> None:
    with session_scope() as session:
        record_worker(session=session, worker_id=WORKER_ID, hostname=socket.gethostname(), pid=os.getpid())


class Presence:
    """The heartbeat thread of this worker process (one per process, like the reconciler)."""

    _thread: threading.Thread | None = None
    _stop = threading.Event()

    @classmethod
    def start_background(cls) -> None:
        if cls._thread is not None:
            return
        interval = get_settings().worker_heartbeat_seconds
        with session_scope() as session:
            forget_workers(session=session, unseen_for=PRUNE_AFTER)
        _beat()
        cls._stop.clear()

        def loop() -> None:
            while not cls._stop.wait(interval):
                try:
                    _beat()
                except Exception:  # noqa: BLE001 - a database hiccup must not stop the beats
                    log.exception("worker heartbeat failed")

        cls._thread = threading.Thread(target=loop, name="arena-presence", daemon=True)
        cls._thread.start()

    @classmethod
    def stop_background(cls) -> None:
        cls._stop.set()
        if cls._thread is not None:
            cls._thread.join(timeout=5)
            cls._thread = None
        try:
            with session_scope() as session:
                forget_workers(session=session, worker_id=WORKER_ID)
        except Exception:  # noqa: BLE001 - the row goes stale instead
            log.exception("could not delete the worker heartbeat")
