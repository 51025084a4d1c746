"""The team page's final-selection form, for browsers without JavaScript.

With JavaScript the team page toggles a selection through the API
(``POST``/``DELETE /api/submissions/{id}/final``, ``static/team.js``); without, each toggle is
a plain form posting here with the team's token in the body, never in an address.
"""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from server.api.deps import NowDep, SubmissionId, WriteSessionDep
from server.state import finals
from server.state.names import team_path
from server.state.submissions import get_submission
from server.state.teams import team_by_token
from server.web.pages import error_page

router = APIRouter(include_in_schema=False)


@router.post("/submissions/{submission_id}/final", response_class=HTMLResponse, response_model=None)
def final_form(
    request: Request,
    submission_id: SubmissionId,
    session: WriteSessionDep,
    now: NowDep,
    token: Annotated[str, Form(max_length=200)] = "",
    final: Annotated[str, Form(max_length=16)] = "",
) -> HTMLResponse | RedirectResponse:
    """The team page's selection form without JavaScript: the token comes in the body (never
    in an address), ``final`` is ``select`` or ``unselect``; back to the team page on success,
    an error page saying why otherwise."""
    if final not in ("select", "unselect"):
        return error_page(request, 422, "Choose whether to select or unselect the submission.")
    team = team_by_token(session=session, token=token.strip()) if token.strip() else None
    if team is None:
        return error_page(request, 403, "Invalid or revoked team token: enter your team's token.")
    submission = get_submission(session=session, submission_id=submission_id)
    if submission is None or submission.team_id != team.id:
        return error_page(request, 404, f"Submission {submission_id} not found.")
    change = finals.select_final if final == "select" else finals.unselect_final
    try:
        selection = change(session, submission, now)
    except finals.FinalsError as error:
        return error_page(request, 409, str(error))
    selected = "true" if selection.final else "false"
    address = f"{team_path(team.name)}?final={submission_id}&selected={selected}"
    return RedirectResponse(address, status_code=303)
