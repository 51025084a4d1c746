"""A submission's row before any worker sees it, its evaluations, and the reads of both.

``reserve_submission`` inserts the upload's row with its first evaluation (``validating``,
on the competition's development phase: that is how an upload being checked is represented)
under the team's quota, and ``discard_submission`` removes one the upload rejected;
``add_evaluation`` runs a submission again in another phase. Later state changes are in
``server.state.lifecycle``.
"""

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.state.tables import Evaluation, Phase, PhaseKind, Status, Submission, Team, utcnow
from server.state.teams import QuotaExceeded, check_quota
from server.state.visibility import visible_evaluation


def reserve_submission(
    *,
    session: Session,
    team_id: int,
    competition_id: int,
    phase_id: int,
    suite: str,
    per_day: int,
    max_active: int,
    **fields: Any,
) -> Evaluation:
    """Insert a submission and its first evaluation (``validating``) if the team's quota in
    the competition allows it; returns the evaluation (its ``submission`` is the upload).

    The first statement bumps the team's counter, which takes the team's row lock (PostgreSQL)
    or the database write lock (SQLite) until commit: concurrent uploads of one team are
    checked one after the other, so exactly the allowed number get through.
    """
    _bump_counter(session, team_id)
    try:
        check_quota(
            session=session,
            team_id=team_id,
            competition_id=competition_id,
            per_day=per_day,
            max_active=max_active,
        )
    except QuotaExceeded:
        session.rollback()
        raise
    submission = Submission(team_id=team_id, competition_id=competition_id, **fields)
    evaluation = Evaluation(submission=submission, phase_id=phase_id, suite=suite, status=Status.VALIDATING)
    session.add_all([submission, evaluation])
    session.commit()
    return evaluation


def add_evaluation(*, session: Session, submission_id: int, phase_id: int, suite: str) -> Evaluation:
    """A further evaluation of a stored submission (another phase, another suite version),
    ``validating`` until ``server.state.queue.enqueue`` queues it; not charged to the team."""
    evaluation = Evaluation(
        submission_id=submission_id, phase_id=phase_id, suite=suite, status=Status.VALIDATING
    )
    session.add(evaluation)
    session.commit()
    return evaluation


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


def get_evaluation(*, session: Session, evaluation_id: int) -> Evaluation | None:
    return session.get(Evaluation, evaluation_id)


def development_evaluation(*, session: Session, submission_id: int) -> Evaluation | None:
    """The evaluation a submission's API answers describe: its latest on a development phase."""
    return session.scalar(
        select(Evaluation)
        .join(Phase, Phase.id == Evaluation.phase_id)
        .where(Evaluation.submission_id == submission_id, Phase.kind == PhaseKind.DEVELOPMENT)
        .order_by(Evaluation.id.desc())
        .limit(1)
    )


def final_evaluation(*, session: Session, submission_id: int) -> Evaluation | None:
    """The submission's latest evaluation on a final phase, if it was selected; whether a
    viewer may see it is ``server.state.visibility``'s to say."""
    return session.scalar(
        select(Evaluation)
        .join(Phase, Phase.id == Evaluation.phase_id)
        .where(Evaluation.submission_id == submission_id, Phase.kind == PhaseKind.FINAL)
        .order_by(Evaluation.id.desc())
        .limit(1)
    )


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
    finished evaluations of ``suite``, newest first. Unrevealed final evaluations are left
    out: an estimate shown to anyone must not carry their durations."""
    rows = session.execute(
        select(Submission.arch, Submission.sigma, Evaluation.started_at, Evaluation.finished_at)
        .select_from(Evaluation)
        .join(Submission, Submission.id == Evaluation.submission_id)
        .where(
            Evaluation.status == Status.FINISHED,
            Evaluation.suite == suite,
            Evaluation.started_at.is_not(None),
            Evaluation.finished_at.is_not(None),
            visible_evaluation(utcnow()),
        )
        .order_by(Evaluation.finished_at.desc())
        .limit(limit)
    )
    return [
        (arch, sigma is not None, (finished - started).total_seconds())
        for arch, sigma, started, finished in rows
        if started is not None and finished is not None  # as selected
    ]


def queued_ahead(*, session: Session, evaluation: Evaluation) -> list[tuple[str, bool]]:
    """(architecture, certified) of the queued evaluations before this one, in queue order;
    one more than their number is its place in the queue (1: the next a worker takes)."""
    rows = session.execute(
        select(Submission.arch, Submission.sigma)
        .select_from(Evaluation)
        .join(Submission, Submission.id == Evaluation.submission_id)
        .where(Evaluation.status == Status.QUEUED, Evaluation.id < evaluation.id)
        .order_by(Evaluation.id)
    )
    return [(arch, sigma is not None) for arch, sigma in rows]


def running_now(*, session: Session) -> list[tuple[str, bool, float]]:
    """(architecture, certified, seconds since it started) of each evaluation a live worker
    holds. An unrevealed final evaluation counts as just started: it keeps its worker busy
    for a whole typical run of its kind, and nothing of its own timing shows."""
    now = utcnow()
    visible = visible_evaluation(now)
    rows = session.execute(
        select(Submission.arch, Submission.sigma, Evaluation.started_at, visible.label("visible"))
        .select_from(Evaluation)
        .join(Submission, Submission.id == Evaluation.submission_id)
        .where(
            Evaluation.status == Status.RUNNING,
            Evaluation.lease_expires > now,
            Evaluation.started_at.is_not(None),
        )
    )
    return [
        (arch, sigma is not None, (now - started).total_seconds() if visible else 0.0)
        for arch, sigma, started, visible in rows
        if started is not None  # as selected
    ]
