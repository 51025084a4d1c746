"""Every child started by ``worker.isolation`` is confined: real children, real layers.

Test code runs in the child as ``python -I -c CODE`` through the same launcher as the probe
and the evaluation, and prints what it observed as one JSON line (read from its drained
output, which the platform itself only logs). Each test runs twice: the child as a fresh
interpreter, and as a fork of the worker's pre-imported fork server. Layers a host cannot
apply are skipped with the reason; ``test_reports_the_layers`` prints which are active here.
"""

import json
import os
import resource
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from server.api.probe import probe_checkpoint
from server.state.config import Settings
from tests.conftest import evaluation_job, make_checkpoint, make_labelled_eval_set
from worker.forking import Forkserver
from worker.isolation import Limits, Sandbox, layers
from worker.protocol import STOPPED, Done, Progress

AS_ROOT = os.geteuid() == 0
#: The fork server of the current test's "fork" run, None in its "fresh" run.
FORKSERVER: Forkserver | None = None


@pytest.fixture(autouse=True, params=["fresh", "fork"])
def launcher(request: pytest.FixtureRequest, forkserver: Forkserver) -> Iterator[str]:
    global FORKSERVER  # noqa: PLW0603 - the helpers below read it
    FORKSERVER = forkserver if request.param == "fork" else None
    yield request.param
    FORKSERVER = None


def sandbox(**options: object) -> Sandbox:
    return Sandbox(forkserver=FORKSERVER, **options)  # type: ignore[arg-type]


def run(code: str, *, files: Sequence[Path] = (), limits: Limits = Limits()) -> tuple[dict, Sandbox]:
    """Run CODE confined (``FDS`` holds the passed descriptors); its last printed JSON line."""
    with sandbox(files=files, limits=limits) as box:
        box.start(["-c", f"FDS = {box.fds!r}\n{code}"])
        assert box.wait() == 0, box.output()
        assert box.forked == (FORKSERVER is not None)
        printed = box.output()
    return json.loads(printed.strip().splitlines()[-1]), box


def layer_active(prefix: str) -> bool:
    return any(name.startswith(prefix) for name in layers().active)


def require(prefix: str) -> None:
    if not layer_active(prefix):
        pytest.skip(f"{prefix} is not available here: {layers().missing}")


def test_reports_the_layers(capsys: pytest.CaptureFixture[str], launcher: str) -> None:
    report = layers(forkserver=FORKSERVER)
    with capsys.disabled():
        print(f"\nisolation layers on this host ({launcher}): {report.describe()}")
    assert "python -I" in report.active and "environment allowlist" in report.active
    assert report == layers()  # a fork gets every layer a fresh interpreter gets


