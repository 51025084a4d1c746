"""The end of a competition: final selections, the deadline, publishing and rejudging.

While the development phase is open a team selects up to ``final_selections`` of its
submissions for the final phase (``select_final`` / ``unselect_final``). At the development
phase's end ``start_final_phase`` (called by every worker's reconciler) creates one final-phase
evaluation per selected submission, or, for a team that selected none, for its best
development submission; a conditional UPDATE lets exactly one caller do it. The organiser then
``publish``es the final results, and may ``rerun`` every submission whose latest result in a
phase was computed under an older version of the competition's suite.

Evaluations created here are never charged: ``charged`` belongs to the upload, and only a
submission's first evaluation ever changes it. Times are parameters (``now``) so tests move
the clock instead of waiting.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from celery import Celery
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, aliased

from server.state.competition_spec import iso_utc
from server.state.competitions import current_phase
from server.state.config import parse_score
from server.state.leaderboard import rankable
from server.state.queue import enqueue
from server.state.scoring import score_expression
from server.state.submissions import development_evaluation
from server.state.tables import (
    ACTIVE_STATUSES,
    Competition,
    Evaluation,
    Phase,
    PhaseKind,
    Result,
    Status,
    Submission,
    Team,
)
from worker.engine.protocol import SUITES  # torch-free


class FinalsError(ValueError):
    """A request the competition's state refuses (HTTP 409; a rerun of an unknown phase: 404);
    the message says why."""


@dataclass(frozen=True)
class Selection:
    """A submission's selection state and its team's count against the limit."""

    submission_id: int
    final: bool
    selected: int
    allowed: int


# --- phases ----------------------------------------------------------------------------------


def development_phase(competition: Competition) -> Phase | None:
    return next((p for p in competition.phases if p.kind == PhaseKind.DEVELOPMENT), None)


def final_phase(competition: Competition) -> Phase | None:
    return next((p for p in competition.phases if p.kind == PhaseKind.FINAL), None)


def development_ended(competition: Competition, now: datetime) -> bool:
    """Whether the development phase has an end and ``now`` is at or past it."""
    development = development_phase(competition)
    return development is not None and development.ends_at is not None and now >= development.ends_at


# --- final selections ------------------------------------------------------------------------


def selected_count(session: Session, team_id: int, competition_id: int) -> int:
    """How many of the team's submissions in the competition are selected for the final."""
    return (
        session.scalar(
            select(func.count(Submission.id)).where(
                Submission.team_id == team_id,
                Submission.competition_id == competition_id,
                Submission.final_selected_at.is_not(None),
            )
        )
        or 0
    )


def selection_window_error(competition: Competition, now: datetime) -> str | None:
    """Why selections of this competition cannot change at ``now``; None while they can."""
    development = development_phase(competition)
    if final_phase(competition) is None or development is None:
        return f"The competition {competition.slug!r} has no final phase: there is nothing to select for."
    if current_phase(competition, now) is development:
        return None
    start, end = development.starts_at, development.ends_at
    dates = f"from {iso_utc(start)} to {iso_utc(end)} (UTC)" if start and end else "without dates"
    return (
        f"Final selections can be changed only while the {development.name} phase is open; it runs {dates}."
    )


def ineligibility(session: Session, submission: Submission) -> str | None:
    """Why this submission cannot be selected for the final; None if it can."""
    if submission.hidden_reason is not None:
        return f"Submission {submission.id} is hidden by the organiser and cannot be selected."
    evaluation = development_evaluation(session=session, submission_id=submission.id)
    if evaluation is not None and evaluation.status in (Status.FAILED, Status.CANCELLED):
        return f"Submission {submission.id} is {evaluation.status}; only a valid submission can be selected."
    return None


def select_final(session: Session, submission: Submission, now: datetime) -> Selection:
    """Select ``submission`` for its competition's final phase and commit (selecting it
    again changes nothing). FinalsError outside the development phase, past the limit, or
    for a hidden, failed or cancelled submission."""
    competition = submission.competition
    _lock_team(session, submission.team_id)
    session.refresh(submission)  # as stored now, under the team's lock
    problem = selection_window_error(competition, now) or ineligibility(session, submission)
    if problem is not None:
        session.rollback()
        raise FinalsError(problem)
    count = selected_count(session, submission.team_id, competition.id)
    if submission.final_selected_at is None:
        if count >= competition.final_selections:
            session.rollback()
            raise FinalsError(
                f"Your team has already selected {count} submissions for the final, the limit "
                f"of {competition.final_selections}: unselect one first."
            )
        submission.final_selected_at = now
        count += 1
    session.commit()
    return Selection(submission.id, True, count, competition.final_selections)


