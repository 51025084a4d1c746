"""Intake against a real ``arena serve``: a probe stopped mid-way locks out no one, a wrong
token is refused before the body is read, and the worker's sweep removes orphaned files."""

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_checkpoint
from tests.processes import Platform

pytestmark = pytest.mark.slow


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, stack = _children(), set(), [pid]
    while stack:
        for child in tree.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


@pytest.fixture
def platform(arena_env: dict[str, str], tmp_path: Path):
    platform = Platform(arena_env, tmp_path, with_worker=False)
    yield platform
    platform.stop()


def test_a_stopped_probe_locks_out_no_other_team(platform, tmp_path):
    """While one upload's probe child is frozen (SIGSTOP), another team is created and its
    upload goes through: no transaction of the first upload is open meanwhile."""
    checkpoint = make_checkpoint(tmp_path / "m.pth")
    first_token = platform.create_team("Frozen")
    api = platform.api.proc.pid
    before = descendants(api)
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(platform.submit(first_token, checkpoint)))
    thread.start()
    frozen: set[int] = set()
    try:
        frozen = _freeze_new_children(api, before, thread)
        assert frozen, "no probe child appeared\n" + platform.logs_text()

        second_token = platform.create_team("Unhindered")  # asserts 201
        response = platform.submit(second_token, checkpoint)
        assert response.status_code == 202, response.text
        assert thread.is_alive(), "the first upload should still be waiting for its probe"
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        thread.join()
    assert answers and answers[0].status_code == 202, answers[0].text if answers else None


def _freeze_new_children(api: int, before: set[int], thread: threading.Thread) -> set[int]:
    """SIGSTOP the processes the API started since ``before`` (probe children), once one
    appears; returns them."""
    frozen: set[int] = set()
    deadline = time.monotonic() + 120
    while not frozen and time.monotonic() < deadline and thread.is_alive():
        frozen = descendants(api) - before
        time.sleep(0.05)
    while True:  # freeze the child, then any process it started meanwhile
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        new = descendants(api) - before - frozen
        if not new:
            return frozen
        frozen |= new


def test_uploads_waiting_for_a_probe_leave_the_other_routes_answering(arena_env, tmp_path):
    """Both probe slots frozen and 42 more uploads waiting for one: more than the thread
    pool the other routes run in. They wait without holding a thread, so the API answers."""
    env = {**arena_env, "ARENA_MAX_ACTIVE_PER_TEAM": "100", "ARENA_SUBMISSIONS_PER_DAY": "100"}
    platform = Platform(env, tmp_path, with_worker=False)
    checkpoint = make_checkpoint(tmp_path / "m.pth")
    token = platform.create_team("Crowd")
    api = platform.api.proc.pid
    frozen: set[int] = set()

    def upload() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the platform is stopped under it at the end
            platform.submit(token, checkpoint)

    try:
        threads = []
        for _ in range(2):
            before = descendants(api) | frozen
            threads.append(threading.Thread(target=upload))
            threads[-1].start()
            frozen |= _freeze_new_children(api, before, threads[-1])
        assert len(frozen) >= 2, platform.logs_text()
        for _ in range(42):
            threads.append(threading.Thread(target=upload))
            threads[-1].start()
        mine = {"submissions": []}
        deadline = time.monotonic() + 300
        while len(mine["submissions"]) < 44 and time.monotonic() < deadline:
            mine = httpx.get(
                platform.url + "/api/submissions",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            ).json()
        assert len(mine["submissions"]) == 44, platform.logs_text()
        assert {s["status"] for s in mine["submissions"]} == {"validating"}
        platform.create_team("Still served")  # asserts 201
        one = httpx.get(f"{platform.url}/api/submissions/{mine['submissions'][0]['id']}")
        assert one.status_code == 200
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        platform.stop()


def _refused_before_body(url: str, framing: str, path: str = "/api/submissions") -> bytes:
    """Send a request's headers and a first slice of a huge body; return the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                "Authorization: Bearer arena_not-a-real-token\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"{framing}\r\n"
                "\r\n"
            ).encode()
        )
        piece = b'--b\r\nContent-Disposition: form-data; name="checkpoint"; filename="m.pth"\r\n\r\n'
        piece += b"\0" * 65536
        if framing.startswith("Transfer-Encoding"):
            piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sock.sendall(piece)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.parametrize("framing", ["Content-Length: 150000000", "Transfer-Encoding: chunked"])
def test_a_wrong_token_is_refused_before_the_body(platform, framing):
    answer = _refused_before_body(platform.url, framing)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    answer = _refused_before_body(platform.url, framing, path="/api/teams")
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]


def test_the_worker_sweeps_orphaned_uploads(arena_env, tmp_path):
    env = {**arena_env, "ARENA_UPLOAD_GRACE_SECONDS": "30", "ARENA_RECONCILE_SECONDS": "0.5"}
    platform = Platform(env, tmp_path)
    try:
        token = platform.create_team("Tidy")
        response = platform.submit(token, make_checkpoint(tmp_path / "m.pth"))
        assert response.status_code == 202, response.text
        uploads = Path(env["ARENA_HOME"]) / "uploads"
        (kept,) = list(uploads.iterdir())
        orphan = uploads / "00000000000000000000000000000000.pth"
        orphan.write_bytes(b"stored by an API process killed before its row was written")
        past = time.time() - 3600
        for path in (kept, orphan):
            os.utime(path, (past, past))
        deadline = time.monotonic() + 180
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not orphan.exists(), platform.logs_text()
        assert kept.exists()
    finally:
        platform.stop()
