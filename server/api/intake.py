"""Taking in an upload: validate → store → inspect → reserve quota → probe → queue.

Two rules hold on every path through here:

- **No lock while the file is handled.** No database transaction is open while the file is
  copied, inspected or probed (minutes at worst): the early quota check is one short read,
  reserving the quota is one short transaction, and each later step opens its own.
- **No leftovers.** Every refusal, whatever raised it (a ``CheckpointError``, but also a
  ``MemoryError``, ``RecursionError`` or ``AttributeError`` out of a broken file), goes
  through one cleanup path that discards the reservation (not charged) and deletes the
  stored file, and is answered with a 4xx and a reason, never a 5xx.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, BinaryIO, TypeVar

import anyio
from anyio.lowlevel import RunVar
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.architectures.catalog import CATALOG, NormalisationMode
from models.architectures.catalog import parse_triple as catalog_triple
from models.checkpoints.errors import CheckpointError
from models.checkpoints.inspection import inspect_checkpoint
from server.api.errors import FieldError
from server.api.probe import probe_checkpoint
from server.state import queue
from server.state.competition_spec import DEFAULT_SLUG, iso_utc
from server.state.competitions import accepts_uploads, get_competition
from server.state.config import Settings
from server.state.db import new_session, session_scope
from server.state.storage import StoredFile, UploadTooLarge, display_name, safe_suffix, store_upload
from server.state.submissions import discard_submission, reserve_submission
from server.state.tables import Competition, PhaseKind, Submission, utcnow
from server.state.teams import QuotaExceeded, check_quota

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Upload:
    """An upload form as it arrived: the file and the raw text of every field."""

    file: BinaryIO
    filename: str
    arch: str | None = None
    sigma: str | None = None
    mean: str | None = None
    std: str | None = None
    normalisation: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Destination:
    """Where an upload goes: its competition, the development phase its first evaluation runs
    in, the suite it runs, and the competition's quotas."""

    competition_id: int
    phase_id: int
    suite: str
    per_day: int
    max_active: int


def destination(session: Session, settings: Settings, slug: str | None, now: datetime) -> Destination:
    """The competition named by the form's ``competition`` field (the default one when
    absent): 422 if unknown, 409 with the development phase's dates if closed at ``now``."""
    competition = get_competition(session, slug or DEFAULT_SLUG)
    if competition is None:
        raise FieldError(422, f"Unknown competition {slug!r}.", "competition")
    development = next(p for p in competition.phases if p.kind == PhaseKind.DEVELOPMENT)
    open_now, message = accepts_uploads(competition, now)
    if not open_now:
        dates = {
            "phase": development.name,
            "starts_at": iso_utc(development.starts_at) if development.starts_at else None,
            "ends_at": iso_utc(development.ends_at) if development.ends_at else None,
        }
        raise FieldError(409, message, "competition", extra=dates)
    per_day, max_active = _quotas(competition, settings)
    return Destination(competition.id, development.id, competition.suite, per_day, max_active)


def _quotas(competition: Competition, settings: Settings) -> tuple[int, int]:
    """The competition's quotas; the default competition's are the settings' (it copies them
    at every start, and they are read here as they are now)."""
    if competition.slug == DEFAULT_SLUG:
        return settings.submissions_per_day, settings.max_active_per_team
    return competition.submissions_per_day, competition.max_active_per_team


@dataclass(frozen=True)
class Fields:
    """The form's fields, validated."""

    arch: str
    sigma: float | None
    mean: list[float] | None
    std: list[float] | None
    normalisation: str
    description: str


