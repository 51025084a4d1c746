"""Competition pages: the list of competitions and each competition's page.

A competition's page says what it is (its description, written in Markdown by the organiser),
how it is scored, and when: its phases on a timeline, the one open now, and the time left to
the next deadline. Everything is in the HTML in UTC, with the time left as of rendering;
``/static/competition.js`` adds the reader's local time and a countdown that ticks.

The clock is the ``clock`` dependency, so tests render any moment without waiting.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session

from server.api.deps import NowDep, SessionDep
from server.api.errors import FieldError
from server.state import competitions, leaderboard
from server.state.competition_spec import DEFAULT_SLUG, SLUG, iso_utc
from server.state.competitions import phase_window
from server.state.config import parse_score
from server.state.db import new_session
from server.state.scoring import describe_rule
from server.state.tables import Competition, Phase, PhaseKind
from server.state.views import Leaderboard
from server.state.visibility import final_revealed
from server.web.pages import templates, when

router = APIRouter(include_in_schema=False)

# CommonMark without raw HTML: a description's <script> or <img onerror> is shown as text.
# Images are off too (nothing is loaded from another site); links keep markdown-it's own
# check, which refuses javascript:, vbscript:, file: and data: addresses.
MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable("image")


def _link_open(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    """Links in a description are the organiser's: followed, but given no referrer or opener."""
    tokens[index].attrSet("rel", "nofollow noopener noreferrer")
    return str(renderer.renderToken(tokens, index, options, env))


MARKDOWN.add_render_rule("link_open", _link_open)


def render_markdown(text: str) -> Markup:
    """A description as safe HTML: markdown-it escapes everything that is not Markdown. Its
    headings move one level down, under the page's own title (# reads as h2)."""
    tokens = MARKDOWN.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1:]) + 1)}"
    html = MARKDOWN.renderer.render(tokens, MARKDOWN.options, {})
    return Markup(html)  # noqa: S704 (escaped by markdown-it: raw HTML is off)


def time_left(delta: timedelta) -> str:
    """``3 days 4 hours``: the two largest units of a time to come, as words."""
    seconds = max(0, int(delta.total_seconds()))
    units = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))
    parts: list[str] = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
        if len(parts) == 2:
            break
    parts = [part for part in parts if not part.startswith("0 ")] or ["less than a second"]
    return " ".join(parts)


@dataclass(frozen=True)
class Step:
    """One phase on the timeline: its dates (None: no bound) and whether it is open now."""

    name: str
    kind: str
    starts: datetime | None
    ends: datetime | None
    state: str  # "open", "upcoming", "closed" or "never"
    starts_with_development_end: bool


@dataclass(frozen=True)
class Deadline:
    """The next moment that changes what teams may do, and the time left to it."""

    label: str  # "Development closes"
    at: datetime
    left: str


@dataclass(frozen=True)
class CompetitionView:
    """What the pages show of a competition at one moment."""

    competition: Competition
    steps: list[Step]
    status: str
    open_phase: str | None
    deadline: Deadline | None
    results: str


def _state(window: tuple[datetime | None, datetime | None] | None, now: datetime) -> str:
    if window is None:
        return "never"
    start, end = window
    if start is not None and now < start:
        return "upcoming"
    if end is not None and now >= end:
        return "closed"
    return "open"


def _development(competition: Competition) -> Phase | None:
    return next((p for p in competition.phases if p.kind == PhaseKind.DEVELOPMENT), None)


def _final(competition: Competition) -> Phase | None:
    return next((p for p in competition.phases if p.kind == PhaseKind.FINAL), None)


