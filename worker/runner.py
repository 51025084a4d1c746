"""Running one evaluation on a worker: lease, sandboxed child, progress, result.

The worker holds a lease on the evaluation, renewed by a heartbeat that also stores the
child's progress. Whatever happens, the evaluation ends in exactly one of: finished (one
result row), failed with a reason, or back in the queue for another try.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy.orm import Session

from models.architectures.catalog import as_triple
from server.state import queue
from server.state.competitions import eval_set_path
from server.state.config import Settings, get_settings
from server.state.costs import throughput_key
from server.state.db import session_scope
from server.state.lifecycle import (
    claim_evaluation,
    fail_evaluation,
    finish_evaluation,
    release_for_retry,
    renew_lease,
)
from server.state.storage import upload_path
from server.state.submissions import get_evaluation
from server.state.tables import Evaluation
from server.state.workers import record_throughput
from worker import forking
from worker.engine.protocol import get_suite, stages
from worker.forking import Forkserver
from worker.isolation import Limits, Sandbox
from worker.protocol import (
    DECLINED,
    MODEL_FAULT,
    PLATFORM_FAULT,
    STOPPED,
    Job,
    MalformedMessage,
    Progress,
    Throughput,
)

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
#: The network every worker times when it starts, so the cost model has this device's speed
#: before any evaluation (other networks are scaled from it by their FLOPs until timed).
REFERENCE_ARCH = "resnet20"
#: Networks this worker process has timed (the first evaluation of each times it).
_timed: set[str] = set()


def _store_throughput(arch: str, measured: dict[str, Any]) -> None:
    try:
        with session_scope() as session:
            record_throughput(
                session=session,
                arch=arch,
                device=str(measured["device"]),
                forward=float(measured["forward"]),
                backward=float(measured["backward"]),
            )
    except Exception:  # noqa: BLE001 - a missing timing only makes estimates rougher
        log.exception("could not store the throughput of %s", arch)


def time_reference(settings: Settings | None = None) -> None:
    """Time the reference network on this worker's device (a zoo network, no upload)."""
    settings = settings or get_settings()
    command = [sys.executable, "-I", "-m", "worker.throughput", REFERENCE_ARCH, settings.device]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        answer = json.loads(completed.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        log.warning("could not time %s on this worker's device", REFERENCE_ARCH)
        return
    _store_throughput(REFERENCE_ARCH, answer)
    _timed.add(REFERENCE_ARCH)


#: Set once this worker is asked to stop: its children are killed and their submissions go
#: back to the queue without counting a try (they finish after the next start).
stopping = threading.Event()
#: Exit statuses of a child ended by SIGINT or SIGTERM (the sandbox's own quiet STOPPED, or
#: the signal itself directly or through a shell): a stop of the worker or of its process
#: group, never the model's fault nor an out-of-memory kill.
INTERRUPTED = {STOPPED, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM}


def request_stop() -> None:
    """Called from the worker's shutdown signal handler, so it only sets a flag: the watchdog
    of each running evaluation kills its child within half a second."""
    stopping.set()


def stages_for(evaluation: Evaluation) -> list[str]:
    """The stages this evaluation reports, in order: the normalisation check
    (``worker.normalisation``), then the engine's."""
    return stages(get_suite(evaluation.suite), certify=evaluation.submission.sigma is not None)


@dataclass
class Heartbeat:
    """Renews the lease every second with the latest progress; notices a lost lease."""

    evaluation_id: int
    owner: str
    settings: Settings
    stages: list[str]
    progress: dict[str, Any] | None = None
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _stage_started: float = field(default_factory=time.monotonic)
    #: Seconds from the claim to each event (the child's start, each stage's first message,
    #: its end, the result stored), logged when the evaluation ends.
    timeline: dict[str, float] = field(default_factory=dict)
    _claimed: float = field(default_factory=time.monotonic)

    def mark(self, event: str) -> None:
        self.timeline.setdefault(event, round(time.monotonic() - self._claimed, 3))

    def update(self, stage: str, done: int, total: int) -> None:
        if self.progress is None or self.progress["stage"] != stage:
            self._stage_started = time.monotonic()
        elapsed = time.monotonic() - self._stage_started
        eta = elapsed / done * (total - done) if done > 0 else None
        self.progress = {
            "stage": stage,
            "done": done,
            "total": total,
            "stages": self.stages,
            "eta_seconds": eta,
        }

    def run(self) -> None:
        sent: dict[str, Any] | None = None
        last_renewal = 0.0
        while not self._stop.wait(1.0):
            due = time.monotonic() - last_renewal > self.settings.lease_seconds / 4
            if self.progress == sent and not due:
                continue
            snapshot = dict(self.progress) if self.progress else None
            try:
                with session_scope() as session:
                    kept = renew_lease(
                        session=session,
                        evaluation_id=self.evaluation_id,
                        owner=self.owner,
                        lease_seconds=self.settings.lease_seconds,
                        progress=snapshot,
                    )
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the heartbeat
                log.exception("lease renewal failed")
                continue
            sent, last_renewal = snapshot, time.monotonic()
            if not kept:
                self.lost.set()
                return

    def stop(self) -> None:
        self._stop.set()


def _job(evaluation: Evaluation, eval_set: Path, settings: Settings, box: Sandbox, *, measure: bool) -> Job:
    checkpoint_fd, eval_set_fd = box.fds
    submission = evaluation.submission
    return Job(
        kind="evaluate",
        message_fd=box.message_fd,
        checkpoint_fd=checkpoint_fd,
        eval_set_fd=eval_set_fd,
        eval_set_name=Path(eval_set).name,
        arch=submission.arch,
        mean=as_triple(submission.mean) if submission.mean else None,
        std=as_triple(submission.std) if submission.std else None,
        suite=evaluation.suite,
        sigma=submission.sigma,
        limit=settings.eval_limit,
        device=settings.device,
        memory_limit_mb=settings.memory_limit_mb,
        measure=measure,
        # The column holds what intake accepted ("auto" or "as-declared"); Job checks it again.
        normalisation=cast(Literal["auto", "as-declared"], submission.normalisation),
    )


def forkserver(settings: Settings) -> Forkserver | None:
    """The pre-imported process evaluating children fork from (``ARENA_CHILD_START=fork``),
    None for fresh interpreters or when it cannot start."""
    if settings.child_start != "fork":
        return None
    try:
        return forking.shared()
    except OSError as error:
        log.warning("no fork server (%s): evaluations start fresh interpreters", error)
        return None


@dataclass
class ChildOutcome:
    returncode: int
    answer: dict[str, Any] | None
    timed_out: bool
    lease_lost: bool

    @property
    def results(self) -> dict[str, Any] | None:
        return (self.answer or {}).get("results") if self.returncode == 0 else None


def _run_child(
    evaluation: Evaluation, eval_set: Path, heartbeat: Heartbeat, settings: Settings, timed_as: str | None
) -> ChildOutcome:
    """Evaluate in an isolated child on ``eval_set`` (the phase's); ``timed_as`` asks it to
    time the network first and names the rate it reports (a network this worker has not timed
    yet)."""
    files = [upload_path(settings.upload_dir, evaluation.submission.stored_name), eval_set]
    sandbox = Sandbox(
        files=files,
        limits=Limits(address_space_mb=settings.memory_limit_mb),
        user=settings.sandbox_user,
        forkserver=forkserver(settings),
    )
    with ExitStack() as stack:
        try:
            box = stack.enter_context(sandbox)
        except OSError as error:
            reason = f"the evaluation's files could not be opened: {error}"
            return ChildOutcome(PLATFORM_FAULT, {"message": reason}, False, False)
        job = _job(evaluation, eval_set, settings, box, measure=timed_as is not None)
        heartbeat.mark("child starting")
        box.start(["-m", "worker.sandbox", job.model_dump_json()])
        heartbeat.mark("child forked" if box.forked else "child started (fresh interpreter)")
        return _supervise(box, heartbeat, settings, timed_as)


def _supervise(box: Sandbox, heartbeat: Heartbeat, settings: Settings, timed_as: str | None) -> ChildOutcome:
    """Pass the child's progress to the heartbeat until it ends; stop it at the time limit
    or when the lease is lost, and at its first malformed message (a fault of the model)."""
    child = box.process
    assert child is not None
    started = time.monotonic()
    timed_out = False

    def watchdog() -> None:
        nonlocal timed_out
        while child.poll() is None:
            elapsed = time.monotonic() - started
            if heartbeat.lost.is_set() or stopping.is_set():
                child.kill()
            elif elapsed > settings.hard_time_limit:
                timed_out = True
                child.kill()
            elif elapsed > settings.soft_time_limit:
                timed_out = True
                child.send_signal(signal.SIGTERM)
            time.sleep(0.5)

    threading.Thread(target=watchdog, daemon=True).start()
    answer: dict[str, Any] | None = None
    try:
        for message in box.messages():
            if isinstance(message, Progress):
                heartbeat.mark(message.stage)
                heartbeat.update(message.stage, message.done, message.total)
            elif isinstance(message, Throughput):
                if timed_as is not None:
                    _store_throughput(timed_as, message.model_dump())
                    _timed.add(timed_as)
            else:
                answer = message.model_dump()
    except MalformedMessage as error:
        child.kill()
        child.wait()
        answer = {
            "ok": False,
            "kind": "model",
            "message": f"The evaluating process sent a malformed message: {error}",
        }
        return ChildOutcome(MODEL_FAULT, answer, timed_out, heartbeat.lost.is_set())
    return ChildOutcome(child.wait(), answer, timed_out, heartbeat.lost.is_set())


def run_evaluation(evaluation_id: int, *, settings: Settings | None = None) -> str:
    """Run an evaluation if no live worker holds it; returns what happened."""
    settings = settings or get_settings()
    with session_scope() as session:
        if not claim_evaluation(
            session=session,
            evaluation_id=evaluation_id,
            owner=WORKER_ID,
            lease_seconds=settings.lease_seconds,
        ):
            return "skipped"
        evaluation = get_evaluation(session=session, evaluation_id=evaluation_id)
        assert evaluation is not None
        submission = evaluation.submission  # loaded here: the session closes before the run
        eval_set = eval_set_path(evaluation.phase.competition, evaluation.phase, settings)
        stages = stages_for(evaluation)
        key = throughput_key(submission.arch, submission.sha256)
        timed_as = None if key in _timed else key

    heartbeat = Heartbeat(evaluation_id, WORKER_ID, settings, stages)
    heartbeat.update(stages[0], 0, 1)
    thread = threading.Thread(target=heartbeat.run, daemon=True)
    thread.start()
    try:
        outcome = _run_child(evaluation, eval_set, heartbeat, settings, timed_as)
        heartbeat.mark("child ended")
    finally:
        heartbeat.stop()
        thread.join()
    settled = _settle(evaluation_id, outcome, outcome.results, settings)
    heartbeat.mark(f"{settled} (stored)")
    log.info("evaluation %s timeline (s from its claim): %s", evaluation_id, json.dumps(heartbeat.timeline))
    return settled


def _settle(
    evaluation_id: int, outcome: ChildOutcome, results: dict[str, Any] | None, settings: Settings
) -> str:
    """Record how the evaluating child ended; returns what happened, as ``run_evaluation`` does."""
    with session_scope() as session:
        if outcome.lease_lost:
            return "lease-lost"
        if outcome.returncode == 0 and results is not None:
            finish_evaluation(session=session, evaluation_id=evaluation_id, owner=WORKER_ID, results=results)
            return "finished"
        if stopping.is_set() or (not outcome.timed_out and outcome.returncode in INTERRUPTED):
            log.warning("evaluation %s: worker stopping, back to the queue", evaluation_id)
            _requeue(session, evaluation_id, error=None, count_attempt=False)
            return "released"
        final = _final_failure(outcome, settings)
        if final is not None:
            error, charged = final
            _fail(session, evaluation_id, error, charged=charged)
            return "failed"
        return _retry_or_give_up(session, evaluation_id, outcome, settings)


def _final_failure(outcome: ChildOutcome, settings: Settings) -> tuple[str, bool] | None:
    """A failure another try would not cure (error, whether it counts against the quota), or
    None when the platform is to blame and the evaluation may be tried again."""
    answer = outcome.answer or {}
    if outcome.timed_out:
        return (
            f"The evaluation did not finish within the time limit of "
            f"{settings.soft_time_limit:g} s (does the model hang or run very slowly?)."
        ), True
    if outcome.returncode == DECLINED:
        return answer.get("message") or "The evaluation stopped before any attack.", False
    if outcome.returncode == MODEL_FAULT:
        return answer.get("message") or "The model failed during evaluation.", True
    return None


def _retry_or_give_up(session: Session, evaluation_id: int, outcome: ChildOutcome, settings: Settings) -> str:
    """Back to the queue after a platform failure, until the evaluation has used its tries;
    then failed, not charged."""
    reason = (outcome.answer or {}).get("message") or (
        f"the evaluating process died (exit status {outcome.returncode}; out of memory?)"
    )
    evaluation = get_evaluation(session=session, evaluation_id=evaluation_id)
    if evaluation is not None and evaluation.attempts >= settings.max_attempts:
        _fail(
            session,
            evaluation_id,
            f"The platform could not evaluate this submission ({reason}) after "
            f"{evaluation.attempts} tries; it does not count against your quota.",
            charged=False,
        )
        return "failed"
    _requeue(session, evaluation_id, error=reason)
    return "retried"


def _fail(session: Session, evaluation_id: int, error: str, *, charged: bool) -> None:
    """Fail the evaluation this worker holds, with the reason its team will read."""
    fail_evaluation(
        session=session, evaluation_id=evaluation_id, owner=WORKER_ID, charged=charged, error=error
    )


def _requeue(session: Session, evaluation_id: int, *, error: str | None, count_attempt: bool = True) -> None:
    """Give this worker's lease back and send the id again, unless another worker took it."""
    if release_for_retry(
        session=session,
        evaluation_id=evaluation_id,
        owner=WORKER_ID,
        error=error,
        count_attempt=count_attempt,
    ):
        queue.enqueue(session, evaluation_id)
