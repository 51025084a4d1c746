"""Uploading a checkpoint and following its evaluation.

Upload path: validate the form → stream the file to disk → inspect it without unpickling →
reserve a row within the team's quota → probe the model in a child process → queue the id.
"""

import math
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, UploadFile
from sqlalchemy.orm import Session

from models.catalog import CATALOG, NormalisationMode
from models.errors import CheckpointError
from models.inspection import inspect_checkpoint
from server import crud, queue
from server.config import Settings
from server.deps import (
    CurrentTeam,
    SessionDep,
    SettingsDep,
    SubmissionId,
    WriteSessionDep,
    is_owner,
    owned_submission,
)
from server.errors import FieldError
from server.presenters import present_submission, quota_of
from server.probe import probe_checkpoint
from server.schemas import SubmissionList, SubmissionPublic
from server.storage import UploadTooLarge, display_name, safe_suffix, store_upload
from server.tables import Submission, Team

router = APIRouter(prefix="/api/submissions", tags=["submissions"])


def parse_sigma(raw: str | None) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        sigma = float(raw)
    except ValueError:
        raise FieldError(422, f"sigma must be a number, got {raw[:40]!r}.", "sigma") from None
    if not math.isfinite(sigma) or sigma <= 0:
        raise FieldError(422, f"sigma must be a positive number, got {raw[:40]!r}.", "sigma")
    if sigma > 10:
        raise FieldError(422, "sigma must be at most 10 (pixel values lie in [0, 1]).", "sigma")
    return sigma


