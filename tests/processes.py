"""Starting the real platform as subprocesses: ``arena serve`` and ``arena worker``."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN

TERMINAL = {"finished", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def alive(pid: int) -> bool:
    """Running or sleeping, not gone and not a zombie (which only waits to be reaped)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, grandchildren...), whatever its session."""
    parents = {p: stat[1] for p in _pids() if (stat := _stat(p)) and stat[0] not in ("Z", "X")}
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def children(pid: int) -> list[int]:
    """Living processes whose parent is ``pid``."""
    return [p for p in _pids() if (stat := _stat(p)) and stat[1] == pid and stat[0] not in "ZX"]


def group_members(pgid: int) -> list[int]:
    """Living processes of the process group ``pgid``."""
    return [p for p in _pids() if (stat := _stat(p)) and stat[2] == pgid and stat[0] not in "ZX"]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def process_name(pid: int) -> str:
    """``/proc/PID/comm``: what ``ps -o comm`` shows (a forked child names itself there)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


class Process:
    """A child process whose output goes to a log file, shown when a test fails."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()

    def kill(self) -> None:
        """SIGKILL the process alone (its sandboxed child dies with it)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Platform:
    """``arena serve`` on a free port, optionally with separate workers."""

    def __init__(self, env: dict[str, str], logs: Path, with_worker: bool = True) -> None:
        self.env = env
        self.logs = logs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers: list[Process] = []
        args = ["serve", "--port", str(self.port)] + ([] if with_worker else ["--no-worker"])
        self.api = Process(args, env, logs / "serve.log")
        self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api.proc.poll() is not None:
                raise RuntimeError("arena serve exited:\n" + self.api.tail())
            try:
                if httpx.get(self.url + "/api/architectures", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("arena serve did not answer:\n" + self.api.tail())

    def restart_api(self, with_worker: bool = False) -> None:
        self.api.stop()
        args = ["serve", "--port", str(self.port)] + ([] if with_worker else ["--no-worker"])
        self.api = Process(args, self.env, self.logs / "serve.log")
        self.wait_ready()

    def start_worker(self) -> Process:
        worker = Process(["worker"], self.env, self.logs / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.api.stop()

    def logs_text(self) -> str:
        parts = [f"--- serve\n{self.api.tail()}"]
        parts += [f"--- worker {i}\n{w.tail()}" for i, w in enumerate(self.workers)]
        return "\n".join(parts)

    # --- API helpers -------------------------------------------------------------------

    def create_team(self, name: str) -> str:
        response = httpx.post(
            self.url + "/api/teams",
            json={"name": name},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def submit(self, token: str, checkpoint: Path, **fields: str) -> httpx.Response:
        with checkpoint.open("rb") as handle:
            return httpx.post(
                self.url + "/api/submissions",
                headers={"Authorization": f"Bearer {token}"},
                data={"arch": "lenet", **fields},
                files={"checkpoint": (checkpoint.name, handle)},
                timeout=180,
            )

    def submission(self, submission_id: int, token: str) -> dict:
        response = httpx.get(
            f"{self.url}/api/submissions/{submission_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(
        self, submission_id: int, token: str, timeout: float = 600, statuses: set[str] = TERMINAL
    ) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            response = httpx.get(
                f"{self.url}/api/submissions/{submission_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            body = response.json()
            if body.get("status") in statuses:
                return body
            time.sleep(0.5)
        raise TimeoutError(f"submission {submission_id} stuck at {body}\n{self.logs_text()}")