def unselect_final(session: Session, submission: Submission, now: datetime) -> Selection:
    """Withdraw ``submission`` from the final and commit (a no-op if it was not selected);
    FinalsError outside the development phase."""
    competition = submission.competition
    _lock_team(session, submission.team_id)
    problem = selection_window_error(competition, now)
    if problem is not None:
        session.rollback()
        raise FinalsError(problem)
    submission.final_selected_at = None
    session.flush()
    count = selected_count(session, submission.team_id, competition.id)
    session.commit()
    return Selection(submission.id, False, count, competition.final_selections)


def selection_of(session: Session, submission: Submission) -> Selection:
    """The submission's selection state as stored."""
    competition = submission.competition
    return Selection(
        submission.id,
        submission.final_selected_at is not None,
        selected_count(session, submission.team_id, competition.id),
        competition.final_selections,
    )


def _lock_team(session: Session, team_id: int) -> None:
    """Serialise a team's selection changes (the row lock, as uploads take it): two requests
    cannot both take the last place. The counter also moves cached boards' version."""
    session.execute(
        update(Team).where(Team.id == team_id).values(submission_counter=Team.submission_counter + 1)
    )


# --- the deadline ----------------------------------------------------------------------------


def competitions_due(session: Session, now: datetime) -> list[Competition]:
    """Competitions whose final phase should start now and has not: a cheap query each
    reconciler round makes."""
    final = aliased(Phase)
    due = (
        select(Competition)
        .join(Phase, Phase.competition_id == Competition.id)
        .where(
            Competition.finals_started_at.is_(None),
            Phase.kind == PhaseKind.DEVELOPMENT,
            Phase.ends_at.is_not(None),
            Phase.ends_at <= now,
            select(final.id)
            .where(final.competition_id == Competition.id, final.kind == PhaseKind.FINAL)
            .exists(),
        )
    )
    return list(session.scalars(due))


