"""FastAPI dependencies as typed aliases, so route signatures stay one line each."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import anyio
from anyio.lowlevel import RunVar
from fastapi import Depends, Header, HTTPException, Path, Query
from sqlalchemy.orm import Session

from server.api.errors import FieldError
from server.api.schemas import Leaderboard
from server.state import leaderboard
from server.state.competition_spec import DEFAULT_SLUG, SLUG
from server.state.competitions import get_competition
from server.state.config import Settings, get_settings, parse_score
from server.state.db import get_db, get_write_db, new_session
from server.state.leaderboard import Published
from server.state.scoring import Track, validate_radius
from server.state.security import hash_token, same_secret
from server.state.submissions import get_submission
from server.state.tables import Competition, Phase, PhaseKind, Submission, Team, utcnow
from server.state.teams import team_by_token
from server.state.visibility import final_revealed, phase_visible
from worker.engine.protocol import HEADLINE_RADIUS, SUITES  # torch-free

# Suite names are plain words (class, robustbench, smoke); nothing else reaches the database.
SUITE_NAME = re.compile(r"[\w.-]+", re.ASCII)
# Ids are 32-bit integers in every supported database.
SubmissionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Submission id.")]

SessionDep = Annotated[Session, Depends(get_db)]
WriteSessionDep = Annotated[Session, Depends(get_write_db)]


async def current_settings() -> Settings:
    """The settings, without the thread hand-off FastAPI gives a plain function."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(current_settings)]


# Two threads read boards; more requests wait their turn in the event loop, in order, instead
# of dozens of threads contending for the interpreter lock (the tail latency). One limiter per
# event loop, as anyio keeps its own default thread limiter.
_BOARD_READERS: RunVar[anyio.CapacityLimiter] = RunVar("board_readers")


def _board_readers() -> anyio.CapacityLimiter:
    try:
        return _BOARD_READERS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(2)
        _BOARD_READERS.set(limiter)
        return limiter


def is_admin(authorization: str | None, settings: Settings) -> bool:
    """Whether an optional 'Bearer <token>' header holds the admin token. Anything else reads
    as anonymous: the routes asking are public."""
    scheme, _, token = (authorization or "").partition(" ")
    return (
        bool(settings.admin_token)
        and scheme.lower() == "bearer"
        and bool(token.strip())
        and same_secret(token.strip(), settings.admin_token or "")
    )


async def clock() -> datetime:
    """The time now, in UTC: a dependency, so tests can fix it (``dependency_overrides``)
    instead of waiting for a phase to open or close. Without the thread hand-off a plain
    function gets: the leaderboard, the most read route, asks for it."""
    return utcnow()


NowDep = Annotated[datetime, Depends(clock)]


def not_published(competition: Competition) -> str:
    return f"The final results of {competition.slug!r} are not published yet."


def board_phase(competition: Competition, name: str | None, now: datetime, *, admin: bool) -> Phase:
    """The phase whose board ``?phase=`` asks for (its name, or its kind: development, final);
    by default the final board once revealed, else the development one. 404 for an unknown
    phase, and for a final board not revealed yet unless ``admin``."""
    phases = competition.phases
    development = next(p for p in phases if p.kind == PhaseKind.DEVELOPMENT)
    final = next((p for p in phases if p.kind == PhaseKind.FINAL), None)
    if name is None:
        return final if final is not None and final_revealed(competition, now) else development
    found = next((p for p in phases if p.name == name), None) or next(
        (p for p in phases if p.kind == name), None
    )
    if found is None:
        raise FieldError(404, f"No phase {name!r} in competition {competition.slug!r}.", "phase")
    if not phase_visible(found, now, admin=admin):
        raise HTTPException(404, detail=not_published(competition))
    return found


async def published_board(  # noqa: PLR0913 - one parameter per query field and header of a board read
    settings: SettingsDep,
    now: NowDep,
    suite: Annotated[
        str | None,
        Query(max_length=32, description="Suite; the server's by default (the default competition only)."),
    ] = None,
    track: Annotated[Track, Query(description="empirical (score rule) or certified.")] = Track.EMPIRICAL,
    radius: Annotated[float, Query(description="ℓ2 radius ranked by the certified track.")] = HEADLINE_RADIUS,
    competition: Annotated[
        str | None, Query(max_length=63, description="The competition's slug; default by default.")
    ] = None,
    phase: Annotated[
        str | None,
        Query(
            max_length=64,
            description="A phase's name or kind (development, final); by default the final "
            "board once its results are revealed, else the development one.",
        ),
    ] = None,
    authorization: Annotated[
        str | None, Header(description="'Bearer <admin token>' shows a final board before it is revealed.")
    ] = None,
) -> Published:
    """The board a page, download or API read asks for with
    ``?competition=&phase=&suite=&track=&radius=``.

    The most read route of the platform: its database work (a version check, and the ranking
    only when the data changed) runs in one worker thread with its own session.
    """
    try:
        radius = validate_radius(radius)
    except ValueError as error:
        raise FieldError(422, str(error), "radius") from None
    if suite is not None and not SUITE_NAME.fullmatch(suite):
        raise FieldError(422, "suite must be letters, digits, '.', '_' or '-'.", "suite")
    if competition is not None and not SLUG.fullmatch(competition):
        raise FieldError(404, f"Unknown competition {competition!r}.", "competition")
    admin = is_admin(authorization, settings)

    request = _BoardRequest(competition, phase, suite, track, radius, now, admin)
    return await anyio.to_thread.run_sync(_read_board, settings, request, limiter=_board_readers())


