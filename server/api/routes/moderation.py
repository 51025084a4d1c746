"""The organiser's moderation (admin token): hiding a submission from the boards,
disqualifying a team, each with a public reason, and undoing either.

Teams are named as on their pages (``/teams/{name}``) and in ``arena team``.
"""

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from server.api.deps import AdminDep, SubmissionId, WriteSessionDep
from server.api.errors import FieldError
from server.api.schemas import ModerationReason, SubmissionModeration, TeamModeration
from server.state import moderation
from server.state.submissions import get_submission
from server.state.tables import Submission, Team
from server.state.teams import team_by_name

router = APIRouter(prefix="/api", tags=["moderation"])

TeamName = Annotated[str, PathParam(description="The team's name, as on its page.")]


@router.post("/submissions/{submission_id}/hide", response_model=SubmissionModeration)
def hide_submission(
    submission_id: SubmissionId, body: ModerationReason, session: WriteSessionDep, _admin: AdminDep
) -> SubmissionModeration:
    """Leave a submission out of every board (its team's next best counts); the reason is
    shown on its page. Hiding again replaces the reason."""
    submission = _submission(session, submission_id)
    try:
        changed = moderation.hide_submission(session=session, submission=submission, reason=body.reason)
    except moderation.ReasonError as error:
        raise FieldError(422, str(error), "reason") from None
    return _submission_state(submission, changed)


@router.delete("/submissions/{submission_id}/hide", response_model=SubmissionModeration)
def unhide_submission(
    submission_id: SubmissionId, session: WriteSessionDep, _admin: AdminDep
) -> SubmissionModeration:
    """Let a hidden submission count again."""
    submission = _submission(session, submission_id)
    changed = moderation.unhide_submission(session=session, submission=submission)
    return _submission_state(submission, changed)


@router.post("/teams/{name:path}/disqualify", response_model=TeamModeration)
def disqualify_team(
    name: TeamName, body: ModerationReason, session: WriteSessionDep, _admin: AdminDep
) -> TeamModeration:
    """Take a team out of the ranking: boards list it apart, with the reason. Disqualifying
    again replaces the reason."""
    team = _team(session, name)
    try:
        changed = moderation.disqualify_team(session=session, team=team, reason=body.reason)
    except moderation.ReasonError as error:
        raise FieldError(422, str(error), "reason") from None
    return _team_state(team, changed)


@router.delete("/teams/{name:path}/disqualify", response_model=TeamModeration)
def reinstate_team(name: TeamName, session: WriteSessionDep, _admin: AdminDep) -> TeamModeration:
    """Rank a disqualified team again."""
    team = _team(session, name)
    changed = moderation.reinstate_team(session=session, team=team)
    return _team_state(team, changed)


def _submission(session: Session, submission_id: int) -> Submission:
    submission = get_submission(session=session, submission_id=submission_id)
    if submission is None:
        raise FieldError(404, f"Submission {submission_id} not found.")
    return submission


def _team(session: Session, name: str) -> Team:
    # Team names are printable text: nothing else needs a database lookup.
    team = team_by_name(session=session, name=name) if name.isprintable() else None
    if team is None:
        raise FieldError(404, f"Team {name!r} not found.")
    return team


def _submission_state(submission: Submission, changed: bool) -> SubmissionModeration:
    return SubmissionModeration(
        id=submission.id,
        team=submission.team.name,
        hidden_reason=submission.hidden_reason,
        moderated_at=submission.moderated_at,
        changed=changed,
    )


def _team_state(team: Team, changed: bool) -> TeamModeration:
    return TeamModeration(
        id=team.id,
        name=team.name,
        disqualified_reason=team.disqualified_reason,
        moderated_at=team.moderated_at,
        changed=changed,
    )
