"""Every state change of an evaluation after its row is created (``server.state.submissions``
creates a submission's first one, ``validating``, with the upload's row).

``mark_queued`` (validating → queued, carried by a task), then a worker's
``claim_evaluation`` (→ running, under a lease it keeps with ``renew_lease``), ending in
``finish_evaluation`` (→ finished, with its result row), ``fail_evaluation`` (→ failed) or
``release_for_retry`` (→ queued again, the platform's fault). A team may
``cancel_evaluation`` before a worker starts. The reconciler finds ``expired_leases`` and
``stale_evaluations``; ``requeue_expired`` hands a dead worker's evaluation back (or fails it).

The quota counts uploads: a change that frees an evaluation's charge (cancelled, or failed
by the platform) frees its submission's, when it is the submission's first evaluation.

Each change is one conditional UPDATE (``_transition``) where a race is possible, so the
database stays the single source of truth.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.state.tables import ACTIVE_STATUSES, Evaluation, Result, Status, Submission, utcnow
from worker.engine.protocol import COLUMN_METRICS


def _transition(
    session: Session,
    evaluation_id: int,
    *guards: ColumnElement[bool],
    values: Mapping[str, Any],
    charged: bool | None = None,
    commit: bool = True,
) -> bool:
    """Apply ``values`` to the evaluation if it still meets every guard; True if it did.

    One conditional UPDATE, so two workers (or a worker and the reconciler) racing for the same
    evaluation cannot both win: the loser's guard no longer holds and it gets False.
    ``charged`` (when the change wins) is written, in the same transaction, to the submission
    whose first evaluation this is. ``commit=False`` leaves the transaction open for a caller
    that writes more with it.
    """
    # Session.execute is typed as a Result; an UPDATE gives a CursorResult, which counts rows.
    result = cast(
        CursorResult[Any],
        session.execute(update(Evaluation).where(Evaluation.id == evaluation_id, *guards).values(**values)),
    )
    won = result.rowcount == 1
    if won and charged is not None:
        _charge(session, evaluation_id, charged)
    if commit:
        session.commit()
    return won


def _charge(session: Session, evaluation_id: int, charged: bool) -> None:
    """Set whether the upload counts, if this evaluation is its submission's first."""
    owner = select(Evaluation.submission_id).where(Evaluation.id == evaluation_id).scalar_subquery()
    first = select(func.min(Evaluation.id)).where(Evaluation.submission_id == owner).scalar_subquery()
    session.execute(
        update(Submission)
        .where(Submission.id == owner, first == evaluation_id)
        .values(charged=charged)
        .execution_options(synchronize_session=False)
    )


def _held_by(owner: str) -> tuple[ColumnElement[bool], ...]:
    """The guard of a transition only the worker holding the lease may make."""
    return (Evaluation.lease_owner == owner, Evaluation.status == Status.RUNNING)


def mark_queued(*, session: Session, evaluation_id: int, task_id: str) -> bool:
    """Record that ``task_id`` carries this evaluation; never touches a running one."""
    return _transition(
        session,
        evaluation_id,
        Evaluation.status.in_((Status.VALIDATING, Status.QUEUED)),
        values={"status": Status.QUEUED, "task_id": task_id, "queued_at": utcnow(), "progress": None},
    )


def cancel_evaluation(*, session: Session, evaluation_id: int) -> bool:
    """Cancel an evaluation no worker has started; its upload does not count against the quota."""
    return _transition(
        session,
        evaluation_id,
        Evaluation.status.in_((Status.QUEUED, Status.VALIDATING)),
        values={"status": Status.CANCELLED, "finished_at": utcnow()},
        charged=False,
    )


# --- a worker's lease --------------------------------------------------------------------


def claim_evaluation(*, session: Session, evaluation_id: int, owner: str, lease_seconds: float) -> bool:
    """Take the lease on an evaluation, atomically; False if it is done or leased elsewhere."""
    now = utcnow()
    claimable = (Evaluation.status == Status.QUEUED) | (
        (Evaluation.status == Status.RUNNING) & (Evaluation.lease_expires < now)
    )
    return _transition(
        session,
        evaluation_id,
        claimable,
        values={
            "status": Status.RUNNING,
            "lease_owner": owner,
            "lease_expires": now + timedelta(seconds=lease_seconds),
            "started_at": now,
            "attempts": Evaluation.attempts + 1,
            "error": None,
        },
    )