async def take_in(
    upload: Upload, *, team_id: int, settings: Settings, target: Destination | None = None
) -> int:
    """Run an upload through every check and queue its evaluation in ``target`` (the default
    competition when None); returns the submission id.

    Raises ``FieldError`` (4xx, with the field concerned) for every refusal. Each step runs
    in a thread of intake's own (``_work``, ``_probes``): uploads waiting for a probe wait in
    the event loop, not in the thread pool the other routes answer from.
    """
    fields = validate(upload, settings)
    if target is None:
        target = await _run(_default_destination, settings)
    await _run(_check_quota_early, team_id, target)
    stored = await _run(_store, upload, settings)
    submission_id: int | None = None
    try:
        if stored.size == 0:
            raise CheckpointError("The file is empty.")
        await _run(inspect_checkpoint, stored.path)
        submission_id, evaluation_id = await _run(_reserve, team_id, target, fields, upload.filename, stored)
        probe = await anyio.to_thread.run_sync(
            partial(
                probe_checkpoint,
                stored.path,
                arch=fields.arch,
                mean=fields.mean,
                std=fields.std,
                settings=settings,
            ),
            limiter=_limiter(_PROBES, PROBES_AT_ONCE),
        )
        if not probe.ok:
            raise CheckpointError(probe.message)
        if probe.arch and probe.arch != fields.arch:
            await _run(_set_arch, submission_id, probe.arch)
    except BaseException as error:
        with anyio.CancelScope(shield=True):
            await _run(_refuse, stored, submission_id)
        raise _as_refusal(error) from error
    await _run(_send, evaluation_id)
    assert submission_id is not None  # reserved above; every path that leaves it None raised
    return submission_id


# Probes at once (each a Python process with torch); more uploads wait in the event loop.
PROBES_AT_ONCE = 2
# Threads for the other steps: short database work, copying the file, the bounded audit.
WORK_AT_ONCE = 4
_PROBES: RunVar[anyio.CapacityLimiter] = RunVar("intake_probes")
_WORK: RunVar[anyio.CapacityLimiter] = RunVar("intake_work")


def _limiter(slot: RunVar[anyio.CapacityLimiter], capacity: int) -> anyio.CapacityLimiter:
    """One limiter per event loop (anyio keeps its own default one the same way)."""
    try:
        return slot.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(capacity)
        slot.set(limiter)
        return limiter


