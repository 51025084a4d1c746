"""The fork server: each evaluating child is a confined fork of one pre-imported process.

What a fork must not inherit from it (descriptors, the worker's secrets, an earlier child's
upload), how its end is reported (exit status, signals, the fork server's own death), and
that a forked evaluation's results are a fresh interpreter's, to the digit.
"""

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import evaluation_job, make_checkpoint, make_labelled_eval_set
from tests.processes import alive, wait_until
from worker import forking
from worker.forking import Forkserver, ForkserverUnavailable, shared
from worker.isolation import Sandbox
from worker.protocol import Done


def forked(server: Forkserver, code: str, *, files: tuple[Path, ...] = ()) -> tuple[int, str]:
    """(exit status, output) of CODE run in a fork (``FDS``: its files' descriptors)."""
    with Sandbox(files=files, forkserver=server) as box:
        box.start(["-c", f"FDS = {box.fds!r}\nMESSAGES = {box.message_fd!r}\n{code}"])
        status = box.wait(timeout=60)
        assert box.forked
        return status, box.output()


def test_a_fork_holds_only_its_own_descriptors(forkserver: Forkserver, tmp_path: Path) -> None:
    upload = tmp_path / "upload.pt"
    upload.write_bytes(b"weights")
    status, output = forked(
        forkserver,
        "import json, os\n"
        "kinds = {}\n"
        "for fd in sorted(int(name) for name in os.listdir('/proc/self/fd')):\n"
        "    try:\n"
        "        kinds[fd] = os.readlink(f'/proc/self/fd/{fd}')\n"
        "    except FileNotFoundError:\n"
        "        pass  # the listing's own descriptor, closed since\n"
        "fds = list(kinds)\n"
        "print(json.dumps({'fds': fds, 'expected': sorted([0, 1, 2, *FDS, MESSAGES]), 'kinds': kinds}))",
        files=(upload,),
    )
    seen = json.loads(output.strip().splitlines()[-1])
    assert status == 0
    assert seen["fds"] == seen["expected"], seen["kinds"]  # not the fork server's socket
    assert not any("socket" in kind for kind in seen["kinds"].values())


def test_one_child_leaves_nothing_for_the_next(forkserver: Forkserver, tmp_path: Path) -> None:
    upload = tmp_path / "team-a.pt"
    upload.write_bytes(b"team A's secret weights")
    status, _ = forked(
        forkserver,
        "import os, worker\nworker.LEFT_BEHIND = os.read(FDS[0], 100)\n"
        "import torch\ntorch.LEFT_BEHIND = worker.LEFT_BEHIND",
        files=(upload,),
    )
    assert status == 0
    status, output = forked(
        forkserver,
        "import json, worker, torch\n"
        "print(json.dumps([hasattr(worker, 'LEFT_BEHIND'), hasattr(torch, 'LEFT_BEHIND')]))",
    )
    assert status == 0 and json.loads(output.strip().splitlines()[-1]) == [False, False]


def test_the_fork_server_holds_no_secret_of_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_ADMIN_TOKEN", "secret-admin-token")
    monkeypatch.setenv("ARENA_DATABASE_URL", "postgresql://user:password@db/arena")
    monkeypatch.setattr(forking, "_shared", None)
    server = shared()  # as the worker starts it, from the worker's environment
    try:
        assert server.ready.wait(120)
        environ = Path(f"/proc/{server.process.pid}/environ").read_bytes()
        status, output = forked(server, "import os, json\nprint(json.dumps(dict(os.environ)))")
    finally:
        server.close()
    assert b"secret-admin-token" not in environ and b"password" not in environ
    assert status == 0 and "secret-admin-token" not in output and "ARENA_" not in output


@pytest.mark.parametrize(
    ("code", "status", "printed"),
    [
        ("raise SystemExit(7)", 7, ""),
        ("raise ValueError('broken model')", 1, "ValueError: broken model"),
        ("import sys\nsys.exit('a message')", 1, "a message"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL, ""),
        ("pass", 0, ""),
    ],
)
def test_a_fork_ends_as_the_interpreter_would(
    forkserver: Forkserver, code: str, status: int, printed: str
) -> None:
    ended, output = forked(forkserver, code)
    assert ended == status
    assert printed in output


def test_signals_reach_a_running_fork_and_never_a_reaped_one(forkserver: Forkserver) -> None:
    with Sandbox(forkserver=forkserver) as box:
        box.start(["-c", "import time\ntime.sleep(60)"])
        assert box.process is not None
        box.process.send_signal(signal.SIGTERM)
        assert box.wait(timeout=30) == -signal.SIGTERM
        box.process.kill()  # already reaped: nothing is sent
        assert box.process.poll() == -signal.SIGTERM


def test_when_the_fork_server_dies_its_children_die_and_a_new_one_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = Forkserver({})
    with Sandbox(forkserver=server) as box:
        box.start(["-c", "import time\ntime.sleep(60)"])
        assert box.process is not None
        pid = box.process.pid
        server.process.kill()
        assert box.wait(timeout=30) == -signal.SIGKILL  # as its parent-death signal did
    read_end, write_end = os.pipe()
    with pytest.raises(ForkserverUnavailable):
        server.spawn(["-c", ""], env={}, cwd="/", policy={}, fds=[], output=write_end)
    os.close(read_end)
    os.close(write_end)
    server.close()
    wait_until(lambda: not alive(pid), 10, f"child {pid} gone")
    monkeypatch.setattr(forking, "_shared", server)
    replacement = shared()
    try:
        assert replacement is not server and forked(replacement, "pass")[0] == 0
    finally:
        replacement.close()


def _evaluate(tmp_path: Path, server: Forkserver | None) -> dict:
    checkpoint = make_checkpoint(tmp_path / "lenet.pt", seed=3)
    eval_set = make_labelled_eval_set(tmp_path / "set.npz", checkpoint, "lenet", n=24)
    with Sandbox(files=[checkpoint, eval_set], forkserver=server) as box:
        box.start(["-m", "worker.sandbox", evaluation_job(box, "smoke").model_dump_json()])
        last = list(box.messages())[-1]
        assert box.wait(timeout=300) == 0, box.output()
        assert box.forked == (server is not None)
    assert isinstance(last, Done) and last.results is not None
    return last.results


def test_a_forked_evaluation_gives_a_fresh_interpreters_results(
    forkserver: Forkserver, tmp_path: Path
) -> None:
    assert _evaluate(tmp_path, forkserver) == _evaluate(tmp_path, None)


def test_a_closed_fork_server_exits_by_itself_and_takes_its_children() -> None:
    server = Forkserver({})
    with Sandbox(forkserver=server) as box:
        box.start(["-c", "import time\ntime.sleep(60)"])
        assert box.process is not None
        pid = box.process.pid
        server.close()  # while its reader thread is blocked reading the socket
        assert server.process.returncode == 0  # it saw the socket close: not killed after a wait
        wait_until(lambda: not alive(pid), 10, f"child {pid} gone")


def test_a_fork_cannot_take_the_fork_servers_descriptors(forkserver: Forkserver) -> None:
    status, output = forked(
        forkserver,
        "import ctypes, json, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "server = os.pidfd_open(os.getppid())\n"
        "taken = [n for n in range(64) if libc.syscall(438, server, n, 0) >= 0]  # pidfd_getfd\n"
        "print(json.dumps({'taken': taken, 'errno': ctypes.get_errno()}))",
    )
    seen = json.loads(output.strip().splitlines()[-1])
    assert status == 0 and seen["taken"] == [], seen