def parse_triple(raw: str | None, field: str) -> list[float] | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        values = [float(part) for part in raw.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise FieldError(
            422, f"{field} must be three comma-separated numbers, e.g. 0.485,0.456,0.406.", field
        )
    if field == "std" and min(values) <= 0:
        raise FieldError(422, "std values must be positive.", field)
    return values


def parse_normalisation(raw: str | None) -> str:
    if raw is None or raw.strip() == "":
        return NormalisationMode.AUTO
    try:
        return NormalisationMode(raw.strip())
    except ValueError:
        raise FieldError(
            422,
            f"normalisation must be 'auto' (check it first) or 'as-declared' (keep mean/std as "
            f"given), got {raw[:40]!r}.",
            "normalisation",
        ) from None


def parse_arch(raw: str | None) -> str:
    if raw is None or raw.strip() == "":
        raise FieldError(422, "Choose an architecture (arch), or 'auto' to detect it.", "arch")
    arch = raw.strip()
    if arch != "auto" and arch not in CATALOG:
        raise FieldError(
            422,
            f"Unknown architecture {arch[:60]!r}. Known: {', '.join(CATALOG)}, or 'auto'.",
            "arch",
        )
    return arch


def _check_description(raw: str | None, settings: Settings) -> str:
    text = raw or ""
    if len(text) > settings.max_description_chars:
        raise FieldError(
            422,
            f"description is {len(text)} characters long; at most "
            f"{settings.max_description_chars} are allowed.",
            "description",
        )
    if any(not ch.isprintable() and ch not in "\n\r\t" for ch in text):
        raise FieldError(
            422, "description contains control characters; use plain text.", "description"
        )
    return text


@router.post("", status_code=202, response_model=SubmissionPublic)
def create_submission(
    session: WriteSessionDep,
    settings: SettingsDep,
    team: CurrentTeam,
    checkpoint: Annotated[UploadFile | None, File(description="The checkpoint file.")] = None,
    arch: Annotated[str | None, Form(description="Zoo architecture name, or 'auto'.")] = None,
    sigma: Annotated[str | None, Form(description="Noise level σ for certification.")] = None,
    description: Annotated[str | None, Form()] = None,
    mean: Annotated[str | None, Form(description="Input normalisation mean, e.g. 0.5,0.5,0.5")] = None,
    std: Annotated[str | None, Form(description="Input normalisation std, e.g. 0.5,0.5,0.5")] = None,
    normalisation: Annotated[str | None, Form(
        description="'auto' (default): the evaluation first measures natural accuracy under "
        "each common normalisation and may switch an undeclared one or stop on a beaten "
        "declaration; 'as-declared': keep mean/std (or the architecture's default) as given."
    )] = None,
) -> SubmissionPublic:
    """Upload a checkpoint; it is checked, then queued for evaluation (202)."""
    arch_name = parse_arch(arch)
    sigma_value = parse_sigma(sigma)
    mean_values, std_values = parse_triple(mean, "mean"), parse_triple(std, "std")
    mode = parse_normalisation(normalisation)
    text = _check_description(description, settings)
    if checkpoint is None or not checkpoint.filename:
        raise FieldError(
            422, "No checkpoint file: attach it as the multipart field 'checkpoint'.", "checkpoint"
        )
    try:  # fail fast before reading the file; reserve_submission checks again, race-free
        crud.check_quota(
            session=session,
            team_id=team.id,
            per_day=settings.submissions_per_day,
            max_active=settings.max_active_per_team,
        )
    except crud.QuotaExceeded as error:
        raise FieldError(429, str(error)) from None

    max_bytes = int(settings.max_upload_mb * 1024 * 1024)
    try:
        stored = store_upload(
            checkpoint.file,
            folder=settings.upload_dir,
            max_bytes=max_bytes,
            suffix=safe_suffix(checkpoint.filename),
        )
    except UploadTooLarge:
        raise FieldError(
            413, f"The file is larger than the limit of {settings.max_upload_mb:g} MiB.", "checkpoint"
        ) from None
    try:
        if stored.size == 0:
            raise CheckpointError("The file is empty.")
        inspect_checkpoint(stored.path)
    except CheckpointError as error:
        stored.path.unlink(missing_ok=True)
        raise FieldError(422, str(error), "checkpoint") from None

    submission = _reserve(
        session,
        settings,
        team,
        arch=arch_name,
        sigma=sigma_value,
        mean=mean_values,
        std=std_values,
        normalisation=str(mode),
        description=text,
        original_filename=display_name(checkpoint.filename),
        stored_name=stored.name,
        sha256=stored.sha256,
        size_bytes=stored.size,
        suite=settings.suite,
    )
    probe = probe_checkpoint(
        stored.path, arch=arch_name, mean=mean_values, std=std_values, settings=settings
    )
    if not probe.ok:
        crud.discard_submission(session=session, submission_id=submission.id)
        stored.path.unlink(missing_ok=True)
        raise FieldError(422, probe.message, "checkpoint")
    if probe.arch and probe.arch != submission.arch:
        submission.arch = probe.arch
        session.commit()
    queue.enqueue(session, submission.id)
    return present_submission(session, submission, owner=True)


def _reserve(session: Session, settings: Settings, team: Team, **fields: Any) -> Submission:
    try:
        return crud.reserve_submission(
            session=session,
            team_id=team.id,
            per_day=settings.submissions_per_day,
            max_active=settings.max_active_per_team,
            **fields,
        )
    except crud.QuotaExceeded as error:
        raise FieldError(429, str(error)) from None


@router.get("", response_model=SubmissionList)
def list_submissions(session: SessionDep, settings: SettingsDep, team: CurrentTeam) -> SubmissionList:
    """The calling team's own submissions, newest first, and its remaining quota."""
    return SubmissionList(
        submissions=[
            present_submission(session, s, owner=True)
            for s in crud.team_submissions(session=session, team_id=team.id)
        ],
        quota=quota_of(session, settings, team),
    )


@router.get("/{submission_id}", response_model=SubmissionPublic)
def read_submission(
    submission_id: SubmissionId,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> SubmissionPublic:
    """Status, progress and results. Anyone may read the scores; the file name, description
    and error message are shown only with the owning team's token."""
    submission = crud.get_submission(session=session, submission_id=submission_id)
    if submission is None:
        raise FieldError(404, f"Submission {submission_id} not found.")
    return present_submission(session, submission, owner=is_owner(submission, authorization))


@router.post("/{submission_id}/cancel", response_model=SubmissionPublic)
def cancel_submission(
    submission_id: SubmissionId, session: WriteSessionDep, team: CurrentTeam
) -> SubmissionPublic:
    """Cancel one of your own submissions that has not started running; it is not charged."""
    submission = owned_submission(session, submission_id, team)
    if not crud.cancel_submission(session=session, submission_id=submission_id):
        raise FieldError(
            409,
            f"Submission {submission_id} is {submission.status}; only a queued one can be "
            "cancelled.",
        )
    session.refresh(submission)
    return present_submission(session, submission, owner=True)
