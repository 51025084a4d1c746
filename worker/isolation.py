"""The one launcher of every child that touches an upload (the probe and the evaluation).

A ``Sandbox`` gives the child: an empty scratch directory as its working directory and home,
removed afterwards; ``python -I`` (no working directory on ``sys.path``, no ``PYTHON*``
variables); an environment built from an allowlist (never the admin token, the database or
the broker); the files it needs as open descriptors, so it reads exactly those and no
directory permission matters; a pipe of its own for messages, while its stdout and stderr are
only drained into the log. ``worker.confine`` then applies, inside the child, the layers the
host allows: an unprivileged uid, no_new_privs, resource limits, death with the parent, no
network, and a file system it can only read, except the scratch directory. The child is a
fresh interpreter (``worker.confine`` confines it, then ``exec``s the job), or a fork of a
worker's fork server (``worker.forkserver``: the same ``confine`` in the fork, before the job).

Torch-free: the API starts its probe with it.
"""

import collections
import io
import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Protocol

from worker.forking import Forkserver, ForkserverUnavailable
from worker.protocol import Message, read_messages

log = logging.getLogger(__name__)

PASSED_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
)
"""The only variables of the platform's environment a child sees."""

SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys")
PACKAGES = ("models", "worker")
OUTPUT_TAIL_BYTES = 8192


@dataclass(frozen=True)
class Limits:
    """Resource limits of a child; 0 leaves one unset."""

    address_space_mb: int = 0
    file_size_mb: int = 1024
    open_files: int = 1024
    processes: int = 1024

    def rlimits(self) -> dict[str, int]:
        mib = 1024 * 1024
        return {
            "address_space": self.address_space_mb * mib,
            "file_size": self.file_size_mb * mib,
            "open_files": self.open_files,
            "processes": self.processes,
        }


def sandbox_ids(user: str) -> tuple[int, int]:
    """uid and gid of the sandbox user; nobody (65534) on a host that lacks it."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def _read_paths() -> list[str]:
    """What a child may read: the system, the interpreter, the environment, the project."""
    here = Path(__file__).resolve().parent.parent
    paths: list[str | Path] = [
        *SYSTEM_READ,
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        *(here / package for package in PACKAGES),
        *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
    ]
    resolved = {os.path.realpath(path) for path in paths if os.path.exists(path)}
    return sorted(resolved)


def passed_env() -> dict[str, str]:
    """This process's values of ``PASSED_ENV``."""
    return {name: os.environ[name] for name in PASSED_ENV if name in os.environ}


