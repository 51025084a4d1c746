"""Rows the server tests write directly: submissions with their evaluation and result."""

from typing import Any

from sqlalchemy.orm import Session

from server.state.competition_spec import DEFAULT_SLUG
from server.state.competitions import get_competition
from server.state.tables import Evaluation, Phase, PhaseKind, Result, Submission
from worker.engine.protocol import COLUMN_METRICS, SUITES


def default_target(session: Session) -> dict[str, int]:
    """``competition_id`` and ``phase_id`` (its development phase) of the default competition,
    as ``reserve_submission`` takes them."""
    competition = get_competition(session, DEFAULT_SLUG)
    assert competition is not None
    phase = next(p for p in competition.phases if p.kind == PhaseKind.DEVELOPMENT)
    return {"competition_id": competition.id, "phase_id": phase.id}


LIFECYCLE = {
    "status",
    "progress",
    "error",
    "attempts",
    "task_id",
    "lease_owner",
    "lease_expires",
    "queued_at",
    "started_at",
    "finished_at",
}


def add_evaluated(
    session: Session,
    *,
    team_id: int,
    suite: str,
    metrics: dict[str, Any] | None = None,
    phase_id: int | None = None,
    **fields: Any,
) -> Submission:
    """A submission with one evaluation (in the default competition's development phase
    unless ``phase_id``: then in that phase's competition), written directly: the lifecycle
    values among ``fields`` go to the evaluation, the rest to the submission; with
    ``metrics``, its result row too."""
    target = default_target(session)
    if phase_id is not None:
        target = {"competition_id": session.get(Phase, phase_id).competition_id, "phase_id": phase_id}
    lifecycle = {key: fields.pop(key) for key in list(fields) if key in LIFECYCLE}
    submission = Submission(team_id=team_id, competition_id=target["competition_id"], **fields)
    evaluation = Evaluation(
        submission=submission,
        phase_id=target["phase_id"],
        suite=suite,
        created_at=submission.created_at,
        **lifecycle,
    )
    session.add_all([submission, evaluation])
    session.flush()
    if metrics is not None:
        add_result(session, evaluation, metrics)
    return submission


def add_result(
    session: Session, evaluation: Evaluation, metrics: dict[str, Any], suite_version: str | None = None
) -> Result:
    """The result row of ``evaluation``, with the accuracies in ``metrics`` as its columns,
    computed under ``suite_version`` (by default the suite's current version, as the engine
    writes it)."""
    columns = {k: (metrics.get(k) or {}).get("accuracy") for k in COLUMN_METRICS}
    suite = metrics["suite"]["name"]
    if suite_version is None:
        suite_version = SUITES[suite].version if suite in SUITES else "1"
    evaluation.suite_version = suite_version
    result = Result(
        evaluation_id=evaluation.id,
        submission_id=evaluation.submission_id,
        suite=suite,
        suite_version=suite_version,
        metrics=metrics,
        **columns,
    )
    session.add(result)
    session.flush()
    return result
