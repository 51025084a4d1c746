"""Competitions as first-class objects: storage and phase clock.

A competition has one development phase (uploads ranked on a public evaluation set, between
two dates) and at most one final phase (from the development's end: the teams' final
selections evaluated on a private set). One definition, ``CompetitionSpec``
(``server.state.competition_spec``), is read from a YAML bundle (``arena competition create``)
and from ``POST /api/competitions`` alike.

Times are timezone-aware and stored in UTC; a time without a UTC offset is refused rather
than guessed. A phase is open from its start, inclusive, to its end, exclusive: at exactly
``ends_at`` the development phase is closed and the final phase has begun.

The competition ``default`` is today's implicit contest: created at the first start, always
open, it follows the settings (ARENA_SUITE, ARENA_SCORE, the quotas, the evaluation set) on
each start.
"""

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.state.competition_spec import (
    DEFAULT_PHASE,
    DEFAULT_SLUG,
    DEFAULT_TITLE,
    CompetitionError,
    CompetitionExists,
    CompetitionSpec,
    iso_utc,
    sets_dir,
)
from server.state.config import Settings, get_settings
from server.state.db import engine_for
from server.state.tables import Competition, Phase, PhaseKind


def create_competition(
    session: Session, spec: CompetitionSpec, home: Path, *, settings: Settings | None = None
) -> Competition:
    """Store a validated definition and commit. Its sets must already be in ``home``/sets/;
    the quotas it leaves out are the settings' values now.

    Raises CompetitionExists for a taken slug (also when another writer took it meanwhile)
    and CompetitionError for a missing set.
    """
    settings = settings or get_settings()
    if get_competition(session, spec.slug) is not None:
        raise _exists(spec.slug)
    folder = sets_dir(home)
    for index, phase in enumerate(spec.phases):
        if not (folder / phase.eval_set).is_file():
            raise CompetitionError(
                f"phases.{index}.eval_set: {phase.eval_set!r} is not in {folder}; put the file "
                "there first (arena competition create copies a bundle's sets there)",
                field="eval_set",
            )
    ordered = [spec.development] + ([spec.final] if spec.final is not None else [])
    competition = Competition(
        slug=spec.slug,
        title=spec.title,
        description=spec.description,
        suite=spec.suite,
        score=spec.score,
        final_selections=spec.final_selections,
        reveal_at=spec.reveal_at,
        submissions_per_day=spec.submissions_per_day or settings.submissions_per_day,
        max_active_per_team=spec.max_active_per_team or settings.max_active_per_team,
        phases=[
            Phase(
                name=phase.name,
                kind=phase.kind,
                eval_set=phase.eval_set,
                starts_at=phase.starts_at,
                ends_at=phase.ends_at,
                position=position,
            )
            for position, phase in enumerate(ordered)
        ],
    )
    session.add(competition)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _exists(spec.slug) from None
    return competition


def _exists(slug: str) -> CompetitionExists:
    return CompetitionExists(f"A competition with slug {slug!r} already exists.", field="slug")


def list_competitions(session: Session) -> Sequence[Competition]:
    """Every competition, oldest first (the default one first of all)."""
    return session.scalars(select(Competition).order_by(Competition.id)).all()


def get_competition(session: Session, slug: str) -> Competition | None:
    return session.scalar(select(Competition).where(Competition.slug == slug))


# --- the phase clock -------------------------------------------------------------------------


def phase_window(competition: Competition, phase: Phase) -> tuple[datetime | None, datetime | None] | None:
    """When ``phase`` is open: [start, end), None for no bound; None if it never opens. The
    final phase opens when the development phase ends (never, if that has no end) and stays
    open."""
    if phase.kind != PhaseKind.FINAL:
        return phase.starts_at, phase.ends_at
    development = _development(competition)
    if development is None or development.ends_at is None:
        return None
    return development.ends_at, None