async def _run(function: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(function, *args, limiter=_limiter(_WORK, WORK_AT_ONCE))


def _set_arch(submission_id: int, arch: str) -> None:
    """The architecture ``auto`` resolved to."""
    with session_scope() as session:
        submission = session.get(Submission, submission_id)
        if submission is not None:
            submission.arch = arch


def _as_refusal(error: BaseException) -> BaseException:
    """The answer to a refused upload: a 4xx whatever the exception was."""
    if isinstance(error, FieldError):
        return error
    if isinstance(error, CheckpointError):
        return FieldError(422, str(error), "checkpoint")
    if isinstance(error, OperationalError):
        # The database, not the file: busy or unreachable. Nothing was kept; send it again.
        log.warning("upload refused, database unavailable: %s", error)
        return FieldError(429, "The platform is busy and could not take the upload; send it again shortly.")
    if not isinstance(error, Exception):
        return error  # KeyboardInterrupt, SystemExit: the file is gone, let the process stop
    log.warning("upload refused: %s while checking it", type(error).__name__, exc_info=error)
    return FieldError(
        422,
        f"The file could not be read as a checkpoint ({type(error).__name__} while checking "
        "it): it is broken or crafted.",
        "checkpoint",
    )


def _refuse(stored: StoredFile, submission_id: int | None) -> None:
    """The one cleanup path: give the quota back, then delete the stored file."""
    try:
        if submission_id is not None:
            with session_scope() as session:
                discard_submission(session=session, submission_id=submission_id)
    except Exception:  # noqa: BLE001 - the database is down: keep what the row refers to
        # The row stays ``validating``; the reconciler queues it later and the isolated
        # evaluation gives the verdict the probe could not record.
        log.exception("could not discard the reservation of submission %s", submission_id)
        return
    stored.path.unlink(missing_ok=True)


def _send(evaluation_id: int) -> None:
    """Queue the accepted upload's evaluation. If the broker fails, the row is committed
    already (``validating`` or ``queued``): the reconciler sends it later, so the upload stands."""
    try:
        with session_scope() as session:
            queue.enqueue(session, evaluation_id)
    except Exception:  # noqa: BLE001 - accepted; the reconciler will queue it
        log.exception("evaluation %s stored but not yet queued; the reconciler will", evaluation_id)


# --- steps --------------------------------------------------------------------------------


def _default_destination(settings: Settings) -> Destination:
    with new_session(write=False) as session:
        return destination(session, settings, None, utcnow())


def _check_quota_early(team_id: int, target: Destination) -> None:
    """Fail fast before reading the file: one short read, no lock kept.
    ``_reserve`` checks again, race-free."""
    try:
        with new_session(write=False) as session:
            check_quota(
                session=session,
                team_id=team_id,
                competition_id=target.competition_id,
                per_day=target.per_day,
                max_active=target.max_active,
            )
    except QuotaExceeded as error:
        raise FieldError(429, str(error)) from None
    except OperationalError as error:
        raise _as_refusal(error) from error


def _store(upload: Upload, settings: Settings) -> StoredFile:
    try:
        return store_upload(
            upload.file,
            folder=settings.upload_dir,
            max_bytes=int(settings.max_upload_mb * 1024 * 1024),
            suffix=safe_suffix(upload.filename),
        )
    except UploadTooLarge:
        raise FieldError(
            413, f"The file is larger than the limit of {settings.max_upload_mb:g} MiB.", "checkpoint"
        ) from None
    except OSError as error:
        log.warning("upload could not be stored: %s", error)
        raise FieldError(
            422, "The file could not be received completely; send it again.", "checkpoint"
        ) from None


def _reserve(
    team_id: int, target: Destination, fields: Fields, filename: str, stored: StoredFile
) -> tuple[int, int]:
    """One short transaction: the team's row lock, the quota check, the new rows; returns
    (submission id, its first evaluation's id)."""
    with new_session() as session:
        try:
            evaluation = reserve_submission(
                session=session,
                team_id=team_id,
                competition_id=target.competition_id,
                phase_id=target.phase_id,
                suite=target.suite,
                per_day=target.per_day,
                max_active=target.max_active,
                arch=fields.arch,
                sigma=fields.sigma,
                mean=fields.mean,
                std=fields.std,
                normalisation=fields.normalisation,
                description=fields.description,
                original_filename=display_name(filename),
                stored_name=stored.name,
                sha256=stored.sha256,
                size_bytes=stored.size,
            )
        except QuotaExceeded as error:
            raise FieldError(429, str(error)) from None
        return evaluation.submission_id, evaluation.id


# --- the form's fields --------------------------------------------------------------------


def validate(upload: Upload, settings: Settings) -> Fields:
    """Check every field before the file is touched (422 naming the field)."""
    fields = Fields(
        arch=parse_arch(upload.arch),
        sigma=parse_sigma(upload.sigma),
        mean=parse_triple(upload.mean, "mean"),
        std=parse_triple(upload.std, "std"),
        normalisation=parse_normalisation(upload.normalisation),
        description=check_description(upload.description, settings),
    )
    if not upload.filename:
        raise FieldError(
            422, "No checkpoint file: attach it as the multipart field 'checkpoint'.", "checkpoint"
        )
    return fields


def parse_normalisation(raw: str | None) -> str:
    """``auto`` (the evaluation checks the normalisation first) or ``as-declared``."""
    if raw is None or raw.strip() == "":
        return str(NormalisationMode.AUTO)
    try:
        return str(NormalisationMode(raw.strip()))
    except ValueError:
        raise FieldError(
            422,
            f"normalisation must be 'auto' (check it first) or 'as-declared' (keep mean/std as "
            f"given), got {raw[:40]!r}.",
            "normalisation",
        ) from None


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
    """``mean`` or ``std`` as the zoo's own parser reads it, refused with the form's field."""
    if raw is None or raw.strip() == "":
        return None
    try:
        values = catalog_triple(raw)
    except ValueError:
        raise FieldError(
            422, f"{field} must be three comma-separated numbers, e.g. 0.485,0.456,0.406.", field
        ) from None
    if field == "std" and min(values) <= 0:
        raise FieldError(422, "std values must be positive.", field)
    return list(values)


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


def check_description(raw: str | None, settings: Settings) -> str:
    text = raw or ""
    if len(text) > settings.max_description_chars:
        raise FieldError(
            422,
            f"description is {len(text)} characters long; at most "
            f"{settings.max_description_chars} are allowed.",
            "description",
        )
    if any(not ch.isprintable() and ch not in "\n\r\t" for ch in text):
        raise FieldError(422, "description contains control characters; use plain text.", "description")
    return text
