"""Server-rendered pages: leaderboard, upload form, submission and team pages.

Everything a page shows is in its HTML; small scripts from ``/static`` add sorting, live
progress and the upload's progress bar. Nothing is loaded from another site.
"""

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from models.architectures.catalog import CATALOG, NORMALISATIONS
from server.api.deps import (
    NowDep,
    PublishedDep,
    SessionDep,
    SettingsDep,
    SubmissionId,
    is_owner,
)
from server.api.errors import FieldError
from server.api.presenters import present_submission, quota_of
from server.api.schemas import Leaderboard, SubmissionPublic
from server.state import finals
from server.state.competition_spec import DEFAULT_SLUG
from server.state.competitions import accepts_uploads, get_competition
from server.state.config import Settings
from server.state.db import new_session
from server.state.names import team_path
from server.state.submissions import get_submission, team_submissions
from server.state.tables import Result, Status, Submission
from server.state.teams import team_by_name
from server.web import charts
from server.web.badges import badges, distinct_badges
from worker.engine.protocol import (  # torch-free
    COLUMN_METRICS,
    HEADLINE_RADIUS,
    RADII,
    STAGE_LABELS,
    SUITES,
    NormalisationParams,
)

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)

KNOWN_SUITES = ("class", "robustbench")
#: The result rows of a submission page, in the order shown (one per metric).
METRIC_ROWS = {
    "natural": "Natural accuracy",
    "fgsm": "FGSM ℓ∞",
    "pgd_linf": "PGD ℓ∞",
    "pgd_l2": "PGD ℓ2",
    "autoattack": "AutoAttack",
    "smoothing": f"Certified, ℓ2 radius {HEADLINE_RADIUS:g}",
}
#: The leaderboard's metric column headers (one per stored metric, in the protocol's order).
COLUMN_HEADERS = {
    "natural": "Natural",
    "fgsm": "FGSM",
    "pgd_linf": "PGD ℓ∞",
    "pgd_l2": "PGD ℓ2",
    "smoothing": f"Certified r = {HEADLINE_RADIUS:g}",
}
BOARD_COLUMNS = {key: COLUMN_HEADERS[key] for key in COLUMN_METRICS}
PARAM_NAMES = {
    "eps": "ε",
    "step_size": "step",
    "sigma": "σ",
    "alpha": "α",
    "n0": "n₀",
    "random_start": "random start",
    "noise_draws": "noise draws",
    "targets": "target classes",
    "predict_n": "predict n",
    "predict_alpha": "predict α",
}
HIDDEN_PARAMS = {"batch_size", "threat"}
MAX_CURVES = 6
FORM_NORMALISATIONS = ("none", "cifar10", "cifar10-kuangliu", "imagenet")


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def interval(ci: Any) -> str:
    if not ci or len(ci) != 2:
        return "—"
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def param_value(key: str, value: Any, pixel_steps: bool = False) -> str:
    """One parameter for people; ℓ∞ budgets read as k/255, the way papers state them."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(param_value(key, item, pixel_steps) for item in value)
    if isinstance(value, float):
        steps = value * 255
        if pixel_steps and 0 < value < 1 and abs(steps - round(steps)) < 1e-6:
            return f"{round(steps)}/255"
        return f"{value:g}"
    return str(value)


def params(values: Any) -> list[tuple[str, str]]:
    """A metric's parameters as (name, value) pairs for people."""
    if not isinstance(values, dict):
        return []
    linf = values.get("threat", "linf") == "linf"
    return [
        (
            PARAM_NAMES.get(key, key.replace("_", " ")),
            param_value(key, value, key == "linf_eps" or (linf and key in ("eps", "step_size"))),
        )
        for key, value in values.items()
        if key not in HIDDEN_PARAMS and not isinstance(value, dict)
    ]


templates.env.filters.update(pct=pct, interval=interval, when=when, team_path=team_path)
templates.env.globals.update(stage_labels=STAGE_LABELS, distinct_badges=distinct_badges)


ERROR_TITLES = {404: "Not found", 422: "Cannot show this page", 403: "Not allowed", 409: "Not possible now"}


def error_page(request: Request, status_code: int, detail: str) -> HTMLResponse:
    """A refused page request, explained in the site's layout (the API answers JSON)."""
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": ERROR_TITLES.get(status_code, "Something went wrong"), "detail": detail},
        status_code=status_code,
    )


