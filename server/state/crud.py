"""Plain database functions shared by the API, the workers and the command line.

Every state change of a submission goes through here, as one conditional UPDATE where a race
is possible, so the database stays the single source of truth.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.state.names import name_key
from server.state.security import hash_token, new_token
from server.state.tables import (
    ACTIVE_STATUSES,
    Result,
    Status,
    Submission,
    Team,
    Throughput,
    WorkerHeartbeat,
    utcnow,
)


class QuotaExceeded(Exception):
    """The team may not submit now; the message says why and when it may."""


# --- teams -------------------------------------------------------------------------------


def create_team(*, session: Session, name: str, baseline: bool = False) -> tuple[Team, str]:
    """Create a team and return it with its token, which is never stored in clear.

    ``name`` is already cleaned (server/state/names.py); a look-alike of an existing name fails
    with IntegrityError on the unique key.
    """
    token = new_token()
    team = Team(name=name, name_key=name_key(name), token_hash=hash_token(token), is_baseline=baseline)
    session.add(team)
    session.commit()
    return team, token


def team_by_token(*, session: Session, token: str) -> Team | None:
    team = session.scalar(select(Team).where(Team.token_hash == hash_token(token)))
    return None if team is None or team.revoked else team


def team_by_name(*, session: Session, name: str) -> Team | None:
    return session.scalar(select(Team).where(Team.name == name))


def team_like(*, session: Session, name: str) -> Team | None:
    """The team whose name differs from ``name`` at most by case or Unicode form."""
    exact = team_by_name(session=session, name=name)
    return exact or session.scalar(select(Team).where(Team.name_key == name_key(name)))


def look_alike_teams(*, session: Session) -> list[tuple[str, str]]:
    """(name, the earlier team's name) of teams created before names had to differ by more
    than case or Unicode form; they are kept as they are."""
    keyed = select(Team.name_key, Team.name).where(Team.name_key.is_not(None))
    owners: dict[str, str] = {key: name for key, name in session.execute(keyed)}
    unkeyed = select(Team.name).where(Team.name_key.is_(None)).order_by(Team.id)
    return [(name, owners.get(name_key(name), "?")) for name in session.scalars(unkeyed)]


def rotate_token(*, session: Session, team: Team) -> str:
    """Revoke the team's current token and issue a new one."""
    token = new_token()
    team.token_hash = hash_token(token)
    team.revoked = False
    session.commit()
    return token


def revoke_team(*, session: Session, team: Team) -> None:
    team.revoked = True
    session.commit()


# --- quotas and new submissions ----------------------------------------------------------


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def quota_usage(*, session: Session, team_id: int) -> tuple[int, int]:
    """(counted submissions since midnight UTC, queued or running now)."""
    now = utcnow()
    used = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.team_id == team_id,
            Submission.charged.is_(True),
            Submission.created_at >= _day_start(now),
        )
    )
    active = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.team_id == team_id, Submission.status.in_(ACTIVE_STATUSES)
        )
    )
    return int(used or 0), int(active or 0)


def check_quota(*, session: Session, team_id: int, per_day: int, max_active: int) -> None:
    """Raise QuotaExceeded with a message a team can act on."""
    used, active = quota_usage(session=session, team_id=team_id)
    if active >= max_active:
        raise QuotaExceeded(
            f"You already have {active} submission(s) queued or running (at most {max_active}); "
            "wait until it finishes."
        )
    if used >= per_day:
        raise QuotaExceeded(
            f"Daily quota reached: {used} of {per_day} submissions used today (UTC); "
            "it resets at midnight UTC."
        )


def reserve_submission(
    *, session: Session, team_id: int, per_day: int, max_active: int, **fields: Any
) -> Submission:
    """Insert a submission in ``validating`` state if the team's quota allows it.

    The first statement bumps the team's counter, which takes the team's row lock (PostgreSQL)
    or the database write lock (SQLite) until commit: concurrent uploads of one team are
    checked one after the other, so exactly the allowed number get through.
    """
    _bump_counter(session, team_id)
    try:
        check_quota(session=session, team_id=team_id, per_day=per_day, max_active=max_active)
    except QuotaExceeded:
        session.rollback()
        raise
    submission = Submission(team_id=team_id, status=Status.VALIDATING, **fields)
    session.add(submission)
    session.commit()
    return submission


def discard_submission(*, session: Session, submission_id: int) -> None:
    """Remove a submission rejected before queuing (the upload was answered with a 4xx)."""
    submission = session.get(Submission, submission_id)
    if submission is not None:
        _bump_counter(session, submission.team_id)
        session.delete(submission)
        session.commit()


def _bump_counter(session: Session, team_id: int) -> None:
    """Count a change to the team's submissions (the leaderboard cache's version moves)."""
    session.execute(
        update(Team).where(Team.id == team_id).values(submission_counter=Team.submission_counter + 1)
    )


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
    result = session.execute(
        update(Submission).where(Submission.id == submission_id, *guards).values(**values)
    )
    if commit:
        session.commit()
    return result.rowcount == 1


def cancel_submission(*, session: Session, submission_id: int) -> bool:
    """Cancel a submission no worker has started; it does not count against the quota."""
    return _transition(
        session,
        submission_id,
        Submission.status.in_((Status.QUEUED, Status.VALIDATING)),
        values={"status": Status.CANCELLED, "charged": False, "finished_at": utcnow()},
    )


def mark_queued(*, session: Session, submission_id: int, task_id: str) -> bool:
    """Record that ``task_id`` carries this submission; never touches a running one."""
    return _transition(
        session,
        submission_id,
        Submission.status.in_((Status.VALIDATING, Status.QUEUED)),
        values={"status": Status.QUEUED, "task_id": task_id, "queued_at": utcnow(), "progress": None},
    )