def child_env(scratch: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = passed_env()
    env.update(
        HOME=str(scratch),
        TMPDIR=str(scratch),
        XDG_CACHE_HOME=str(scratch / ".cache"),
        TORCH_HOME=str(scratch / "torch"),
        TORCH_FORCE_WEIGHTS_ONLY_LOAD="1",
    )
    env.update(extra)
    return env


class Child(Protocol):
    """What the launcher and the runner use of a child: a ``subprocess.Popen`` (a fresh
    interpreter) or a ``worker.forking.ForkedChild``."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, signum: int) -> None: ...
    def kill(self) -> None: ...


@dataclass
class _Drain:
    """Reads a stream to its end, keeping only its last bytes: a child cannot fill memory
    or block on a full pipe, and nothing it prints is interpreted."""

    stream: io.BufferedReader
    tail: collections.deque[bytes] = field(default_factory=lambda: collections.deque())
    kept: int = 0

    def run(self) -> None:
        while chunk := self.stream.read1(4096):
            self.tail.append(chunk)
            self.kept += len(chunk)
            while self.kept - len(self.tail[0]) >= OUTPUT_TAIL_BYTES:
                self.kept -= len(self.tail.popleft())
        self.stream.close()

    def text(self) -> str:
        return b"".join(self.tail)[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")


class Sandbox:
    """One confined child: ``with Sandbox(files=...) as box: box.start(args)``.

    Open the sandbox, read the descriptor numbers the child will find its files at
    (``box.fds``) and its message pipe's (``box.message_fd``) to describe the job, then start
    it. Leaving the block kills the child if it still runs and removes the scratch directory.
    With a ``forkserver`` the child is a fork of that pre-imported process (confined the same
    way, before it reads anything); without one, or when it cannot fork, a fresh interpreter.
    """

    def __init__(  # noqa: PLR0913 - all by keyword
        self,
        *,
        files: Sequence[Path] = (),
        limits: Limits = Limits(),
        user: str = "arena-sandbox",
        env: Mapping[str, str] | None = None,
        forkserver: Forkserver | None = None,
    ) -> None:
        self.files, self.limits, self.user, self.extra_env = list(files), limits, user, env or {}
        self.forkserver = forkserver
        self.forked = False
        self.fds: list[int] = []
        self.process: Child | None = None
        self._drain: _Drain | None = None
        self.uid: int | None = None
        self.gid: int | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "Sandbox":
        self.scratch = Path(tempfile.mkdtemp(prefix="arena-child-"))
        try:
            self.uid, self.gid = sandbox_ids(self.user) if os.geteuid() == 0 else (None, None)
            if self.uid is not None and self.gid is not None:
                os.chown(self.scratch, self.uid, self.gid)
            self.fds = [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in self.files]
            self._read_end, self.message_fd = os.pipe()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self, args: Sequence[str], *, report_fd: int | None = None) -> None:
        """Run ``python -I ARGS`` confined; the child finds the files at ``self.fds``."""
        policy = {
            "uid": self.uid,
            "gid": self.gid,
            "parent": os.getpid(),
            "report_fd": report_fd,
            "read": [*_read_paths(), *self.fds],
            "write": [str(self.scratch)],
            "devices": ["/dev"],
            "limits": self.limits.rlimits(),
        }
        passed = [*self.fds, self.message_fd, *([report_fd] if report_fd is not None else [])]
        env = child_env(self.scratch, self.extra_env)
        output = self._fork(args, env, policy, passed) if self.forkserver is not None else None
        if output is None:
            output = self._exec(args, env, policy, passed)
        os.close(self.message_fd)
        self.message_fd = -1
        self._drain = _Drain(output)
        thread = threading.Thread(target=self._drain.run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _fork(
        self, args: Sequence[str], env: dict[str, str], policy: Mapping[str, object], passed: list[int]
    ) -> io.BufferedReader | None:
        """The child as a fork of the fork server; None when it cannot fork one."""
        assert self.forkserver is not None
        read_end, write_end = os.pipe()
        try:
            self.process = self.forkserver.spawn(
                args, env=env, cwd=str(self.scratch), policy=policy, fds=passed, output=write_end
            )
        except ForkserverUnavailable as error:
            log.warning("starting a fresh interpreter instead of a fork: %s", error)
            os.close(read_end)
            return None
        finally:
            os.close(write_end)
        self.forked = True
        return open(read_end, "rb")  # noqa: SIM115 - closed by the drain

    def _exec(
        self, args: Sequence[str], env: dict[str, str], policy: Mapping[str, object], passed: list[int]
    ) -> io.BufferedReader:
        """The child as a fresh interpreter, confined by ``worker.confine`` before ``exec``."""
        command = [
            sys.executable,
            "-I",
            "-m",
            "worker.confine",
            json.dumps(policy),
            sys.executable,
            "-I",
            *args,
        ]
        process = subprocess.Popen(
            command,
            cwd=self.scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=passed,
        )
        self.process = process
        # A pipe opened with the default buffering: a BufferedReader, which has read1.
        assert isinstance(process.stdout, io.BufferedReader)
        return process.stdout

    def messages(self) -> Iterator[Message]:
        """The child's validated messages until it closes its pipe (MalformedMessage else)."""
        with os.fdopen(self._read_end, "rb", closefd=False) as stream:
            yield from read_messages(stream)

    def wait(self, timeout: float | None = None) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def output(self) -> str:
        """The last bytes the child printed (for the log only)."""
        for thread in self._threads:
            thread.join(timeout=5)
        return self._drain.text() if self._drain else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            printed = self.output()
            if printed.strip():
                log.info(
                    "child %d exited with %s; its last output:\n%s",
                    self.process.pid,
                    self.process.returncode,
                    printed,
                )
        for fd in [*self.fds, getattr(self, "_read_end", -1), getattr(self, "message_fd", -1)]:
            if fd >= 0:
                os.close(fd)
        self.fds = []
        self._read_end = self.message_fd = -1
        shutil.rmtree(self.scratch, ignore_errors=True)


@dataclass(frozen=True)
class LayerReport:
    active: list[str]
    missing: dict[str, str]

    def describe(self) -> str:
        missing = "; ".join(f"{name} ({why})" for name, why in self.missing.items())
        return f"active: {', '.join(self.active)}; missing: {missing or 'none'}"


PARENT_LAYERS = [
    "scratch working directory",
    "python -I",
    "environment allowlist",
    "files passed as descriptors",
    "message pipe",
]


@cache
def layers(user: str = "arena-sandbox", forkserver: Forkserver | None = None) -> LayerReport:
    """The layers a child gets on this host, found by confining one that does nothing (a
    fork of ``forkserver`` when one is given)."""
    report_read, report_write = os.pipe()
    try:
        with Sandbox(user=user, forkserver=forkserver) as box:
            box.start(["-c", ""], report_fd=report_write)
            os.close(report_write)
            report_write = -1
            with os.fdopen(report_read, "rb", closefd=False) as stream:
                raw = stream.read(65536)
            box.wait()
    finally:
        for fd in (report_read, report_write):
            if fd >= 0:
                os.close(fd)
    try:
        found = json.loads(raw)
    except ValueError:
        return LayerReport(PARENT_LAYERS, {"confinement": "the confining process failed"})
    return LayerReport(PARENT_LAYERS + found["active"], found["missing"])


def log_layers(user: str, who: str, forkserver: Forkserver | None = None) -> LayerReport:
    """Say once, at start, which layers confine this process's children and how they start."""
    try:
        report = layers(user, forkserver)
    except OSError as error:
        report = LayerReport(PARENT_LAYERS, {"confinement": f"no child could start: {error}"})
    level = logging.WARNING if report.missing else logging.INFO
    start = "forks of a pre-imported process" if forkserver is not None else "fresh interpreters"
    log.log(level, "%s children (%s) are isolated by %s", who, start, report.describe())
    return report