@router.get("/", response_class=HTMLResponse)
async def leaderboard_page(
    request: Request, published: PublishedDep, settings: SettingsDep, now: NowDep
) -> HTMLResponse:
    # The page changes only with its board (a new result, the only thing that adds a suite,
    # gives every board a new version): rendered once per board, then served as it is.
    # A competition's board keeps its competition and phase in the form and the downloads.
    scope = {
        key: request.query_params[key] for key in ("competition", "phase") if request.query_params.get(key)
    }
    rendering = "page" if not scope else "page?" + urlencode(scope)
    page = published.renderings.get(rendering)
    if page is None:
        page = await run_in_threadpool(_render_leaderboard, request, published.board, settings, scope)
        published.renderings[rendering] = page
    # The competitions list follows the clock: added per request (nothing while the default
    # competition is the only one).
    from server.web import competition_pages  # it renders with this module's templates

    listing = await run_in_threadpool(competition_pages.competition_list, now)
    return HTMLResponse(competition_pages.with_competition_list(page, listing))


def _render_leaderboard(
    request: Request, board: Leaderboard, settings: Settings, scope: dict[str, str] | None = None
) -> bytes:
    with new_session(write=False) as session:
        present = set(session.scalars(select(Result.suite).distinct()))
    suites = [*KNOWN_SUITES, *sorted(present - set(KNOWN_SUITES))]
    if settings.suite not in suites:
        suites.append(settings.suite)
    # A rendered template's body is always bytes (a memoryview only where one is passed in).
    return bytes(
        templates.TemplateResponse(
            request,
            "leaderboard.html",
            {
                "board": board,
                "suites": suites,
                "radii": RADII,
                "columns": BOARD_COLUMNS,
                "scope": scope or {},
                "suite_version": SUITES[board.suite].version if board.suite in SUITES else None,
            },
        ).body
    )


@router.get("/submit", response_class=HTMLResponse)
def submit_page(
    request: Request, settings: SettingsDep, session: SessionDep, now: NowDep, competition: str | None = None
) -> HTMLResponse:
    """The upload form, for the default competition or ``?competition=<slug>``; a closed
    competition's form says so (with its dates) before anything is uploaded."""
    contest = get_competition(session, competition or DEFAULT_SLUG)
    if contest is None:
        raise FieldError(404, f"Unknown competition {competition!r}.", "competition")
    open_now, message = accepts_uploads(contest, now)
    return templates.TemplateResponse(
        request,
        "submit.html",
        {
            "architectures": list(CATALOG.values()),
            "max_upload_mb": settings.max_upload_mb,
            "normalisations": [NORMALISATIONS[n] for n in FORM_NORMALISATIONS],
            "competition": None if contest.slug == DEFAULT_SLUG else contest,
            "closed": None if open_now else message,
            **_rule(settings),
        },
    )


def _rule(settings: Settings) -> dict[str, Any]:
    """The normalisation rule's figures for the form, from the server's suite."""
    suite = SUITES.get(settings.suite)
    params = suite.normalisation if suite is not None else NormalisationParams()
    return {
        "normalisation_images": params.images,
        "normalisation_alpha": f"{params.alpha:g}",
        "normalisation_gain": f"{100 * params.min_gain:g}",
    }


def _submission(session: Session, submission_id: int) -> Submission:
    submission = get_submission(session=session, submission_id=submission_id)
    if submission is None:
        raise FieldError(404, f"Submission {submission_id} not found.")
    return submission


def _outcome(
    session: Session, submission: Submission, view: SubmissionPublic, *, owner: bool = False
) -> dict[str, Any]:
    """What the page shows once a submission has stopped: results, charts, flags or reason."""
    results = view.results or {}
    metrics = [
        (key, label, results[key], params(results[key].get("params")))
        for key, label in METRIC_ROWS.items()
        if isinstance(results.get(key), dict)
    ]
    curves = None
    if isinstance(results.get("smoothing"), dict):
        curves = charts.radius_curves(_sigma_series(session, submission, view.suite, results["smoothing"]))
    return {
        "submission": view,
        "owner": owner,
        "results": results,
        "metrics": metrics,
        "bars": charts.attack_bars(results),
        "curves": curves,
        "flags": badges(results.get("flags") or []),
    }