def test_child_starts_in_an_empty_scratch_directory_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARENA_ADMIN_TOKEN", "secret-admin-token")
    monkeypatch.setenv("ARENA_DATABASE_URL", "postgresql://user:password@db/arena")
    monkeypatch.setenv("ARENA_BROKER_URL", "redis://broker:6379/0")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    seen, box = run(
        "import json, os, sys\n"
        "print(json.dumps({'cwd': os.getcwd(), 'entries': os.listdir('.'), 'path': sys.path,"
        " 'env': dict(os.environ), 'uid': os.getuid(), 'gid': os.getgid()}))"
    )
    assert seen["cwd"] == str(box.scratch) and seen["entries"] == []
    assert not box.scratch.exists()  # removed afterwards
    assert "" not in seen["path"] and str(tmp_path) not in seen["path"]
    assert not any(name.startswith(("ARENA_", "PYTHON")) for name in seen["env"])
    assert "secret-admin-token" not in json.dumps(seen["env"])
    assert seen["env"]["HOME"] == str(box.scratch)
    assert seen["env"]["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] == "1"
    if AS_ROOT:
        assert seen["uid"] != 0 and seen["gid"] != 0


def test_a_module_planted_in_the_working_directory_is_not_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "payload-ran"
    (tmp_path / "argparse.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.chdir(tmp_path)
    seen, _ = run("import argparse, json\nprint(json.dumps({'file': argparse.__file__}))")
    assert Path(seen["file"]).parent != tmp_path
    assert not marker.exists()


def test_the_child_reads_the_passed_files_whatever_their_directories_allow(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    upload = closed / "upload.pt"
    upload.write_bytes(b"the upload")
    upload.chmod(0o600)
    seen, _ = run(
        "import json, os\n"
        "data = os.read(FDS[0], 100).decode()\n"
        f"try:\n    open({str(upload)!r}, 'rb'); by_path = True\n"
        "except OSError:\n    by_path = False\n"
        "print(json.dumps({'data': data, 'by_path': by_path}))",
        files=[upload],
    )
    assert seen["data"] == "the upload"
    if AS_ROOT:
        assert seen["by_path"] is False  # only through the descriptor it was given


def test_the_probe_loads_an_upload_only_the_platform_may_open(tmp_path: Path) -> None:
    closed = tmp_path / "uploads"
    closed.mkdir(mode=0o700)
    upload = make_checkpoint(closed / "upload.pt")
    upload.chmod(0o600)
    result = probe_checkpoint(upload, arch="auto", mean=None, std=None, settings=Settings())
    assert result.ok and result.arch == "lenet", result.message


def test_writing_outside_the_scratch_directory_fails(tmp_path: Path) -> None:
    require("Landlock")
    target = tmp_path / "open-to-all"
    target.mkdir()
    target.chmod(0o777)  # only the sandbox, not the file mode, can stop the write
    seen, _ = run(
        "import json, os\n"
        "results = {}\n"
        f"for path in [{str(target / 'planted.py')!r}, '/tmp/planted.py', 'inside.txt']:\n"
        "    try:\n"
        "        open(path, 'w').write('x'); results[path] = 'written'\n"
        "    except OSError as error:\n"
        "        results[path] = error.strerror\n"
        "print(json.dumps(results))"
    )
    assert seen["inside.txt"] == "written"
    assert seen[str(target / "planted.py")] != "written" and seen["/tmp/planted.py"] != "written"
    assert list(target.iterdir()) == [] and not Path("/tmp/planted.py").exists()


def test_no_network_connection_reaches_the_host() -> None:
    if not (layer_active("network namespace") or layer_active("Landlock (ABI")):
        pytest.skip(f"no network layer here: {layers().missing}")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        seen, _ = run(
            "import json, socket\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port})); result = 'connected'\n"
            "except OSError as error:\n    result = str(error)\n"
            "print(json.dumps({'result': result}))"
        )
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert seen["result"] != "connected"


def test_resource_limits_and_no_new_privs_are_in_force() -> None:
    limits = Limits(address_space_mb=4096, file_size_mb=1, open_files=64, processes=256)
    seen, _ = run(
        "import json, resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "try:\n    open('big', 'wb').write(b'x' * (2 << 20)); big = 'written'\n"
        "except OSError as error:\n    big = error.strerror\n"
        "names = ('RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_NPROC')\n"
        "status = dict(line.split(':\\t') for line in open('/proc/self/status'))\n"
        "print(json.dumps({'big': big, 'nnp': status['NoNewPrivs'].strip(),\n"
        "    **{name: resource.getrlimit(getattr(resource, name))[0] for name in names}}))",
        limits=limits,
    )
    assert seen["RLIMIT_AS"] == 4096 << 20 and seen["RLIMIT_FSIZE"] == 1 << 20
    assert seen["RLIMIT_NOFILE"] == 64
    assert seen["big"] != "written"
    assert seen["nnp"] == "1"
    if AS_ROOT:
        assert seen["RLIMIT_NPROC"] == 256
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] != 64  # the parent is untouched


def test_an_evaluation_stopped_by_sigterm_exits_quietly(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "lenet.pt")
    eval_set = make_labelled_eval_set(tmp_path / "set.npz", checkpoint, "lenet", n=64)
    with sandbox(files=[checkpoint, eval_set]) as box:
        box.start(["-m", "worker.sandbox", evaluation_job(box, "class").model_dump_json()])
        assert box.process is not None
        messages = box.messages()
        assert isinstance(next(messages), Progress)
        box.process.send_signal(signal.SIGTERM)
        last = list(messages)[-1]
        assert box.wait() == STOPPED
        printed = box.output()
    assert isinstance(last, Done) and last.kind == "stopped" and "SIGTERM" in last.message
    assert "Traceback" not in printed


def test_the_sandbox_entry_refuses_a_malformed_job() -> None:
    with sandbox() as box:
        box.start(["-m", "worker.sandbox", '{"kind": "probe", "checkpoint_fd": "../../etc"}'])
        assert box.wait() != 0
        assert list(box.messages()) == []