def renew_lease(
    *,
    session: Session,
    evaluation_id: int,
    owner: str,
    lease_seconds: float,
    progress: dict[str, Any] | None = None,
) -> bool:
    """Extend the lease (and store progress); False if the lease was lost to another worker."""
    values: dict[str, Any] = {"lease_expires": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = progress
    return _transition(session, evaluation_id, *_held_by(owner), values=values)


def finish_evaluation(
    *,
    session: Session,
    evaluation_id: int,
    owner: str,
    results: dict[str, Any],
) -> bool:
    """Store the result and mark the evaluation finished, exactly once.

    The result row is unique per evaluation, and the status change requires the caller's
    lease, so a redelivered or duplicated task cannot write twice.
    """
    version = str(results["suite"]["version"])
    finished = _transition(
        session,
        evaluation_id,
        *_held_by(owner),
        values={
            "status": Status.FINISHED,
            "finished_at": utcnow(),
            "lease_expires": None,
            "suite_version": version,
        },
        commit=False,
    )
    if not finished:
        session.rollback()
        return False
    metrics = {key: results.get(key, {}).get("accuracy") for key in COLUMN_METRICS}
    submission_id = session.scalar(select(Evaluation.submission_id).where(Evaluation.id == evaluation_id))
    session.add(
        Result(
            evaluation_id=evaluation_id,
            submission_id=submission_id,
            suite=results["suite"]["name"],
            suite_version=version,
            metrics=results,
            **metrics,
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def fail_evaluation(
    *,
    session: Session,
    evaluation_id: int,
    owner: str | None,
    error: str,
    charged: bool,
) -> bool:
    """Mark an evaluation failed with a reason; ``charged=False`` gives the quota back."""
    guards: list[ColumnElement[bool]] = [Evaluation.status.in_(ACTIVE_STATUSES)]
    if owner is not None:
        guards.append(Evaluation.lease_owner == owner)
    return _transition(
        session,
        evaluation_id,
        *guards,
        values={
            "status": Status.FAILED,
            "error": error,
            "finished_at": utcnow(),
            "lease_expires": None,
        },
        charged=charged,
    )


def release_for_retry(
    *, session: Session, evaluation_id: int, owner: str, error: str | None, count_attempt: bool = True
) -> bool:
    """Give an evaluation back to the queue after a platform failure (not the model's).

    ``count_attempt=False`` (its worker was asked to stop) takes back the try its claim counted.
    """
    values: dict[str, Any] = {
        "status": Status.QUEUED,
        "lease_owner": None,
        "lease_expires": None,
        "error": error,
    }
    if not count_attempt:
        values.update(attempts=Evaluation.attempts - 1, progress=None)
    return _transition(session, evaluation_id, *_held_by(owner), values=values)


# --- the reconciler ----------------------------------------------------------------------


def expired_leases(*, session: Session) -> list[Evaluation]:
    return list(
        session.scalars(
            select(Evaluation).where(Evaluation.status == Status.RUNNING, Evaluation.lease_expires < utcnow())
        )
    )


def stale_evaluations(*, session: Session, status: Status, older_than: float) -> list[Evaluation]:
    """Evaluations in ``status`` since before ``older_than`` seconds ago."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    column = Evaluation.queued_at if status == Status.QUEUED else Evaluation.created_at
    return list(session.scalars(select(Evaluation).where(Evaluation.status == status, column < cutoff)))


def requeue_expired(*, session: Session, evaluation_id: int, max_attempts: int) -> str:
    """Handle an evaluation whose worker vanished: back to the queue, or failed (not charged)
    once it has used up its attempts. Returns the new status."""
    evaluation = session.get(Evaluation, evaluation_id, populate_existing=True)  # as stored now
    if evaluation is None or evaluation.status != Status.RUNNING:
        return evaluation.status if evaluation else "missing"
    if evaluation.attempts >= max_attempts:
        fail_evaluation(
            session=session,
            evaluation_id=evaluation_id,
            owner=evaluation.lease_owner,
            error=(
                f"The platform lost the worker evaluating this submission {evaluation.attempts} "
                "times; it does not count against your quota. Please submit again later."
            ),
            charged=False,
        )
        return Status.FAILED
    requeued = _transition(
        session,
        evaluation_id,
        Evaluation.status == Status.RUNNING,
        Evaluation.lease_expires < utcnow(),
        values={"status": Status.QUEUED, "lease_owner": None, "lease_expires": None, "progress": None},
    )
    return Status.QUEUED if requeued else Status.RUNNING