def _sigma_series(
    session: Session, submission: Submission, suite: str, smoothing: dict[str, Any]
) -> list[tuple[str, dict[str, float], bool]]:
    """This submission's certified curve, and the team's best certified one per other σ."""
    sigma = submission.sigma or (smoothing.get("params") or {}).get("sigma") or 0.0
    series = [
        (
            f"σ = {sigma:g}, this submission (#{submission.id})",
            smoothing.get("certified") or {},
            True,
        )
    ]
    others = session.execute(
        select(Submission.id, Submission.sigma, Result.metrics["smoothing"])
        .join(Result, Result.submission_id == Submission.id)
        .where(
            Submission.team_id == submission.team_id,
            Submission.id != submission.id,
            Result.suite == suite,
            Result.smoothing.is_not(None),
            Submission.sigma.is_not(None),
            Submission.sigma != submission.sigma,
        )
        .order_by(Submission.created_at.desc())
        .limit(100)
    )
    best: dict[float, tuple[float, int, dict[str, float]]] = {}
    for other_id, other_sigma, other in others:
        if not isinstance(other, dict) or not other.get("certified"):
            continue
        quality = float(other.get("average_radius") or 0.0)  # the best per σ: largest radius
        if other_sigma not in best or quality > best[other_sigma][0]:
            best[other_sigma] = (quality, other_id, other["certified"])
    for other_sigma in sorted(best)[: MAX_CURVES - 1]:
        _, other_id, certified = best[other_sigma]
        series.append((f"σ = {other_sigma:g}, submission #{other_id}", certified, False))
    return series


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(
    request: Request, submission_id: SubmissionId, session: SessionDep, now: NowDep
) -> HTMLResponse:
    submission = _submission(session, submission_id)
    view = present_submission(session, submission, owner=False, now=now)
    return templates.TemplateResponse(request, "submission.html", _outcome(session, submission, view))


@router.get("/submissions/{submission_id}/outcome", response_class=HTMLResponse)
def submission_outcome(
    request: Request,
    submission_id: SubmissionId,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> HTMLResponse:
    """The results part of the submission page, fetched by its script when the status changes;
    with the owning team's token it includes the reason of a failure."""
    submission = _submission(session, submission_id)
    owner = is_owner(submission, authorization)
    view = present_submission(session, submission, owner=owner)
    return templates.TemplateResponse(
        request, "_outcome.html", _outcome(session, submission, view, owner=owner)
    )


@router.get("/teams/{name:path}", response_class=HTMLResponse)
def team_page(
    request: Request,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    final: int | None = None,
    selected: bool | None = None,
) -> HTMLResponse:
    """A team's submissions; while a competition's development phase is open, each eligible one
    has a form that selects it for the final phase (or withdraws it) with the team's token.
    ``final`` and ``selected`` name the change just made (the form redirects back here)."""
    # Team names are printable text (routes/teams.py): nothing else needs a database lookup.
    team = team_by_name(session=session, name=name) if name.isprintable() else None
    if team is None:
        raise FieldError(404, f"Team {name!r} not found.")
    rows = team_submissions(session=session, team_id=team.id)
    submissions = [present_submission(session, s, owner=False, settings=settings, now=now) for s in rows]
    changed = {"id": final, "selected": selected} if final is not None and selected is not None else None
    return templates.TemplateResponse(
        request,
        "team.html",
        {
            "team": team,
            "submissions": submissions,
            "quota": quota_of(session, settings, team),
            "selectable": _selectable(rows, submissions, now),
            "changed": changed,
        },
    )


def _selectable(rows: list[Submission], views: list[SubmissionPublic], now: datetime) -> dict[int, int]:
    """Submission id → its competition's final selection limit, for each submission a team
    may select for a final phase now (its competition's development phase open, the
    submission neither hidden nor failed nor cancelled)."""
    selectable = {}
    for row, view in zip(rows, views, strict=True):
        competition = row.competition
        if finals.selection_window_error(competition, now) is not None or view.hidden_reason:
            continue
        if view.status not in (Status.FAILED, Status.CANCELLED):
            selectable[row.id] = competition.final_selections
    return selectable
