"""A submission's row before any worker sees it, and the reads of submissions.

``reserve_submission`` inserts it (``validating``) under the team's quota and
``discard_submission`` removes one the upload rejected; its later state changes are in
``server.state.lifecycle``.
"""

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.state.tables import Status, Submission, Team, utcnow
from server.state.teams import QuotaExceeded, check_quota


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
        if started is not None and finished is not None  # as selected
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
    return [
        (arch, sigma is not None, (now - started).total_seconds())
        for arch, sigma, started in rows
        if started is not None  # as selected
    ]