def view_of(competition: Competition, now: datetime) -> CompetitionView:
    """The timeline, the phase open now, the next deadline and how results are revealed."""
    steps = []
    for phase in competition.phases:
        window = phase_window(competition, phase)
        start, end = window if window is not None else (None, None)
        steps.append(
            Step(
                name=phase.name,
                kind=str(phase.kind),
                starts=start,
                ends=end,
                state=_state(window, now),
                starts_with_development_end=phase.kind == PhaseKind.FINAL,
            )
        )
    current = competitions.current_phase(competition, now)
    development, final = _development(competition), _final(competition)
    deadline = None
    if development is not None and development.starts_at is not None and now < development.starts_at:
        status = f"Not started: the {development.name} phase opens at {when(development.starts_at)}."
        deadline = Deadline(
            f"{development.name} opens", development.starts_at, time_left(development.starts_at - now)
        )
    elif current is not None and current is development:
        if development.ends_at is None:
            status = f"The {development.name} phase is open, with no end date."
        else:
            status = f"The {development.name} phase is open until {when(development.ends_at)}."
            deadline = Deadline(
                f"{development.name} closes", development.ends_at, time_left(development.ends_at - now)
            )
    elif current is not None:
        status = f"The {current.name} phase is open: each team's final selections are evaluated."
    else:
        status = "Closed."
    if competition.published_at is not None:
        results = f"Final results were published at {when(competition.published_at)}."
    elif competition.reveal_at is not None:
        results = f"Final results revealed at {when(competition.reveal_at)}."
        if deadline is None and now < competition.reveal_at:
            left = time_left(competition.reveal_at - now)
            deadline = Deadline("Results revealed", competition.reveal_at, left)
    elif final is not None:
        results = "Final results revealed when the organiser publishes them."
    else:
        results = "Results appear on the leaderboard as each evaluation finishes."
    return CompetitionView(
        competition=competition,
        steps=steps,
        status=status,
        open_phase=current.name if current is not None else None,
        deadline=deadline,
        results=results,
    )


def _views(session: Session, now: datetime) -> list[CompetitionView]:
    return [view_of(each, now) for each in competitions.list_competitions(session)]


templates.env.filters.update(iso_utc=iso_utc)


@router.get("/competitions", response_class=HTMLResponse)
def competitions_page(request: Request, session: SessionDep, now: NowDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "competitions.html", {"views": _views(session, now), "default_slug": DEFAULT_SLUG}
    )


@router.get("/competitions/{slug}", response_class=HTMLResponse)
def competition_page(request: Request, slug: str, session: SessionDep, now: NowDep) -> HTMLResponse:
    # A slug that cannot exist is not looked up (nor are its odd characters sent to the database).
    found = competitions.get_competition(session, slug) if SLUG.fullmatch(slug) else None
    if found is None:
        raise FieldError(404, f"No competition {slug!r}.")
    view = view_of(found, now)
    return templates.TemplateResponse(
        request,
        "competition.html",
        {
            "view": view,
            "final_board": final_board(session, found, now),
            "competition": found,
            "description": render_markdown(found.description),
            "score_rule": describe_rule(parse_score(found.score)),
            "default_slug": DEFAULT_SLUG,
        },
    )


def final_board(session: Session, competition: Competition, now: datetime) -> Leaderboard | None:
    """The competition's final board with its shake-up, once its results are revealed (the
    page shows it to everyone then, and nothing of it before); None without a final phase."""
    development, final = _development(competition), _final(competition)
    if development is None or final is None or not final_revealed(competition, now):
        return None
    return leaderboard.published(
        session=session,
        suite=competition.suite,
        weights=parse_score(competition.score),
        phase_id=final.id,
        public_phase_id=development.id,
    ).board


def competition_list(now: datetime) -> bytes:
    """The competitions list the leaderboard shows above its board, or nothing while the
    default competition is the only one (the page is then exactly as it always was)."""
    with new_session(write=False) as session:
        views = _views(session, now)
        if len(views) <= 1:
            return b""
        listing = templates.get_template("_competition_list.html")
        return listing.render(views=views, default_slug=DEFAULT_SLUG, with_script=True).encode()


HEADING_END = b"</h1>\n"


def with_competition_list(page: bytes, listing: bytes) -> bytes:
    """The leaderboard page with the competitions list under its heading. The page itself is
    rendered once per board and kept; the list follows the clock, so it is added per request."""
    if not listing:
        return page
    head, found, rest = page.partition(HEADING_END)
    return head + found + listing + rest if found else page