@dataclass(frozen=True)
class _BoardRequest:
    """What a board read asks for, checked: ``published_board``'s query, clock and viewer."""

    competition: str | None
    phase: str | None
    suite: str | None
    track: Track
    radius: float
    now: datetime
    admin: bool


def _read_board(settings: Settings, asked: _BoardRequest) -> Published:
    """The board ``asked`` names, in a session of its own (run in a worker thread)."""
    suite, track, radius = asked.suite, asked.track, asked.radius
    with new_session(write=False) as session:
        if asked.competition in (None, DEFAULT_SLUG) and asked.phase is None:
            return _default_board(session, settings, suite, track, radius)
        contest = get_competition(session, asked.competition or DEFAULT_SLUG)
        if contest is None:
            raise FieldError(404, f"Unknown competition {asked.competition!r}.", "competition")
        if contest.slug != DEFAULT_SLUG and suite not in (None, contest.suite):
            only = f"The competition {contest.slug!r} is evaluated with suite {contest.suite!r} only."
            raise FieldError(422, only, "suite")
        chosen = board_phase(contest, asked.phase, asked.now, admin=asked.admin)
        if contest.slug == DEFAULT_SLUG and chosen.kind == PhaseKind.DEVELOPMENT:
            return _default_board(session, settings, suite, track, radius)
        development = next(p for p in contest.phases if p.kind == PhaseKind.DEVELOPMENT)
        default = contest.slug == DEFAULT_SLUG
        return leaderboard.published(
            session=session,
            suite=(suite or settings.suite) if default else contest.suite,
            weights=settings.score_weights() if default else parse_score(contest.score),
            track=track,
            radius=radius,
            phase_id=chosen.id,
            public_phase_id=development.id if chosen.kind == PhaseKind.FINAL else None,
        )


def _default_board(
    session: Session, settings: Settings, suite: str | None, track: Track, radius: float
) -> Published:
    """The default competition's development board, as ``/api/leaderboard`` always gave it."""
    if suite is not None and suite not in SUITES and suite != settings.suite:
        known = leaderboard.known_suites(session, settings.suite)
        if suite not in known:
            raise FieldError(404, f"Unknown suite {suite!r}; known suites: {', '.join(known)}.", "suite")
    return leaderboard.published(
        session=session,
        suite=suite or settings.suite,
        weights=settings.score_weights(),
        track=track,
        radius=radius,
    )


PublishedDep = Annotated[Published, Depends(published_board)]


async def current_board(published: PublishedDep) -> Leaderboard:
    return published.board


BoardDep = Annotated[Leaderboard, Depends(current_board)]


def _bearer(authorization: str | None, whose: str) -> str:
    """The token of an 'Authorization: Bearer <token>' header; the 401 names whose it must be."""
    if not authorization:
        raise HTTPException(
            401,
            detail=f"Missing token: send 'Authorization: Bearer <{whose}>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            detail=f"Malformed Authorization header: expected 'Bearer <{whose}>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def bearer_token(authorization: Annotated[str | None, Header()] = None) -> str:
    return _bearer(authorization, "team token")


def admin_bearer_token(authorization: Annotated[str | None, Header()] = None) -> str:
    return _bearer(authorization, "admin token, the value of ARENA_ADMIN_TOKEN")


TokenDep = Annotated[str, Depends(bearer_token)]


INVALID_TOKEN = "Invalid or revoked team token."


def current_team(session: SessionDep, token: TokenDep) -> Team:
    team = team_by_token(session=session, token=token)
    if team is None:
        raise HTTPException(401, detail=INVALID_TOKEN)
    return team


CurrentTeam = Annotated[Team, Depends(current_team)]


def team_id_of(token: str) -> int | None:
    """The live team holding ``token``, looked up in a session of its own, closed at once."""
    with new_session(write=False) as session:
        team = team_by_token(session=session, token=token)
        return None if team is None else team.id


def uploading_team(token: TokenDep) -> int:
    """The uploading team's id. Unlike ``CurrentTeam`` no session stays open for the request:
    an upload is checked for minutes, and no transaction may be open meanwhile."""
    team_id = team_id_of(token)
    if team_id is None:
        raise HTTPException(401, detail=INVALID_TOKEN)
    return team_id


UploaderDep = Annotated[int, Depends(uploading_team)]


def require_admin(token: Annotated[str, Depends(admin_bearer_token)], settings: SettingsDep) -> None:
    if not settings.admin_token:
        raise HTTPException(403, detail="Admin routes are disabled: ARENA_ADMIN_TOKEN is not set.")
    if not same_secret(token, settings.admin_token):
        raise HTTPException(403, detail="Invalid admin token.")


AdminDep = Annotated[None, Depends(require_admin)]


def owned_submission(session: Session, submission_id: int, team: Team) -> Submission:
    """The team's own submission, or 404 (another team's looks the same as a missing one)."""
    submission = get_submission(session=session, submission_id=submission_id)
    if submission is None or submission.team_id != team.id:
        raise HTTPException(404, detail=f"Submission {submission_id} not found.")
    return submission


def is_owner(submission: Submission, authorization: str | None) -> bool:
    """Whether an optional 'Bearer <token>' header is the submitting team's live token."""
    token = (authorization or "").partition(" ")[2].strip()
    team = submission.team
    return bool(token) and team.token_hash == hash_token(token) and not team.revoked
