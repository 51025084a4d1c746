"""The pre-queue check of an upload, run in a confined child process.

The API process never unpickles an upload: it starts ``worker.sandbox`` through
``worker.isolation`` with the upload's descriptor and reads one validated message back from
the child's own pipe, so a broken model is refused in seconds with its reason.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

from models.architectures.catalog import as_triple
from server.state.config import Settings
from worker.isolation import Limits, Sandbox
from worker.protocol import Done, Job, MalformedMessage

# At most two probes at once: each is a Python process with torch loaded.
_SLOTS = threading.BoundedSemaphore(2)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str
    arch: str | None = None


def probe_checkpoint(
    path: Path,
    *,
    arch: str,
    mean: list[float] | None,
    std: list[float] | None,
    settings: Settings,
) -> ProbeResult:
    sandbox = Sandbox(
        files=[path],
        limits=Limits(address_space_mb=settings.probe_memory_limit_mb),
        user=settings.sandbox_user,
        env={"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},  # the check runs on the CPU
    )
    with _SLOTS, sandbox as box:
        job = Job(
            kind="probe",
            message_fd=box.message_fd,
            checkpoint_fd=box.fds[0],
            arch=arch,
            mean=as_triple(mean) if mean else None,
            std=as_triple(std) if std else None,
            memory_limit_mb=settings.probe_memory_limit_mb,
        )
        box.start(["-m", "worker.sandbox", job.model_dump_json()])
        answers: list[Done | MalformedMessage] = []
        reader = threading.Thread(target=_read_answer, args=(box, answers), daemon=True)
        reader.start()
        reader.join(settings.probe_timeout)
        if reader.is_alive():
            return ProbeResult(
                False,
                f"The model did not load and answer within {settings.probe_timeout:g} s.",
            )
    answer = answers[0] if answers else None
    if isinstance(answer, MalformedMessage):
        return ProbeResult(False, f"The model check sent a malformed message: {answer}")
    if answer is None or answer.kind == "stopped":
        return ProbeResult(False, "The model crashed the loading process (out of memory or a fatal error).")
    return ProbeResult(answer.ok, answer.message, answer.arch)


def _read_answer(box: Sandbox, answers: list[Done | MalformedMessage]) -> None:
    try:
        for message in box.messages():
            if isinstance(message, Done):
                answers.append(message)
    except MalformedMessage as error:
        answers.append(error)
