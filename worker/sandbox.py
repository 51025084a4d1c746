"""The child process that touches uploaded files: ``python -I -m worker.sandbox JOB_JSON``.

Started only through ``worker.isolation`` (by the API's pre-queue probe or a worker), confined:
a fresh interpreter, or, on a worker, a fork of its fork server (``worker.forkserver``, which
has imported the engine and never initialised CUDA, so CUDA initialises cleanly here either
way). A hostile or broken model can take down only this process.

The job (``worker.protocol.Job``) names the descriptors of the upload, the evaluation set and
the message pipe. Messages go on that pipe only, never stdout (which a model can print to):
``Progress`` while running (after one ``Throughput`` when the job asks to time the
network first), then one ``Done``. Exit status 0 on success, 3 for a model's fault, 4 for the
platform's, 5 when stopped by SIGTERM or SIGINT (quietly, no traceback), 6 when the evaluation
declined to attack a model whose declared normalisation another one beats (not charged).
"""

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import BinaryIO

from worker.protocol import (
    DECLINED,
    MODEL_FAULT,
    PLATFORM_FAULT,
    STOPPED,
    Done,
    Job,
    Message,
    Progress,
    Throughput,
    encode,
)


class Channel:
    """The write end of the message pipe."""

    def __init__(self, fd: int) -> None:
        self.stream: BinaryIO = os.fdopen(fd, "wb", buffering=0)

    def send(self, message: Message) -> None:
        self.stream.write(encode(message))

    def fail(self, kind: str, message: str) -> int:
        self.send(Done(ok=False, kind=kind, message=message))  # type: ignore[arg-type]
        return MODEL_FAULT if kind == "model" else PLATFORM_FAULT


def _stop_quietly(channel: Channel) -> None:
    """SIGTERM (the watchdog, a stopping worker) or SIGINT (Ctrl-C in the terminal): say so
    and exit at once, without a traceback from wherever the model was."""

    def stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        try:
            channel.send(
                Done(ok=False, kind="stopped", message=f"the evaluating process was stopped by {name}")
            )
        finally:
            os._exit(STOPPED)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _readable(fd: int) -> Path:
    """A path that reads the file open at ``fd``: the descriptor's own, or, when this user may
    not reopen it (its mode), a private in-memory copy read through the descriptor."""
    path = Path(f"/proc/self/fd/{fd}")
    try:
        os.close(os.open(path, os.O_RDONLY))
        return path
    except PermissionError:
        pass
    copy = os.memfd_create("upload")
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        os.write(copy, chunk)
    return Path(f"/proc/self/fd/{copy}")


def _probe(job: Job, channel: Channel) -> int:
    from models.checkpoints.errors import CheckpointError
    from models.checkpoints.loading import load_model, probe_model

    try:
        loaded = load_model(_readable(job.checkpoint_fd), arch=job.arch, mean=job.mean, std=job.std)
        probe_model(loaded)
    except CheckpointError as error:
        return channel.fail("model", str(error))
    except MemoryError:
        return channel.fail("model", "Loading the model ran out of memory.")
    except Exception as error:  # noqa: BLE001 - any failure of the team's model is reported
        return channel.fail("model", f"The model failed to run: {error}")
    channel.send(Done(ok=True, arch=loaded.arch, message="; ".join(loaded.notes)))
    return 0


def _evaluate(job: Job, channel: Channel) -> int:
    from models.checkpoints.errors import CheckpointError
    from models.checkpoints.loading import load_model
    from worker.data import EvalSetError
    from worker.evaluation import evaluate_loaded
    from worker.normalisation import NormalisationRejected

    assert job.eval_set_fd is not None and job.suite is not None
    try:
        loaded = load_model(_readable(job.checkpoint_fd), arch=job.arch, mean=job.mean, std=job.std)
    except CheckpointError as error:
        return channel.fail("model", str(error))

    if job.measure:
        from worker.evaluation import resolve_device
        from worker.throughput import measure

        with contextlib.suppress(Exception):  # the evaluation below reports the model's faults
            channel.send(Throughput(**measure(loaded.model, resolve_device(job.device))))

    def progress(stage: str, done: int, total: int) -> None:
        channel.send(Progress(stage=stage, done=done, total=total))

    try:
        results = evaluate_loaded(
            loaded,
            eval_set=_readable(job.eval_set_fd),
            suite=job.suite,
            sigma=job.sigma,
            limit=job.limit,
            device=job.device,
            progress=progress,
            normalisation=job.normalisation,
        )
    except NormalisationRejected as error:
        channel.send(Done(ok=False, kind="declined", message=str(error)))
        return DECLINED
    except EvalSetError as error:
        return channel.fail("platform", f"Evaluation set problem: {error}")
    except MemoryError:
        return channel.fail(
            "model",
            "The evaluation ran out of memory (the model needs more "
            "than the platform's per-evaluation memory limit).",
        )
    except Exception as error:  # noqa: BLE001 - the model's code raised: report it to the team
        last = traceback.extract_tb(error.__traceback__)[-1:]
        where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
        return channel.fail(
            "model", f"The model failed during evaluation: {type(error).__name__}: {error}{where}"
        )
    results["eval_set"]["file"] = job.eval_set_name
    channel.send(Done(ok=True, results=results))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -I -m worker.sandbox JOB_JSON (started by worker.isolation)", file=sys.stderr)
        return PLATFORM_FAULT
    job = Job.model_validate_json(args[0])
    channel = Channel(job.message_fd)
    _stop_quietly(channel)
    return _probe(job, channel) if job.kind == "probe" else _evaluate(job, channel)


if __name__ == "__main__":
    sys.exit(main())
