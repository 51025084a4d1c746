"""Server-rendered pages: leaderboard, upload form, submission and team pages."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from models.catalog import CATALOG
from server import crud, leaderboard
from server.deps import SessionDep, SettingsDep, SubmissionId
from server.errors import FieldError
from server.presenters import present_submission, quota_of

templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def leaderboard_page(
    request: Request, session: SessionDep, settings: SettingsDep, suite: str | None = None
) -> HTMLResponse:
    board = leaderboard.leaderboard(
        session=session, suite=suite or settings.suite, weights=settings.score_weights()
    )
    return templates.TemplateResponse(request, "leaderboard.html", {"board": board})


@router.get("/submit", response_class=HTMLResponse)
def submit_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "submit.html",
        {"architectures": list(CATALOG.values()), "max_upload_mb": settings.max_upload_mb},
    )


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(request: Request, submission_id: SubmissionId, session: SessionDep) -> HTMLResponse:
    submission = crud.get_submission(session=session, submission_id=submission_id)
    if submission is None:
        raise FieldError(404, f"Submission {submission_id} not found.")
    view = present_submission(session, submission, owner=False)
    return templates.TemplateResponse(request, "submission.html", {"submission": view})


@router.get("/teams/{name}", response_class=HTMLResponse)
def team_page(request: Request, name: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    team = crud.team_by_name(session=session, name=name)
    if team is None:
        raise FieldError(404, f"Team {name!r} not found.")
    submissions = [
        present_submission(session, s, owner=False)
        for s in crud.team_submissions(session=session, team_id=team.id)
    ]
    return templates.TemplateResponse(
        request,
        "team.html",
        {"team": team, "submissions": submissions, "quota": quota_of(session, settings, team)},
    )