# --- reading -----------------------------------------------------------------------------


def get_submission(*, session: Session, submission_id: int) -> Submission | None:
    return session.get(Submission, submission_id)


def team_submissions(*, session: Session, team_id: int) -> list[Submission]:
    return list(
        session.scalars(
            select(Submission)
            .where(Submission.team_id == team_id)
            .order_by(Submission.created_at.desc(), Submission.id.desc())
        )
    )


def stored_names(*, session: Session) -> set[str]:
    """The stored file name of every submission, whatever its status (finished ones are read
    again by final evaluations and rejudging)."""
    return set(session.scalars(select(Submission.stored_name)))


def recent_runs(*, session: Session, suite: str, limit: int) -> list[tuple[str, bool, float]]:
    """(architecture, certified, seconds from start to finish) of the latest ``limit``
    finished evaluations of ``suite``, newest first."""
    rows = session.execute(
        select(Submission.arch, Submission.sigma, Submission.started_at, Submission.finished_at)
        .where(
            Submission.status == Status.FINISHED,
            Submission.suite == suite,
            Submission.started_at.is_not(None),
            Submission.finished_at.is_not(None),
        )
        .order_by(Submission.finished_at.desc())
        .limit(limit)
    )
    return [
        (arch, sigma is not None, (finished - started).total_seconds())
        for arch, sigma, started, finished in rows
    ]


def queued_ahead(*, session: Session, submission: Submission) -> list[tuple[str, bool]]:
    """(architecture, certified) of the queued submissions before this one, in queue order;
    one more than their number is its place in the queue (1: the next a worker takes)."""
    rows = session.execute(
        select(Submission.arch, Submission.sigma)
        .where(Submission.status == Status.QUEUED, Submission.id < submission.id)
        .order_by(Submission.id)
    )
    return [(arch, sigma is not None) for arch, sigma in rows]


def running_now(*, session: Session) -> list[tuple[str, bool, float]]:
    """(architecture, certified, seconds since it started) of each evaluation a live worker
    holds."""
    now = utcnow()
    rows = session.execute(
        select(Submission.arch, Submission.sigma, Submission.started_at).where(
            Submission.status == Status.RUNNING,
            Submission.lease_expires > now,
            Submission.started_at.is_not(None),
        )
    )
    return [(arch, sigma is not None, (now - started).total_seconds()) for arch, sigma, started in rows]


# --- worker side: leases, progress, results ----------------------------------------------


def _held_by(owner: str) -> tuple[ColumnElement[bool], ...]:
    """The guard of a transition only the worker holding the lease may make."""
    return (Submission.lease_owner == owner, Submission.status == Status.RUNNING)


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
    metrics = {key: results.get(key, {}).get("accuracy") for key in _METRIC_COLUMNS}
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


_METRIC_COLUMNS = ("natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing")


def fail_submission(
    *,
    session: Session,
    submission_id: int,
    owner: str | None,
    error: str,
    charged: bool,
) -> bool:
    """Mark a submission failed with a reason; ``charged=False`` gives the quota back."""
    guards = [Submission.status.in_(ACTIVE_STATUSES)]
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


# --- workers alive ---------------------------------------------------------------------------


def record_worker(*, session: Session, worker_id: str, hostname: str, pid: int) -> None:
    """Insert or refresh a worker's heartbeat, with the submission it holds now."""
    now = utcnow()
    holding = session.scalar(
        select(Submission.id)
        .where(Submission.lease_owner == worker_id, Submission.status == Status.RUNNING)
        .limit(1)
    )
    row = session.get(WorkerHeartbeat, worker_id)
    if row is None:
        row = WorkerHeartbeat(worker_id=worker_id, hostname=hostname, pid=pid, started_at=now)
        session.add(row)
    row.last_seen, row.submission_id = now, holding
    session.commit()


def forget_workers(*, session: Session, worker_id: str | None = None, unseen_for: float = 0) -> None:
    """Delete one worker's heartbeat (it stops), or every one unseen for ``unseen_for`` s."""
    if worker_id is not None:
        condition = WorkerHeartbeat.worker_id == worker_id
    else:
        condition = WorkerHeartbeat.last_seen < utcnow() - timedelta(seconds=unseen_for)
    session.execute(delete(WorkerHeartbeat).where(condition))
    session.commit()


def live_workers(*, session: Session, seen_within: float) -> int:
    """How many workers were seen in the last ``seen_within`` seconds."""
    cutoff = utcnow() - timedelta(seconds=seen_within)
    return (
        session.scalar(
            select(func.count()).select_from(WorkerHeartbeat).where(WorkerHeartbeat.last_seen > cutoff)
        )
        or 0
    )


# --- throughput (the cost model's rates) ---------------------------------------------------


def record_throughput(*, session: Session, arch: str, device: str, forward: float, backward: float) -> None:
    """Keep a worker's latest timing of ``arch`` on ``device`` (images per second)."""
    values = {"forward_per_second": forward, "backward_per_second": backward, "measured_at": utcnow()}
    changed = session.execute(
        update(Throughput).where(Throughput.arch == arch, Throughput.device == device).values(**values)
    ).rowcount
    if not changed:
        try:
            with session.begin_nested():
                session.add(Throughput(arch=arch, device=device, **values))
        except IntegrityError:  # another worker timed it at the same moment: keep theirs
            pass
    session.commit()


def throughputs(*, session: Session) -> list[Throughput]:
    """Every timing, newest first."""
    return list(session.scalars(select(Throughput).order_by(Throughput.measured_at.desc())))
