"""Turning rows into the API's public shapes, hiding what only the owner may see."""

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.api.schemas import FinalEvaluationPublic, Progress, Quota, SubmissionPublic, WaitEstimate
from server.state import costs, estimates
from server.state.competition_spec import DEFAULT_SLUG
from server.state.competitions import get_competition
from server.state.config import Settings, parse_score
from server.state.scoring import score_of
from server.state.submissions import (
    development_evaluation,
    final_evaluation,
    queued_ahead,
    recent_runs,
    running_now,
)
from server.state.tables import Evaluation, Status, Submission, Team, utcnow
from server.state.teams import quota_usage
from server.state.visibility import evaluation_visible
from server.state.workers import live_workers

PUBLIC_FAILURE = "The evaluation failed; the submitting team sees the reason."


def present_submission(
    session: Session,
    submission: Submission,
    *,
    owner: bool,
    settings: Settings | None = None,
    now: datetime | None = None,
    admin: bool = False,
) -> SubmissionPublic:
    """The submission as its development-phase evaluation (its latest there) stands, with
    its final-phase evaluation where the viewer may see it at ``now``
    (``server.state.visibility``: the admin always; anyone once the results are revealed)."""
    from server.state.config import get_settings

    settings = settings or get_settings()
    evaluation = development_evaluation(session=session, submission_id=submission.id)
    assert evaluation is not None  # every submission is created with one
    results = evaluation.result.metrics if evaluation.result is not None else None
    error = evaluation.error
    if not owner and evaluation.status == Status.FAILED:
        error = PUBLIC_FAILURE
    elif not owner:
        error = None
    # The evaluations a queued one waits behind give both its place and its wait estimate.
    ahead = (
        queued_ahead(session=session, evaluation=evaluation) if evaluation.status == Status.QUEUED else None
    )
    waiting = evaluation.status in (Status.QUEUED, Status.RUNNING) and not live_workers(
        session=session, seen_within=3 * settings.worker_heartbeat_seconds
    )
    return SubmissionPublic(
        id=submission.id,
        team=submission.team.name,
        arch=submission.arch,
        sigma=submission.sigma,
        description=submission.description if owner else "",
        filename=submission.original_filename if owner else "",
        sha256=submission.sha256 if owner else "",
        suite=evaluation.suite,
        normalisation=submission.normalisation or "auto",
        normalisation_inferred=_inferred(results),
        status=evaluation.status,
        queue_position=None if ahead is None else len(ahead) + 1,
        progress=Progress(**evaluation.progress) if evaluation.progress else None,
        estimate=_estimate(session, evaluation, ahead, settings, waiting_for_worker=waiting),
        waiting_for_worker=waiting,
        results=results,
        score=score_of(results, settings.score_weights()) if results else None,
        error=error,
        hidden_reason=submission.hidden_reason,
        selected_for_final=owner and submission.final_selected_at is not None,
        attempts=evaluation.attempts,
        created_at=submission.created_at,
        started_at=evaluation.started_at,
        finished_at=evaluation.finished_at,
        final=_final(session, submission, owner=owner, now=now or utcnow(), admin=admin),
    )


def _final(
    session: Session, submission: Submission, *, owner: bool, now: datetime, admin: bool
) -> FinalEvaluationPublic | None:
    """The final-phase evaluation, or None: not selected, or not revealed to this viewer
    (then nothing of it shows: not its status, progress or timing)."""
    evaluation = final_evaluation(session=session, submission_id=submission.id)
    if evaluation is None or not evaluation_visible(evaluation, now, admin=admin):
        return None
    results = evaluation.result.metrics if evaluation.result is not None else None
    error = evaluation.error if owner or admin else None
    if error is None and evaluation.status == Status.FAILED:
        error = PUBLIC_FAILURE
    score = score_of(results, parse_score(evaluation.phase.competition.score)) if results else None
    return FinalEvaluationPublic(
        phase=evaluation.phase.name,
        status=evaluation.status,
        suite=evaluation.suite,
        suite_version=evaluation.suite_version,
        results=results,
        score=score,
        error=error,
    )


def _inferred(results: dict[str, Any] | None) -> bool | None:
    record = (results or {}).get("normalisation")
    return bool(record.get("inferred")) if isinstance(record, dict) else None


def _estimate(
    session: Session,
    evaluation: Evaluation,
    ahead: list[tuple[str, bool]] | None,
    settings: Settings,
    *,
    waiting_for_worker: bool,
) -> WaitEstimate | None:
    if evaluation.status not in (Status.QUEUED, Status.RUNNING):
        return None
    submission = evaluation.submission
    Kind = estimates.Kind
    kind = Kind(submission.arch, submission.sigma is not None)
    # Enough history for a median per kind among the recent runs of every kind.
    runs = recent_runs(session=session, suite=evaluation.suite, limit=10 * estimates.RECENT)
    running = [] if ahead is None else running_now(session=session)
    others = [Kind(arch, cert) for arch, cert in ahead or []]
    busy = [(Kind(arch, cert), elapsed) for arch, cert, elapsed in running]
    # The cost model's figures, for the kinds the history may lack.
    keys = {other: other.arch for other in [*others, *(k for k, _ in busy)]}
    keys[kind] = costs.throughput_key(submission.arch, submission.sha256)
    finished = [(Kind(arch, cert), seconds) for arch, cert, seconds in runs]
    history = estimates.History(
        finished,
        costs.modelled(
            session=session,
            suite=evaluation.suite,
            kinds=keys,
            limit=settings.eval_limit,
            runs=finished,
        ),
    )
    if waiting_for_worker:
        return estimates.without_worker(history=history, kind=kind)
    if ahead is not None:
        return estimates.for_queued(history=history, kind=kind, ahead=others, running=busy)
    if evaluation.status == Status.RUNNING and evaluation.started_at is not None:
        elapsed = (utcnow() - evaluation.started_at).total_seconds()
        return estimates.for_running(history=history, kind=kind, elapsed=elapsed)
    return None


def quota_of(session: Session, settings: Settings, team: Team) -> Quota:
    # The default competition's quota (the settings' figures).
    default = get_competition(session, DEFAULT_SLUG)
    competition_id = default.id if default is not None else None
    used, active = quota_usage(session=session, team_id=team.id, competition_id=competition_id)
    return Quota(
        per_day=settings.submissions_per_day,
        used_today=used,
        remaining_today=max(0, settings.submissions_per_day - used),
        active=active,
        max_active=settings.max_active_per_team,
    )
