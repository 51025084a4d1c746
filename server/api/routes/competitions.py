"""Competitions: created by the admin, read by anyone.

The private evaluation set is never named to teams: a final phase's ``eval_set`` is null in
the answers unless the request carries the admin token.
"""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from server.api.deps import AdminDep, NowDep, SessionDep, SettingsDep, WriteSessionDep, is_admin
from server.api.errors import FieldError
from server.api.schemas import CompetitionList, CompetitionPublic, PhasePublic, RerunQueued, RerunRequest
from server.state import competitions, finals
from server.state.competition_spec import SLUG, CompetitionError, CompetitionExists, CompetitionSpec
from server.state.tables import Competition, PhaseKind, utcnow

router = APIRouter(prefix="/api/competitions", tags=["competitions"])

Slug = Annotated[str, PathParam(description="The competition's slug, e.g. default.")]
OptionalAuthorization = Annotated[
    str | None, Header(description="'Bearer <admin token>' also shows the private set's name.")
]


@router.post("", status_code=201, response_model=CompetitionPublic)
def create_competition(
    body: CompetitionSpec, session: WriteSessionDep, settings: SettingsDep, _admin: AdminDep
) -> CompetitionPublic:
    """Create a competition (admin token required). Its evaluation sets must already be in
    ARENA_HOME/sets/ (``arena competition create`` puts a bundle's there)."""
    try:
        competition = competitions.create_competition(session, body, settings.home, settings=settings)
    except CompetitionExists as error:
        raise FieldError(409, str(error), error.field) from None
    except CompetitionError as error:
        raise FieldError(422, str(error), error.field) from None
    return present_competition(competition, admin=True)


@router.get("", response_model=CompetitionList)
def list_competitions(
    session: SessionDep, settings: SettingsDep, authorization: OptionalAuthorization = None
) -> CompetitionList:
    """Every competition, oldest first."""
    admin = is_admin(authorization, settings)
    return CompetitionList(
        competitions=[
            present_competition(each, admin=admin) for each in competitions.list_competitions(session)
        ]
    )


@router.get("/{slug}", response_model=CompetitionPublic)
def read_competition(
    slug: Slug, session: SessionDep, settings: SettingsDep, authorization: OptionalAuthorization = None
) -> CompetitionPublic:
    """One competition, its phases and the phase open now."""
    # A slug that cannot exist is not looked up (nor are its odd characters sent to the database).
    found = competitions.get_competition(session, slug) if SLUG.fullmatch(slug) else None
    if found is None:
        raise HTTPException(404, detail=f"No competition {slug!r}.")
    return present_competition(found, admin=is_admin(authorization, settings))


@router.post("/{slug}/publish", response_model=CompetitionPublic)
def publish_competition(
    slug: Slug, session: WriteSessionDep, now: NowDep, _admin: AdminDep
) -> CompetitionPublic:
    """Publish the final results (admin token): sets ``published_at`` once, publishing again
    changes nothing; 409 before the development phase has ended."""
    found = _competition(session, slug)
    try:
        finals.publish(session, found, now)
    except finals.FinalsError as error:
        raise FieldError(409, str(error)) from None
    return present_competition(found, admin=True)


@router.post("/{slug}/rerun", response_model=RerunQueued)
def rerun_competition(
    slug: Slug, session: WriteSessionDep, _admin: AdminDep, body: RerunRequest | None = None
) -> RerunQueued:
    """Rejudge (admin token): queue a new evaluation of every submission whose latest result in
    the phase (every phase without ``phase``) ran an older version of the competition's
    suite, unless one is waiting or running already. Old results stay; boards rank only the
    current version's."""
    found = _competition(session, slug)
    phase = body.phase if body is not None else None
    try:
        queued = finals.rerun(session, found, phase)
    except finals.FinalsError as error:
        raise FieldError(404, str(error), "phase") from None
    return RerunQueued(
        slug=found.slug,
        suite=found.suite,
        suite_version=finals.current_suite_version(found.suite),
        queued=queued,
    )


def _competition(session: Session, slug: str) -> Competition:
    # A slug that cannot exist is not looked up (nor are its odd characters sent to the database).
    found = competitions.get_competition(session, slug) if SLUG.fullmatch(slug) else None
    if found is None:
        raise HTTPException(404, detail=f"No competition {slug!r}.")
    return found


def present_competition(competition: Competition, *, admin: bool) -> CompetitionPublic:
    now = utcnow()
    current = competitions.current_phase(competition, now)
    accepting, _ = competitions.accepts_uploads(competition, now)
    return CompetitionPublic(
        id=competition.id,
        slug=competition.slug,
        title=competition.title,
        description=competition.description,
        suite=competition.suite,
        score=competition.score,
        final_selections=competition.final_selections,
        reveal_at=competition.reveal_at,
        published_at=competition.published_at,
        submissions_per_day=competition.submissions_per_day,
        max_active_per_team=competition.max_active_per_team,
        created_at=competition.created_at,
        phases=[
            PhasePublic(
                id=phase.id,
                name=phase.name,
                kind=PhaseKind(phase.kind),
                eval_set=phase.eval_set if admin or phase.kind != PhaseKind.FINAL else None,
                starts_at=phase.starts_at,
                ends_at=phase.ends_at,
                position=phase.position,
            )
            for phase in competition.phases
        ],
        current_phase=current.name if current is not None else None,
        accepts_uploads=accepting,
    )
