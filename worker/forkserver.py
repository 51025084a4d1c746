"""A pre-imported parent of evaluating children: ``python -I -m worker.forkserver FD PARENT``.

Importing torch and the engine is most of a second-long fixed cost of every evaluation; this
process pays it once per worker, then forks one child per evaluation. It is started by
``worker.forking`` as a child is (``python -I``, the environment allowlist, a scratch
directory) and reads no upload: its only input is the worker's socket ``FD``. It never
initialises CUDA (a fork after that would break it) and runs nothing on torch's thread pools.

Each fork, before it reads anything of the upload, closes every descriptor but the ones
its job names (the worker's socket among them: a child cannot ask for another child), takes
its own working directory and environment, and applies every layer of ``worker.confine``,
as the fresh interpreter does before ``exec``; then it runs ``-m MODULE ARGS`` or
``-c CODE`` as ``python -I`` would. Children share this process's memory layout (address
randomisation is per fork server, not per child); ``ARENA_CHILD_START=fresh`` gives each
evaluation a fresh interpreter instead.

Messages are JSON datagrams on a SOCK_SEQPACKET pair, descriptors passed with SCM_RIGHTS:
the worker sends ``spawn`` (with the descriptors) and ``signal``; this process answers
``ready``, ``started`` (the pid) or ``refused``, and ``exit`` with each child's status.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import runpy
import selectors
import signal
import socket
import sys
import tempfile
import traceback
from typing import Any, NoReturn

from worker import confine

#: What the evaluating child imports, loaded once here (not ``worker.sandbox`` itself, which
#: each child runs as ``__main__``), with what the engine imports only when it needs it: the
#: normalisation check's ``scipy.special`` (0.16 s a child otherwise) and certification's
#: ``scipy.stats`` (0.5 s).
PRELOADED = (
    "torch",
    "scipy.special",
    "models.checkpoints.loading",
    "worker.data",
    "worker.evaluation",
    "worker.normalisation",
    "worker.throughput",
    "worker.engine.certification",
)
MAX_MESSAGE = 1 << 20
MAX_FDS = 64
#: The names ``ps -o comm`` and ``/proc/PID/comm`` show (a fork's command line is its
#: server's): the fork server, and each child once it is confined.
SERVER_NAME, CHILD_NAME = b"arena-forksrv", b"arena-child"
_PR_SET_DUMPABLE, _PR_SET_NAME = 4, 15
_libc = ctypes.CDLL(None, use_errno=True)


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def _preload() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    import torch

    if torch.cuda.is_initialized():  # pragma: no cover - a guard against a future import
        raise RuntimeError("CUDA was initialised while preloading: forking would break it")


def _take_descriptors(received: list[int], targets: list[int]) -> None:
    """Leave open exactly: 0 (/dev/null), 1 and 2 (``received[0]``, the output pipe) and each
    of ``received[1:]`` at the number in ``targets`` the job names."""
    bound = max([*targets, *received, 2]) + 1
    held = [fcntl.fcntl(fd, fcntl.F_DUPFD, bound) for fd in received]
    keep = sorted(held)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    top = limit if limit != resource.RLIM_INFINITY else 1 << 20
    low = 3
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, top)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(held[0], 1)
    os.dup2(held[0], 2)
    for fd, target in zip(held[1:], targets, strict=True):
        os.dup2(fd, target)
    for fd in held:
        os.close(fd)


def _run(args: list[str]) -> int:
    """``python -I ARGS`` for ``-m MODULE ...`` and ``-c CODE ...``: the exit status."""
    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 - the platform's own code
        else:
            raise SystemExit(f"unsupported arguments: {args[:1]}")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - as the interpreter does: print it and exit with 1
        traceback.print_exc()
        return 1
    return 0


def _child(request: dict[str, Any], received: list[int], parent: int) -> NoReturn:
    """What a fork does, in the one order that keeps it confined before it reads the upload."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _take_descriptors(received, request["targets"])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        _libc.prctl(_PR_SET_NAME, CHILD_NAME, 0, 0, 0)
        confine.confine_and_report({**request["policy"], "parent": parent})
        status = _run(request["args"])
    except BaseException:  # noqa: BLE001 - never return into the server's loop
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


class Server:
    """The loop: fork on ``spawn``, signal on ``signal``, report every child's exit."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: set[int] = set()
        self.wake_read, wake_write = os.pipe()
        for fd in (self.wake_read, wake_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        selector.register(self.wake_read, selectors.EVENT_READ)
        send(self.sock, {"op": "ready", "pid": os.getpid()})
        while True:
            for key, _ in selector.select():
                if key.fileobj == self.wake_read:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_read, 4096)
                elif not self._handle():
                    self._stop_children()
                    return
            self._reap()

    def _handle(self) -> bool:
        data, received, _flags, _address = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
        if not data:
            return False  # the worker is gone
        request = json.loads(data)
        if request["op"] == "spawn":
            self._spawn(request, received)  # closes what it received
            return True
        for fd in received:
            os.close(fd)
        if request["op"] == "signal" and request["pid"] in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(request["pid"], request["signal"])
        return True

    def _spawn(self, request: dict[str, Any], received: list[int]) -> None:
        if len(received) != len(request["targets"]) + 1:
            send(self.sock, {"op": "refused", "id": request["id"], "error": "descriptors missing"})
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, received, os.getppid())
            self.children.add(pid)
            send(self.sock, {"op": "started", "id": request["id"], "pid": pid})
        for fd in received:
            os.close(fd)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            send(self.sock, {"op": "exit", "pid": pid, "status": os.waitstatus_to_exitcode(status)})

    def _stop_children(self) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> None:
    fd, parent = int(argv[0]), int(argv[1])
    confine.die_with_parent(parent)  # exits at once if the worker died while this one started
    _libc.prctl(_PR_SET_NAME, SERVER_NAME, 0, 0, 0)
    # Not dumpable: a process of the same uid (a child on a host without the uid switch or
    # Landlock) cannot ptrace it or take its socket with pidfd_getfd; its forks inherit it.
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    sock = socket.socket(fileno=fd)
    _preload()
    Server(sock).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
