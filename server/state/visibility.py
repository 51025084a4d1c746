"""Who may see an evaluation: the one rule every answer, page, export and estimate follows.

A final phase evaluates the teams' selections on the private set. Until its results are
revealed — the organiser publishes them (``published_at``), or ``reveal_at`` passes — only
the organiser (the admin token) sees anything of them: not a result, not a status, not a
progress, not a duration (how long a model resists the attacks hints at its robustness).
Development evaluations are always visible.
"""

from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select

from server.state.tables import Competition, Evaluation, Phase, PhaseKind


def final_revealed(competition: Competition, now: datetime) -> bool:
    """Whether the competition's final results are public at ``now``: published, or past
    ``reveal_at``."""
    if competition.published_at is not None:
        return True
    return competition.reveal_at is not None and now >= competition.reveal_at


def phase_visible(phase: Phase, now: datetime, *, admin: bool = False) -> bool:
    """Whether a viewer may see the evaluations of ``phase`` at ``now``."""
    return admin or phase.kind != PhaseKind.FINAL or final_revealed(phase.competition, now)


def evaluation_visible(evaluation: Evaluation, now: datetime, *, admin: bool = False) -> bool:
    """Whether a viewer may see anything of ``evaluation`` at ``now``."""
    return phase_visible(evaluation.phase, now, admin=admin)


def visible_evaluation(now: datetime) -> ColumnElement[bool]:
    """SQL: the evaluation is visible to anyone at ``now`` (not in an unrevealed final phase)."""
    hidden = (
        select(Phase.id)
        .join(Competition, Competition.id == Phase.competition_id)
        .where(Phase.kind == PhaseKind.FINAL, ~_revealed_at(now))
    )
    return Evaluation.phase_id.not_in(hidden)


def _revealed_at(now: datetime) -> ColumnElement[bool]:
    return or_(
        Competition.published_at.is_not(None),
        and_(Competition.reveal_at.is_not(None), Competition.reveal_at <= now),
    )
