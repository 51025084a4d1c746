"""Running one submission on a worker: lease, sandboxed child, progress, result.

The worker holds a lease on the submission, renewed by a heartbeat that also stores the
child's progress. Whatever happens, the submission ends in exactly one of: finished (one
result row), failed with a reason, or back in the queue for another try.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server import crud, queue
from server.config import Settings, get_settings
from server.db import session_scope
from server.storage import upload_path
from server.tables import Submission
from worker.sandbox import DECLINED, MODEL_FAULT

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def stages_for(submission: Submission, suite: str) -> list[str]:
    stages = ["normalisation", "natural", "fgsm", "pgd_linf", "pgd_l2"]
    if suite == "robustbench":
        stages.append("autoattack")
    if submission.sigma is not None:
        stages.append("smoothing")
    return stages


@dataclass
class Heartbeat:
    """Renews the lease every second with the latest progress; notices a lost lease."""

    submission_id: int
    owner: str
    settings: Settings
    stages: list[str]
    progress: dict[str, Any] | None = None
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _stage_started: float = field(default_factory=time.monotonic)

    def update(self, stage: str, done: int, total: int) -> None:
        if self.progress is None or self.progress["stage"] != stage:
            self._stage_started = time.monotonic()
        elapsed = time.monotonic() - self._stage_started
        eta = elapsed / done * (total - done) if done > 0 else None
        self.progress = {
            "stage": stage, "done": done, "total": total, "stages": self.stages,
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
                    kept = crud.renew_lease(
                        session=session,
                        submission_id=self.submission_id,
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


def _command(submission: Submission, settings: Settings, result_file: Path) -> list[str]:
    eval_set = settings.eval_set or settings.default_eval_set
    command = [
        sys.executable, "-m", "worker.sandbox", "evaluate",
        str(upload_path(settings.upload_dir, submission.stored_name)),
        "--arch", submission.arch, "--eval-set", str(eval_set), "--suite", submission.suite,
        "--device", settings.device, "--result", str(result_file),
        "--normalisation", submission.normalisation,
    ]
    if submission.sigma is not None:
        command += ["--sigma", repr(submission.sigma)]
    if submission.mean:
        command += ["--mean", ",".join(map(str, submission.mean))]
    if submission.std:
        command += ["--std", ",".join(map(str, submission.std))]
    if settings.eval_limit:
        command += ["--limit", str(settings.eval_limit)]
    return command


@dataclass
class ChildOutcome:
    returncode: int
    answer: dict[str, Any] | None
    timed_out: bool
    lease_lost: bool


def _run_child(command: list[str], heartbeat: Heartbeat, settings: Settings) -> ChildOutcome:
    env = dict(os.environ, TORCH_FORCE_WEIGHTS_ONLY_LOAD="1",
               ARENA_MEMORY_LIMIT_MB=str(settings.memory_limit_mb))
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    started = time.monotonic()
    timed_out = False

    def watchdog() -> None:
        nonlocal timed_out
        while child.poll() is None:
            elapsed = time.monotonic() - started
            if heartbeat.lost.is_set():
                child.kill()
            elif elapsed > settings.hard_time_limit:
                timed_out = True
                child.kill()
            elif elapsed > settings.soft_time_limit:
                timed_out = True
                child.send_signal(signal.SIGTERM)
            time.sleep(0.5)

    threading.Thread(target=watchdog, daemon=True).start()
    answer = None
    assert child.stdout is not None
    for line in child.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "progress" in message:
            heartbeat.update(**message["progress"])
        elif "ok" in message:
            answer = message
    return ChildOutcome(child.wait(), answer, timed_out, heartbeat.lost.is_set())


def run_submission(submission_id: int, *, settings: Settings | None = None) -> str:
    """Evaluate a submission if no live worker holds it; returns what happened."""
    settings = settings or get_settings()
    with session_scope() as session:
        if not crud.claim_submission(
            session=session,
            submission_id=submission_id,
            owner=WORKER_ID,
            lease_seconds=settings.lease_seconds,
        ):
            return "skipped"
        submission = crud.get_submission(session=session, submission_id=submission_id)
        assert submission is not None
        stages = stages_for(submission, submission.suite)
        command_args = submission

    heartbeat = Heartbeat(submission_id, WORKER_ID, settings, stages)
    heartbeat.update(stages[0], 0, 1)
    thread = threading.Thread(target=heartbeat.run, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory(prefix="arena-") as scratch:
        result_file = Path(scratch) / "results.json"
        try:
            outcome = _run_child(_command(command_args, settings, result_file), heartbeat, settings)
        finally:
            heartbeat.stop()
            thread.join()
        results = json.loads(result_file.read_text()) if result_file.exists() else None
    return _settle(submission_id, outcome, results, settings)


def _settle(
    submission_id: int, outcome: ChildOutcome, results: dict[str, Any] | None, settings: Settings
) -> str:
    with session_scope() as session:
        if outcome.lease_lost:
            return "lease-lost"
        if outcome.returncode == 0 and results is not None:
            crud.finish_submission(
                session=session, submission_id=submission_id, owner=WORKER_ID, results=results
            )
            return "finished"
        if outcome.timed_out:
            crud.fail_submission(
                session=session, submission_id=submission_id, owner=WORKER_ID, charged=True,
                error=(f"The evaluation did not finish within the time limit of "
                       f"{settings.soft_time_limit:g} s (does the model hang or run very slowly?)."),
            )
            return "failed"
        answer = outcome.answer or {}
        if outcome.returncode == DECLINED:
            crud.fail_submission(
                session=session, submission_id=submission_id, owner=WORKER_ID, charged=False,
                error=answer.get("message") or "The evaluation stopped before any attack.",
            )
            return "failed"
        if outcome.returncode == MODEL_FAULT:
            crud.fail_submission(
                session=session, submission_id=submission_id, owner=WORKER_ID, charged=True,
                error=answer.get("message") or "The model failed during evaluation.",
            )
            return "failed"
        reason = answer.get("message") or (
            f"the evaluating process died (exit status {outcome.returncode}; out of memory?)"
        )
        submission = crud.get_submission(session=session, submission_id=submission_id)
        if submission is not None and submission.attempts >= settings.max_attempts:
            crud.fail_submission(
                session=session, submission_id=submission_id, owner=WORKER_ID, charged=False,
                error=(f"The platform could not evaluate this submission ({reason}) after "
                       f"{submission.attempts} tries; it does not count against your quota."),
            )
            return "failed"
        if crud.release_for_retry(
            session=session, submission_id=submission_id, owner=WORKER_ID, error=reason
        ):
            queue.enqueue(session, submission_id)
        return "retried"
