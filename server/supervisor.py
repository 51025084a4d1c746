"""``arena serve``'s processes: the API and the embedded worker, as children it watches.

Both children run in ``serve``'s process group. A SIGTERM or SIGINT to ``serve`` alone (as
systemd or a container runtime sends it) or to the whole group (Ctrl-C) stops both: each gets
SIGTERM at once, and whatever still runs ``STOP_GRACE`` seconds later is killed, so nothing
outlives ``serve``. A worker stops within a second or two (it kills its evaluating child and
gives the submission back to the queue, uncharged). Each child also gets SIGTERM if ``serve``
itself is killed. A worker that dies on its own is started again, after a back-off that grows
while it keeps dying; if the API dies, ``serve`` stops the worker and exits with an error, for
a service manager to restart it.
"""

import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("arena.serve")

#: Seconds the children have to stop before they are killed (the API's own graceful shutdown
#: is shorter, see ``API_GRACE``).
STOP_GRACE = 8.0
#: Seconds uvicorn waits for requests in flight when asked to stop.
API_GRACE = 4
#: A worker that ran this long before dying is started again at once.
STABLE_SECONDS = 60.0
MAX_BACKOFF = 60.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child before it executes: SIGTERM when ``serve`` dies, however (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads here
        self.started, self.restart_at = time.monotonic(), None
        log.info("%s started (pid %s)", self.name, self.proc.pid)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def schedule_restart(self) -> float:
        """After an unexpected exit: when to start again (sooner if it had run for a while)."""
        if time.monotonic() - self.started >= STABLE_SECONDS:
            self.failures = 0
        delay = min(MAX_BACKOFF, 2.0**self.failures)
        self.failures += 1
        self.restart_at = time.monotonic() + delay
        return delay


class Supervisor:
    """Starts the children, restarts the worker, and stops everything on SIGTERM or SIGINT."""

    def __init__(self, api: list[str], worker: list[str] | None) -> None:
        self.api = Child("the API", api)
        self.worker = Child("the worker", worker) if worker else None
        self.signalled: int | None = None

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.signalled is None:
            self.signalled = signum

    def run(self) -> int:
        """Supervise until a signal or the API's exit; returns ``serve``'s exit status."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        children = [self.api, *([self.worker] if self.worker else [])]
        for child in children:
            child.start()
        status = 0
        while self.signalled is None:
            time.sleep(0.1)
            if not self.api.running():
                assert self.api.proc is not None
                status = self.api.proc.returncode or 1
                log.error("the API exited (status %s): stopping", self.api.proc.returncode)
                break
            if self.worker is not None:
                self._keep_worker()
        if self.signalled is not None:
            log.info("%s: stopping the API and the worker", signal.Signals(self.signalled).name)
        self.stop(children)
        return status

    def _keep_worker(self) -> None:
        worker = self.worker
        assert worker is not None and worker.proc is not None
        if worker.restart_at is not None:
            if time.monotonic() >= worker.restart_at:
                worker.start()
        elif worker.proc.poll() is not None:
            delay = worker.schedule_restart()
            log.error(
                "the worker (pid %s) exited with status %s; starting it again in %g s",
                worker.proc.pid,
                worker.proc.returncode,
                delay,
            )

    def stop(self, children: list[Child]) -> None:
        """SIGTERM to every child at once, SIGKILL to any left after ``STOP_GRACE``."""
        started = time.monotonic()
        live = [child for child in children if child.running()]
        for child in live:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = started + STOP_GRACE
        for child in live:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop within %g s: killed", child.name, STOP_GRACE)
                child.proc.kill()
                child.proc.wait()
            log.info("%s stopped after %.1f s", child.name, time.monotonic() - started)
