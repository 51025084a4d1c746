"""Uploading a checkpoint and following its evaluation.

The upload itself is taken in by ``server/api/intake.py``; the team's token was already checked
before the body was read (``server/api/upload_gate.py``).
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, UploadFile
from starlette.concurrency import run_in_threadpool

from server.api.deps import (
    CurrentTeam,
    NowDep,
    SessionDep,
    SettingsDep,
    SubmissionId,
    UploaderDep,
    WriteSessionDep,
    is_admin,
    is_owner,
    owned_submission,
)
from server.api.errors import FieldError
from server.api.intake import Destination, Upload, destination, take_in
from server.api.presenters import present_submission, quota_of
from server.api.schemas import FinalSelection, SubmissionList, SubmissionPublic
from server.state import finals, lifecycle
from server.state.config import Settings
from server.state.db import new_session
from server.state.submissions import development_evaluation, get_submission, team_submissions

router = APIRouter(prefix="/api/submissions", tags=["submissions"])


@router.post("", status_code=202, response_model=SubmissionPublic)
async def create_submission(  # noqa: PLR0913 - one parameter per field of the multipart form
    settings: SettingsDep,
    team_id: UploaderDep,
    now: NowDep,
    checkpoint: Annotated[UploadFile | None, File(description="The checkpoint file.")] = None,
    arch: Annotated[str | None, Form(description="Zoo architecture name, or 'auto'.")] = None,
    sigma: Annotated[str | None, Form(description="Noise level σ for certification.")] = None,
    description: Annotated[str | None, Form()] = None,
    mean: Annotated[str | None, Form(description="Input normalisation mean, e.g. 0.5,0.5,0.5")] = None,
    std: Annotated[str | None, Form(description="Input normalisation std, e.g. 0.5,0.5,0.5")] = None,
    normalisation: Annotated[
        str | None,
        Form(
            description="'auto' (default): the evaluation first measures natural accuracy under "
            "each common normalisation and may switch an undeclared one or stop on a beaten "
            "declaration; 'as-declared': keep mean/std (or the architecture's default) as given."
        ),
    ] = None,
    competition: Annotated[
        str | None, Form(description="The competition's slug; the default competition if absent.")
    ] = None,
) -> SubmissionPublic:
    """Upload a checkpoint; it is checked, then queued for evaluation (202) in the
    competition's development phase (409, with its dates, while that phase is not open)."""
    if checkpoint is None:
        raise FieldError(
            422, "No checkpoint file: attach it as the multipart field 'checkpoint'.", "checkpoint"
        )
    target = await run_in_threadpool(_destination, settings, competition, now)
    upload = Upload(
        file=checkpoint.file,
        filename=checkpoint.filename or "",
        arch=arch,
        sigma=sigma,
        mean=mean,
        std=std,
        normalisation=normalisation,
        description=description,
    )
    submission_id = await take_in(upload, team_id=team_id, settings=settings, target=target)
    return await run_in_threadpool(_present_accepted, submission_id)


def _destination(settings: Settings, slug: str | None, now: datetime) -> Destination:
    with new_session(write=False) as session:
        return destination(session, settings, slug, now)


def _present_accepted(submission_id: int) -> SubmissionPublic:
    with new_session(write=False) as session:
        submission = get_submission(session=session, submission_id=submission_id)
        if submission is None:  # nothing deletes an accepted submission; never seen
            raise FieldError(404, f"Submission {submission_id} not found.")
        return present_submission(session, submission, owner=True)


@router.get("", response_model=SubmissionList)
def list_submissions(
    session: SessionDep, settings: SettingsDep, team: CurrentTeam, now: NowDep
) -> SubmissionList:
    """The calling team's own submissions, newest first, and its remaining quota; a final
    evaluation only once the final results are revealed."""
    return SubmissionList(
        submissions=[
            present_submission(session, s, owner=True, now=now)
            for s in team_submissions(session=session, team_id=team.id)
        ],
        quota=quota_of(session, settings, team),
    )


@router.get("/{submission_id}", response_model=SubmissionPublic)
def read_submission(
    submission_id: SubmissionId,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    authorization: Annotated[str | None, Header()] = None,
) -> SubmissionPublic:
    """Status, progress and results. Anyone may read the scores; the file name, description
    and error message are shown only with the owning team's token. The final-phase
    evaluation shows once the final results are revealed (before, with the admin token only)."""
    submission = get_submission(session=session, submission_id=submission_id)
    if submission is None:
        raise FieldError(404, f"Submission {submission_id} not found.")
    return present_submission(
        session,
        submission,
        owner=is_owner(submission, authorization),
        settings=settings,
        now=now,
        admin=is_admin(authorization, settings),
    )


@router.post("/{submission_id}/cancel", response_model=SubmissionPublic)
def cancel_submission(
    submission_id: SubmissionId, session: WriteSessionDep, team: CurrentTeam
) -> SubmissionPublic:
    """Cancel one of your own submissions that has not started running; it is not charged.
    (Its development evaluation is cancelled; the upload's charge goes with it.)"""
    submission = owned_submission(session, submission_id, team)
    evaluation = development_evaluation(session=session, submission_id=submission_id)
    if evaluation is None or not lifecycle.cancel_evaluation(session=session, evaluation_id=evaluation.id):
        status = evaluation.status if evaluation is not None else "missing"
        raise FieldError(409, f"Submission {submission_id} is {status}; only a queued one can be cancelled.")
    session.refresh(submission)
    session.refresh(evaluation)
    return present_submission(session, submission, owner=True)


@router.post("/{submission_id}/final", response_model=FinalSelection)
def select_final(
    submission_id: SubmissionId, session: WriteSessionDep, team: CurrentTeam, now: NowDep
) -> FinalSelection:
    """Select one of your own submissions for its competition's final phase (409 outside the
    development phase, past the competition's limit, or for a hidden, failed or cancelled
    submission); selecting it again changes nothing."""
    submission = owned_submission(session, submission_id, team)
    try:
        return selection_answer(finals.select_final(session, submission, now))
    except finals.FinalsError as error:
        raise FieldError(409, str(error)) from None


@router.delete("/{submission_id}/final", response_model=FinalSelection)
def unselect_final(
    submission_id: SubmissionId, session: WriteSessionDep, team: CurrentTeam, now: NowDep
) -> FinalSelection:
    """Withdraw one of your own submissions from the final phase (409 outside the development
    phase); withdrawing one not selected changes nothing."""
    submission = owned_submission(session, submission_id, team)
    try:
        return selection_answer(finals.unselect_final(session, submission, now))
    except finals.FinalsError as error:
        raise FieldError(409, str(error)) from None


def selection_answer(selection: finals.Selection) -> FinalSelection:
    return FinalSelection(
        id=selection.submission_id,
        final=selection.final,
        selected=selection.selected,
        allowed=selection.allowed,
    )
