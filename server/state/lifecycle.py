"""Every state change of a submission after its row is reserved (``server.state.submissions``).

``mark_queued`` (validating → queued, carried by a task), then a worker's
``claim_submission`` (→ running, under a lease it keeps with ``renew_lease``), ending in
``finish_submission`` (→ finished, with its result row), ``fail_submission`` (→ failed) or
``release_for_retry`` (→ queued again, the platform's fault). A team may
``cancel_submission`` before a worker starts. The reconciler finds ``expired_leases`` and
``stale_submissions``; ``requeue_expired`` hands a dead worker's submission back (or fails it).

Each change is one conditional UPDATE (``_transition``) where a race is possible, so the
database stays the single source of truth.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.state.tables import ACTIVE_STATUSES, Result, Status, Submission, utcnow
from worker.engine.protocol import COLUMN_METRICS


def _transition(
    session: Session,
    submission_id: int,
    *guards: ColumnElement[bool],
    values: Mapping[str, Any],
    commit: bool = True,
) -> bool:
    """Apply ``values`` to the submission if it still meets every guard; True if it did.

    One conditional UPDATE, so two workers (or a worker and the reconciler) racing for the same
    submission cannot both win: the loser's guard no longer holds and it gets False.
    ``commit=False`` leaves the transaction open for a caller that writes more with it.
    """
    # Session.execute is typed as a Result; an UPDATE gives a CursorResult, which counts rows.
    result = cast(
        CursorResult[Any],
        session.execute(update(Submission).where(Submission.id == submission_id, *guards).values(**values)),
    )
    if commit:
        session.commit()
    return result.rowcount == 1


def _held_by(owner: str) -> tuple[ColumnElement[bool], ...]:
    """The guard of a transition only the worker holding the lease may make."""
    return (Submission.lease_owner == owner, Submission.status == Status.RUNNING)


def mark_queued(*, session: Session, submission_id: int, task_id: str) -> bool:
    """Record that ``task_id`` carries this submission; never touches a running one."""
    return _transition(
        session,
        submission_id,
        Submission.status.in_((Status.VALIDATING, Status.QUEUED)),
        values={"status": Status.QUEUED, "task_id": task_id, "queued_at": utcnow(), "progress": None},
    )


def cancel_submission(*, session: Session, submission_id: int) -> bool:
    """Cancel a submission no worker has started; it does not count against the quota."""
    return _transition(
        session,
        submission_id,
        Submission.status.in_((Status.QUEUED, Status.VALIDATING)),
        values={"status": Status.CANCELLED, "charged": False, "finished_at": utcnow()},
    )


# --- a worker's lease --------------------------------------------------------------------


def claim_submission(*, session: Session, submission_id: int, owner: str, lease_seconds: float) -> bool:
    """Take the lease on a submission, atomically; False if it is done or leased elsewhere."""
    now = utcnow()
    claimable = (Submission.status == Status.QUEUED) | (
        (Submission.status == Status.RUNNING) & (Submission.lease_expires < now)
    )
    return _transition(
        session,
        submission_id,
        claimable,
        values={
            "status": Status.RUNNING,
            "lease_owner": owner,
            "lease_expires": now + timedelta(seconds=lease_seconds),
            "started_at": now,
            "attempts": Submission.attempts + 1,
            "error": None,
        },
    )


def renew_lease(
    *,
    session: Session,
    submission_id: int,
    owner: str,
    lease_seconds: float,
    progress: dict[str, Any] | None = None,
) -> bool:
    """Extend the lease (and store progress); False if the lease was lost to another worker."""
    values: dict[str, Any] = {"lease_expires": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = progress
    return _transition(session, submission_id, *_held_by(owner), values=values)


def finish_submission(
    *,
    session: Session,
    submission_id: int,
    owner: str,
    results: dict[str, Any],
) -> bool:
    """Store the result and mark the submission finished, exactly once.

    The result row is unique per submission, and the status change requires the caller's
    lease, so a redelivered or duplicated task cannot write twice.
    """
    finished = _transition(
        session,
        submission_id,
        *_held_by(owner),
        values={"status": Status.FINISHED, "finished_at": utcnow(), "lease_expires": None},
        commit=False,
    )
    if not finished:
        session.rollback()
        return False
    metrics = {key: results.get(key, {}).get("accuracy") for key in COLUMN_METRICS}
    session.add(
        Result(
            submission_id=submission_id,
            suite=results["suite"]["name"],
            suite_version=str(results["suite"]["version"]),
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


def fail_submission(
    *,
    session: Session,
    submission_id: int,
    owner: str | None,
    error: str,
    charged: bool,
) -> bool:
    """Mark a submission failed with a reason; ``charged=False`` gives the quota back."""
    guards: list[ColumnElement[bool]] = [Submission.status.in_(ACTIVE_STATUSES)]
    if owner is not None:
        guards.append(Submission.lease_owner == owner)
    return _transition(
        session,
        submission_id,
        *guards,
        values={
            "status": Status.FAILED,
            "error": error,
            "charged": charged,
            "finished_at": utcnow(),
            "lease_expires": None,
        },
    )


def release_for_retry(
    *, session: Session, submission_id: int, owner: str, error: str | None, count_attempt: bool = True
) -> bool:
    """Give a submission back to the queue after a platform failure (not the model's).

    ``count_attempt=False`` (its worker was asked to stop) takes back the try its claim counted.
    """
    values: dict[str, Any] = {
        "status": Status.QUEUED,
        "lease_owner": None,
        "lease_expires": None,
        "error": error,
    }
    if not count_attempt:
        values.update(attempts=Submission.attempts - 1, progress=None)
    return _transition(session, submission_id, *_held_by(owner), values=values)


# --- the reconciler ----------------------------------------------------------------------


def expired_leases(*, session: Session) -> list[Submission]:
    return list(
        session.scalars(
            select(Submission).where(Submission.status == Status.RUNNING, Submission.lease_expires < utcnow())
        )
    )


def stale_submissions(*, session: Session, status: Status, older_than: float) -> list[Submission]:
    """Submissions in ``status`` since before ``older_than`` seconds ago."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    column = Submission.queued_at if status == Status.QUEUED else Submission.created_at
    return list(session.scalars(select(Submission).where(Submission.status == status, column < cutoff)))


def requeue_expired(*, session: Session, submission_id: int, max_attempts: int) -> str:
    """Handle a submission whose worker vanished: back to the queue, or failed (not charged)
    once it has used up its attempts. Returns the new status."""
    submission = session.get(Submission, submission_id)
    if submission is None or submission.status != Status.RUNNING:
        return submission.status if submission else "missing"
    if submission.attempts >= max_attempts:
        fail_submission(
            session=session,
            submission_id=submission_id,
            owner=submission.lease_owner,
            error=(
                f"The platform lost the worker evaluating this submission {submission.attempts} "
                "times; it does not count against your quota. Please submit again later."
            ),
            charged=False,
        )
        return Status.FAILED
    requeued = _transition(
        session,
        submission_id,
        Submission.status == Status.RUNNING,
        Submission.lease_expires < utcnow(),
        values={"status": Status.QUEUED, "lease_owner": None, "lease_expires": None, "progress": None},
    )
    return Status.QUEUED if requeued else Status.RUNNING