def start_final_phase(
    session: Session, competition: Competition, now: datetime, *, app: Celery | None = None
) -> list[int]:
    """At the development phase's end, create the final phase's evaluations once and queue
    them; returns their ids (empty before the end, without a final phase, or once started).

    The start is one conditional UPDATE of ``finals_started_at``: of two reconcilers racing,
    one wins and creates the evaluations in the same transaction; the other gets nothing.
    """
    final = final_phase(competition)
    if final is None or competition.finals_started_at is not None or not development_ended(competition, now):
        return []
    # Session.execute is typed as a Result; an UPDATE gives a CursorResult, which counts rows.
    won = cast(
        CursorResult[Any],
        session.execute(
            update(Competition)
            .where(Competition.id == competition.id, Competition.finals_started_at.is_(None))
            .values(finals_started_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    if won.rowcount != 1:
        session.rollback()
        return []
    chosen = finalists(session, competition)
    evaluations = [_uncharged(submission_id, final, competition.suite) for submission_id in chosen]
    session.add_all(evaluations)
    session.commit()
    ids = [evaluation.id for evaluation in evaluations]
    for evaluation_id in ids:  # a failed send leaves it validating: the reconciler sends it again
        enqueue(session, evaluation_id, app)
    return ids


def _uncharged(submission_id: int, phase: Phase, suite: str) -> Evaluation:
    """A further evaluation (``validating`` until queued): only a submission's first
    evaluation ever changes its charge, so this one costs the team nothing."""
    return Evaluation(submission_id=submission_id, phase_id=phase.id, suite=suite, status=Status.VALIDATING)


def finalists(session: Session, competition: Competition) -> list[int]:
    """The submissions the final phase evaluates, in id order: each team's selected ones,
    or, for a team that selected none, its best development submission under the score rule
    (ties: the earlier). Hidden submissions and disqualified teams' take no part, nor do
    selections whose development evaluation failed or was cancelled."""
    eligible = [Submission.competition_id == competition.id, *rankable()]
    selected = session.scalars(
        select(Submission).where(*eligible, Submission.final_selected_at.is_not(None))
    ).all()
    chosen = {s.id for s in selected if ineligibility(session, s) is None}
    teams_with_selection = {s.team_id for s in selected}
    development = development_phase(competition)
    if development is not None:
        score = score_expression(parse_score(competition.score)).label("score")
        rows = session.execute(
            select(Submission.id, Submission.team_id, Submission.created_at, score)
            .join(Result, Result.submission_id == Submission.id)
            .join(Evaluation, Evaluation.id == Result.evaluation_id)
            .where(
                *eligible,
                Evaluation.phase_id == development.id,
                Result.suite == competition.suite,
                score.is_not(None),
            )
        ).all()
        best: dict[int, tuple[float, object, int]] = {}
        for submission_id, team_id, created_at, value in rows:
            if team_id in teams_with_selection:
                continue
            key = (-value, created_at, submission_id)
            if team_id not in best or key < best[team_id]:
                best[team_id] = key
        chosen.update(submission_id for _, _, submission_id in best.values())
    return sorted(chosen)


def final_evaluations(session: Session, competition: Competition) -> list[Evaluation]:
    """The final phase's evaluations, oldest first (for the organiser)."""
    final = final_phase(competition)
    if final is None:
        return []
    in_final = select(Evaluation).where(Evaluation.phase_id == final.id).order_by(Evaluation.id)
    return list(session.scalars(in_final))


# --- publishing ------------------------------------------------------------------------------


def publish(session: Session, competition: Competition, now: datetime) -> Competition:
    """Publish the final results (set ``published_at`` once; again changes nothing) and
    commit. FinalsError before the development phase has ended."""
    if competition.published_at is not None:
        return competition
    development = development_phase(competition)
    if not development_ended(competition, now):
        end = development.ends_at if development is not None else None
        until = f" at {iso_utc(end)}" if end is not None else ""
        raise FinalsError(
            f"The competition {competition.slug!r} cannot be published before its development "
            f"phase ends{until}."
        )
    session.execute(
        update(Competition)
        .where(Competition.id == competition.id, Competition.published_at.is_(None))
        .values(published_at=now)
    )
    session.commit()
    session.refresh(competition)
    return competition


# --- rejudging -------------------------------------------------------------------------------


def current_suite_version(suite: str) -> str | None:
    """The engine's version of ``suite`` now; None for a suite it no longer defines."""
    known = SUITES.get(suite)
    return known.version if known is not None else None


def outdated(session: Session, competition: Competition, phase: Phase) -> list[int]:
    """Submissions whose latest finished evaluation in ``phase`` ran an older version of the
    competition's suite, and that have no evaluation waiting or running there."""
    version = current_suite_version(competition.suite)
    if version is None:
        return []
    latest = (
        select(func.max(Evaluation.id).label("id"))
        .join(Submission, Submission.id == Evaluation.submission_id)
        .where(
            Submission.competition_id == competition.id,
            Evaluation.phase_id == phase.id,
            Evaluation.suite == competition.suite,
            Evaluation.status == Status.FINISHED,
        )
        .group_by(Evaluation.submission_id)
        .subquery()
    )
    pending = select(Evaluation.submission_id).where(
        Evaluation.phase_id == phase.id, Evaluation.status.in_(ACTIVE_STATUSES)
    )
    return list(
        session.scalars(
            select(Evaluation.submission_id)
            .join(latest, latest.c.id == Evaluation.id)
            .where(Evaluation.suite_version != version, Evaluation.submission_id.not_in(pending))
            .order_by(Evaluation.submission_id)
        )
    )


def rerun(
    session: Session, competition: Competition, phase_name: str | None = None, *, app: Celery | None = None
) -> int:
    """Queue a new (uncharged) evaluation of every outdated submission in the named phase, or
    in every phase; returns how many. Old results stay: each names its suite version, and the
    boards rank only the current version's. FinalsError for an unknown phase name."""
    phases = [p for p in competition.phases if phase_name is None or p.name == phase_name]
    if not phases:
        known = ", ".join(repr(p.name) for p in competition.phases)
        raise FinalsError(
            f"The competition {competition.slug!r} has no phase {phase_name!r}; its phases: {known}."
        )
    created: list[Evaluation] = []
    for phase in phases:
        created += [
            _uncharged(submission_id, phase, competition.suite)
            for submission_id in outdated(session, competition, phase)
        ]
    if not created:
        return 0
    session.add_all(created)
    session.flush()
    teams = select(Submission.team_id).where(Submission.id.in_({e.submission_id for e in created}))
    # Boards say how many are being re-evaluated: move their cached version.
    session.execute(
        update(Team).where(Team.id.in_(teams)).values(submission_counter=Team.submission_counter + 1)
    )
    session.commit()
    for evaluation in created:
        enqueue(session, evaluation.id, app)
    return len(created)
