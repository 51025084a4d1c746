"""The organiser's moderation: hiding a submission, disqualifying a team, with a public reason.

A hidden submission counts on no board (its team's next best does) but stays readable, its
reason shown on its page. A disqualified team is never ranked: the board lists it apart, with
its reason. Both are undone by clearing the reason. Every change bumps the team's
``submission_counter``, which moves the version cached boards are checked against
(server/state/leaderboard.py), so no board shows a stale ranking.
"""

from sqlalchemy import update
from sqlalchemy.orm import Session

from server.state.tables import Submission, Team, utcnow

#: The longest reason accepted: a sentence or two, shown on pages and in exports.
MAX_REASON = 500


class ReasonError(ValueError):
    """A reason that cannot be published; the message says why."""


def clean_reason(raw: str) -> str:
    """The reason as published: stripped, non-empty, printable, at most ``MAX_REASON`` long."""
    reason = raw.strip()
    if not reason:
        raise ReasonError("A reason is required: it is shown publicly.")
    if len(reason) > MAX_REASON:
        raise ReasonError(f"The reason is at most {MAX_REASON} characters long.")
    if not reason.isprintable():
        raise ReasonError("The reason must be printable text on one line.")
    return reason


def hide_submission(*, session: Session, submission: Submission, reason: str) -> bool:
    """Leave ``submission`` out of every board, saying why; whether anything changed
    (hiding again with the same reason changes nothing)."""
    return _set(session, submission, "hidden_reason", clean_reason(reason), submission.team_id)


def unhide_submission(*, session: Session, submission: Submission) -> bool:
    """Let ``submission`` count again; whether it was hidden."""
    return _set(session, submission, "hidden_reason", None, submission.team_id)


def disqualify_team(*, session: Session, team: Team, reason: str) -> bool:
    """Take ``team`` out of the ranking, listed apart with the reason; whether anything changed."""
    return _set(session, team, "disqualified_reason", clean_reason(reason), team.id)


def reinstate_team(*, session: Session, team: Team) -> bool:
    """Rank ``team`` again; whether it was disqualified."""
    return _set(session, team, "disqualified_reason", None, team.id)


def _set(session: Session, row: Submission | Team, column: str, reason: str | None, team_id: int) -> bool:
    """Store ``reason`` in ``row``'s ``column`` and commit, bumping the team's counter so
    cached boards are recomputed; nothing is written when the reason is already that one."""
    if getattr(row, column) == reason:
        return False
    setattr(row, column, reason)
    row.moderated_at = utcnow()
    session.execute(
        update(Team).where(Team.id == team_id).values(submission_counter=Team.submission_counter + 1)
    )
    session.commit()
    return True
