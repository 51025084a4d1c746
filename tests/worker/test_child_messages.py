"""The evaluating child speaks on its own pipe; whatever it writes there is validated.

Real children started by the launcher write what a hostile model might make them write; the
worker's supervision of the child must end the evaluation as the model's fault, with a
reason, and never raise. What the child prints on stdout is never read as a message. Each
test runs with the child as a fresh interpreter and as a fork of the fork server.
"""

import json
from collections.abc import Iterator

import pytest

from server.state.config import Settings
from worker.forking import Forkserver
from worker.isolation import Sandbox
from worker.protocol import MAX_LINE_BYTES, MODEL_FAULT
from worker.runner import Heartbeat, _supervise

VALID = {"type": "progress", "stage": "fgsm", "done": 1, "total": 4}


FORKSERVER: Forkserver | None = None


@pytest.fixture(autouse=True, params=["fresh", "fork"])
def launcher(request: pytest.FixtureRequest, forkserver: Forkserver) -> Iterator[None]:
    global FORKSERVER  # noqa: PLW0603 - supervise reads it
    FORKSERVER = forkserver if request.param == "fork" else None
    yield
    FORKSERVER = None


def supervise(lines: list[bytes | str], *, stdout: str = "") -> tuple[object, Heartbeat]:
    """Run a child that prints ``stdout`` and writes ``lines`` (bytes, or a Python expression
    that makes them) on its message pipe."""
    expressions = ", ".join(line if isinstance(line, str) else repr(line) for line in lines)
    heartbeat = Heartbeat(1, "test-owner", Settings(), ["natural", "fgsm"])
    with Sandbox(forkserver=FORKSERVER) as box:
        code = (
            "import os, sys\n"
            f"sys.stdout.write({stdout!r}); sys.stdout.flush()\n"
            f"for line in [{expressions}]:\n"
            f"    os.write({box.message_fd}, line)\n"
        )
        box.start(["-c", code])
        assert box.forked == (FORKSERVER is not None)
        outcome = _supervise(box, heartbeat, Settings(), None)
    return outcome, heartbeat


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"this is not json\n", "Invalid JSON"),
        (b'{"progress": {"stage": "fgsm", "done": 1, "total": 4, "evil": 1}}\n', "type"),
        (json.dumps({**VALID, "evil": 1}).encode() + b"\n", "evil"),
        (json.dumps({**VALID, "stage": "exfiltrate"}).encode() + b"\n", "stage"),
        (json.dumps({**VALID, "done": "1"}).encode() + b"\n", "done"),
        (json.dumps({**VALID, "done": -1}).encode() + b"\n", "done"),
        (json.dumps({**VALID, "done": 5}).encode() + b"\n", "exceeds total"),
        (json.dumps({"type": "done", "ok": "yes"}).encode() + b"\n", "ok"),
        (b'{"type": "throughput", "device": "cpu", "forward": -1.0, "backward": 1.0}\n', "forward"),
        (f"b'x' * {MAX_LINE_BYTES + 10} + b'\\n'", "longer than"),
        (json.dumps(VALID).encode(), "unterminated"),
    ],
)
def test_a_malformed_message_fails_the_evaluation_as_the_models_fault(line: bytes | str, reason: str) -> None:
    outcome, heartbeat = supervise([json.dumps(VALID).encode() + b"\n", line])
    assert outcome.returncode == MODEL_FAULT  # type: ignore[attr-defined]
    message = outcome.answer["message"]  # type: ignore[attr-defined]
    assert message.startswith("The evaluating process sent a malformed message: ")
    assert reason in message
    assert heartbeat.progress is not None and heartbeat.progress["done"] == 1


def test_a_message_after_the_final_one_is_malformed() -> None:
    done = json.dumps({"type": "done", "ok": True, "results": {}}).encode() + b"\n"
    outcome, _ = supervise([done, json.dumps(VALID).encode() + b"\n"])
    assert outcome.returncode == MODEL_FAULT  # type: ignore[attr-defined]
    assert "after the final one" in outcome.answer["message"]  # type: ignore[attr-defined]


def test_lines_forged_on_stdout_are_ignored() -> None:
    forged = (
        '{"progress": {"stage": "pgd_l2", "done": 9, "total": 9, "evil": 1}}\n'
        '{"type": "done", "ok": true, "results": {"natural": {"accuracy": 1.0}}}\n'
    )
    done = json.dumps({"type": "done", "ok": False, "kind": "model", "message": "real"})
    outcome, heartbeat = supervise([json.dumps(VALID).encode() + b"\n", done.encode() + b"\n"], stdout=forged)
    assert outcome.answer["message"] == "real"  # type: ignore[attr-defined]
    assert outcome.results is None  # type: ignore[attr-defined]
    assert heartbeat.progress is not None and heartbeat.progress["stage"] == "fgsm"
