"""FastAPI dependencies as typed aliases, so route signatures stay one line each."""

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path
from sqlalchemy.orm import Session

from server import crud
from server.config import Settings, get_settings
from server.db import get_db, get_write_db
from server.security import hash_token, same_secret
from server.tables import Submission, Team

# Ids are 32-bit integers in every supported database.
SubmissionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Submission id.")]

SessionDep = Annotated[Session, Depends(get_db)]
WriteSessionDep = Annotated[Session, Depends(get_write_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def bearer_token(authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization:
        raise HTTPException(
            401,
            detail="Missing token: send 'Authorization: Bearer <team token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            detail="Malformed Authorization header: expected 'Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


TokenDep = Annotated[str, Depends(bearer_token)]


def current_team(session: SessionDep, token: TokenDep) -> Team:
    team = crud.team_by_token(session=session, token=token)
    if team is None:
        raise HTTPException(401, detail="Invalid or revoked team token.")
    return team


CurrentTeam = Annotated[Team, Depends(current_team)]


def require_admin(token: TokenDep, settings: SettingsDep) -> None:
    if not settings.admin_token:
        raise HTTPException(403, detail="Admin routes are disabled: ARENA_ADMIN_TOKEN is not set.")
    if not same_secret(token, settings.admin_token):
        raise HTTPException(403, detail="Invalid admin token.")


AdminDep = Annotated[None, Depends(require_admin)]


def owned_submission(session: Session, submission_id: int, team: Team) -> Submission:
    """The team's own submission, or 404 (another team's looks the same as a missing one)."""
    submission = crud.get_submission(session=session, submission_id=submission_id)
    if submission is None or submission.team_id != team.id:
        raise HTTPException(404, detail=f"Submission {submission_id} not found.")
    return submission


def is_owner(submission: Submission, authorization: str | None) -> bool:
    """Whether an optional 'Bearer <token>' header is the submitting team's live token."""
    token = (authorization or "").partition(" ")[2].strip()
    team = submission.team
    return bool(token) and team.token_hash == hash_token(token) and not team.revoked