def current_phase(competition: Competition, now: datetime) -> Phase | None:
    """The phase open at ``now`` (start inclusive, end exclusive), or None: before the start,
    or after a development phase with no final phase behind it. The clock is a parameter so
    tests and later steps can move it without waiting."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    for phase in competition.phases:
        window = phase_window(competition, phase)
        if window is None:
            continue
        start, end = window
        if (start is None or start <= now) and (end is None or now < end):
            return phase
    return None


def accepts_uploads(competition: Competition, now: datetime) -> tuple[bool, str]:
    """Whether teams may upload at ``now`` (during the development phase only), and a message
    saying so with the phase's dates in UTC."""
    development = _development(competition)
    if development is None:
        return False, f"The competition {competition.slug!r} has no development phase."
    start, end = development.starts_at, development.ends_at
    dates = _dates(start, end)
    if current_phase(competition, now) is development:
        until = f" until {iso_utc(end)}" if end is not None else ""
        return True, f"Uploads are open{until}: the {development.name} phase runs {dates}."
    if start is not None and now < start:
        return False, f"Uploads open at {iso_utc(start)}: the {development.name} phase runs {dates}."
    if end is None:  # not reached: a phase without an end stays open once started
        return False, f"Uploads are closed: the {development.name} phase runs {dates}."
    closed = f"Uploads closed at {iso_utc(end)}: the {development.name} phase ran {dates}"
    final = next((phase for phase in competition.phases if phase.kind == PhaseKind.FINAL), None)
    if final is not None:
        return False, f"{closed}; the {final.name} phase evaluates each team's final selections."
    return False, f"{closed}."


def _dates(start: datetime | None, end: datetime | None) -> str:
    if start is None and end is None:
        return "without an end"
    if start is None:
        return f"until {iso_utc(end)}" if end is not None else ""
    if end is None:
        return f"from {iso_utc(start)} on"
    return f"from {iso_utc(start)} to {iso_utc(end)} (UTC)"


def _development(competition: Competition) -> Phase | None:
    return next((phase for phase in competition.phases if phase.kind == PhaseKind.DEVELOPMENT), None)


def eval_set_path(competition: Competition, phase: Phase, settings: Settings) -> Path:
    """The file a phase evaluates on: ARENA_HOME/sets/<eval_set>, except the default
    competition's, which is the server's own set (ARENA_EVAL_SET, else the built one)."""
    if competition.slug == DEFAULT_SLUG and phase.kind == PhaseKind.DEVELOPMENT:
        return settings.eval_set or settings.default_eval_set
    return sets_dir(settings.home) / phase.eval_set


# --- the default competition -----------------------------------------------------------------


def ensure_default_competition(session: Session, settings: Settings) -> Competition:
    """Create the competition ``default`` if absent, else bring it in step with the settings
    (suite, score rule, quotas, evaluation set's name), and commit.

    It is today's contest: one development phase without dates (always open), no final phase.
    IntegrityError if another process created it meanwhile (try again: it is there then).
    """
    set_name = (settings.eval_set or settings.default_eval_set).name
    competition = get_competition(session, DEFAULT_SLUG)
    if competition is None:
        competition = Competition(
            slug=DEFAULT_SLUG,
            title=DEFAULT_TITLE,
            description="",
            final_selections=2,
            phases=[Phase(name=DEFAULT_PHASE, kind=PhaseKind.DEVELOPMENT, eval_set=set_name, position=0)],
        )
        session.add(competition)
    competition.suite = settings.suite
    competition.score = settings.score
    competition.submissions_per_day = settings.submissions_per_day
    competition.max_active_per_team = settings.max_active_per_team
    for phase in competition.phases:
        if phase.kind == PhaseKind.DEVELOPMENT:
            phase.eval_set = set_name
    session.commit()
    return competition


def ensure_default_at_start(url: str | None = None) -> None:
    """``ensure_default_competition`` in a session of its own, on the settings' database or
    ``url``; run after the migrations at every start."""
    settings = get_settings()
    engine = engine_for(url or settings.resolved_database_url)
    for attempt in range(2):
        with Session(engine, expire_on_commit=False) as session:
            try:
                ensure_default_competition(session, settings)
                return
            except IntegrityError:
                session.rollback()
                if attempt:
                    raise
