"""A daemon thread that runs one action every few seconds until it is stopped: the worker's
heartbeat (``worker.presence``) and its reconciler (``worker.reconciler``)."""

import logging
import threading
from collections.abc import Callable


class Periodic:
    """``action`` every ``interval`` seconds (the first one interval after the start) in a daemon
    thread named ``name``. A failed round is logged as ``failure`` on ``log`` and the next one
    runs as usual: a database hiccup must not end the rounds. One per process; starting it
    while it runs does nothing."""

    def __init__(self, name: str, log: logging.Logger, failure: str) -> None:
        self.name, self.log, self.failure = name, log, failure
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, interval: float, action: Callable[[], object]) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._rounds, args=(interval, action), name=self.name, daemon=True
        )
        self._thread.start()

    def stop(self, *, wait: float = 0) -> None:
        """End the rounds; wait up to ``wait`` seconds for one under way (0: do not wait)."""
        self._stop.set()
        if self._thread is not None and wait > 0:
            self._thread.join(timeout=wait)
        self._thread = None

    def _rounds(self, interval: float, action: Callable[[], object]) -> None:
        while not self._stop.wait(interval):
            try:
                action()
            except Exception:  # noqa: BLE001 - the next round may well succeed
                self.log.exception(self.failure)
