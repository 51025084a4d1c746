"""The worker's side of ``worker.forkserver``: start it, ask it for children, follow them.

A ``ForkedChild`` answers as much of ``subprocess.Popen`` as the launcher and the runner use
(``pid``, ``returncode``, ``poll``, ``wait``, ``send_signal``, ``kill``); its signals go
through the fork server, which only signals a child it has not reaped (a pid is never
reused under it). If the fork server dies its children die with it (their parent-death
signal) and end here as killed; the next ``shared()`` starts a new one.

Torch-free, as ``worker.isolation`` is.
"""

import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from worker.forkserver import MAX_MESSAGE, send

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0


class ForkserverUnavailable(Exception):
    """No child could be forked (the caller starts a fresh interpreter instead)."""


class ForkedChild:
    """A child of the fork server, seen from the worker."""

    def __init__(self, server: "Forkserver", pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: int | None = None
        self._ended = threading.Event()

    def _end(self, status: int) -> None:
        self.returncode = status
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self.server.signal(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Forkserver:
    """One running ``worker.forkserver`` and the children it forked for this process."""

    def __init__(self, env: Mapping[str, str]) -> None:
        """Start ``worker.forkserver`` with ``env`` (and its own scratch directory as home)."""
        self.scratch = tempfile.mkdtemp(prefix="arena-forkserver-")
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-I", "-m", "worker.forkserver", str(theirs.fileno()), str(os.getpid())]
        try:
            self.process = subprocess.Popen(
                command,
                cwd=self.scratch,
                env={**env, "HOME": self.scratch, "TMPDIR": self.scratch},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
            )
        finally:
            theirs.close()
        self.ready = threading.Event()
        self.alive = True
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}
        self.children: dict[int, ForkedChild] = {}
        threading.Thread(target=self._read, name="forkserver-reader", daemon=True).start()

    def _read(self) -> None:
        """Dispatch the fork server's messages until its socket closes."""
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                if message["op"] == "ready":
                    self.ready.set()
                elif message["op"] == "started":
                    child = self.children[message["pid"]] = ForkedChild(self, message["pid"])
                    self._answer(message["id"], child)
                elif message["op"] == "refused":
                    self._answer(message["id"], message["error"])
                elif message["op"] == "exit" and message["pid"] in self.children:
                    self.children.pop(message["pid"])._end(message["status"])
        with self._lock:
            self.alive = False
            for child in self.children.values():
                child._end(-signal.SIGKILL)  # killed by their parent-death signal
            self.children.clear()
            for waiter in list(self._waiting):
                self._answer(waiter, "the fork server stopped")
        self.ready.set()

    def _answer(self, request: int, answer: Any) -> None:
        event, slot = self._waiting.pop(request)
        slot.append(answer)
        event.set()

    def spawn(  # noqa: PLR0913 - what the child runs, then where, by keyword
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        policy: Mapping[str, Any],
        fds: Sequence[int],
        output: int,
    ) -> ForkedChild:
        """Fork a child running ``python -I ARGS`` confined by ``policy``; it finds each of
        ``fds`` at the same number and writes its output to ``output``."""
        if not self.ready.wait(READY_TIMEOUT) or not self.alive:
            raise ForkserverUnavailable("the fork server is not running")
        request = next(self._ids)
        event, slot = threading.Event(), list[Any]()
        message = {
            "op": "spawn",
            "id": request,
            "args": list(args),
            "env": dict(env),
            "cwd": cwd,
            "policy": dict(policy),
            "targets": list(fds),
        }
        with self._lock:
            self._waiting[request] = (event, slot)
        try:
            send(self.sock, message, [output, *fds])
        except OSError as error:
            with self._lock:
                self._waiting.pop(request, None)
            raise ForkserverUnavailable(f"the fork server could not be reached: {error}") from error
        event.wait()
        if not isinstance(slot[0], ForkedChild):
            raise ForkserverUnavailable(str(slot[0]))
        return slot[0]

    def signal(self, pid: int, signum: int) -> None:
        with contextlib.suppress(OSError):  # gone: its children died with it
            send(self.sock, {"op": "signal", "pid": pid, "signal": int(signum)})

    def close(self) -> None:
        """Stop the fork server (it kills the children it still has). ``shutdown`` first: it
        ends the reader's blocked ``recv`` and tells the server at once, which ``close``
        alone does not while another thread is reading."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


_shared: Forkserver | None = None
_shared_lock = threading.Lock()


def shared() -> Forkserver:
    """This process's fork server, started on first use and again after it died. Start it
    from a long-lived thread (the main one): its parent-death signal follows that thread.
    It sees the variables a child sees (read by torch as it loads, such as thread counts)."""
    from worker.isolation import passed_env

    global _shared  # noqa: PLW0603 - one fork server per worker process
    with _shared_lock:
        if _shared is None or not _shared.alive or _shared.process.poll() is not None:
            if _shared is not None:
                log.warning("the fork server stopped; starting a new one")
                _shared.close()
            _shared = Forkserver(passed_env())
        return _shared


def stop_shared() -> None:
    global _shared  # noqa: PLW0603
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None
