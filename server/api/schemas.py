"""The JSON shapes of the API, declared once and documented by OpenAPI."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.state.tables import PhaseKind
from server.state.views import Flag, Leaderboard, LeaderboardRow, WaitEstimate

__all__ = ["Flag", "Leaderboard", "LeaderboardRow", "WaitEstimate"]  # served as the state layer returns them


class TeamCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    baseline: bool = Field(False, description="An organiser's reference entry, not a team.")


class TeamCreated(BaseModel):
    id: int
    name: str
    token: str = Field(description="Shown once; only its hash is stored.")


class Progress(BaseModel):
    stage: str
    done: int
    total: int
    stages: list[str] = []
    eta_seconds: float | None = None


class Quota(BaseModel):
    per_day: int
    used_today: int
    remaining_today: int
    active: int
    max_active: int


class FinalEvaluationPublic(BaseModel):
    """The submission's evaluation on the private set, shown once the final results are
    revealed (before, to the organiser only)."""

    phase: str = Field(description="The final phase's name.")
    status: str
    suite: str
    suite_version: str | None = Field(
        None, description="The suite version it ran under; null until it finishes."
    )
    results: dict[str, Any] | None = None
    score: float | None = Field(None, description="Under the competition's score rule.")
    error: str | None = None


class SubmissionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    team: str
    arch: str
    sigma: float | None
    description: str
    filename: str
    sha256: str
    suite: str
    normalisation: str = Field(
        "auto", description="'auto': checked before the attacks; 'as-declared': kept as given."
    )
    normalisation_inferred: bool | None = Field(
        None,
        description="True when the platform switched to another input normalisation than the "
        "architecture's default because it was clearly more accurate (the evidence is in "
        "results.normalisation); null before results.",
    )
    status: str
    queue_position: int | None = None
    progress: Progress | None = None
    estimate: WaitEstimate | None = None
    waiting_for_worker: bool = Field(
        False, description="Queued or running while no worker is alive: it starts when one is."
    )
    results: dict[str, Any] | None = None
    score: float | None = None
    error: str | None = None
    hidden_reason: str | None = Field(
        None,
        description="Why the organiser hid this submission from the boards (public); null when it counts.",
    )
    selected_for_final: bool = Field(
        False,
        description="Selected by its team for the competition's final phase (shown to the owning "
        "team only; false for anyone else).",
    )
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    final: FinalEvaluationPublic | None = Field(
        None,
        description="Its final-phase evaluation, once the final results are revealed; null "
        "before (for everyone but the organiser), and for a submission not selected.",
    )


class FinalSelection(BaseModel):
    id: int = Field(description="The submission's id.")
    final: bool = Field(description="Whether it is selected for the final phase now.")
    selected: int = Field(description="How many of the team's submissions in the competition are selected.")
    allowed: int = Field(description="The competition's limit of final selections per team.")


class RerunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: str | None = Field(None, max_length=64, description="The phase's name; every phase if absent.")


class RerunQueued(BaseModel):
    slug: str
    suite: str
    suite_version: str | None = Field(description="The suite's current version the reruns evaluate under.")
    queued: int = Field(
        description="Evaluations queued: submissions whose latest result ran an older version."
    )


class ModerationReason(BaseModel):
    reason: str = Field(description="Shown publicly: printable text on one line, at most 500 characters.")


class SubmissionModeration(BaseModel):
    id: int
    team: str
    hidden_reason: str | None = Field(description="null: the submission counts on the boards.")
    moderated_at: datetime | None = Field(description="UTC, the last hide or unhide.")
    changed: bool = Field(description="False when it already was in this state.")


class TeamModeration(BaseModel):
    id: int
    name: str
    disqualified_reason: str | None = Field(description="null: the team is ranked.")
    moderated_at: datetime | None = Field(description="UTC, the last disqualification or reinstatement.")
    changed: bool = Field(description="False when it already was in this state.")


class SubmissionList(BaseModel):
    submissions: list[SubmissionPublic]
    quota: Quota


class ArchitecturePublic(BaseModel):
    name: str
    description: str
    parameters: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stochastic: bool
    surrogate: str | None


class PhasePublic(BaseModel):
    id: int = Field(description="What evaluations in this phase refer to.")
    name: str
    kind: PhaseKind
    eval_set: str | None = Field(
        description="The set's file name; null for a final phase unless the admin token is sent."
    )
    starts_at: datetime | None = Field(
        description="UTC; null: open from the start (a final phase opens when development ends)."
    )
    ends_at: datetime | None = Field(description="UTC, exclusive; null: no end.")
    position: int


class CompetitionPublic(BaseModel):
    id: int
    slug: str
    title: str
    description: str = Field(description="Markdown.")
    suite: str
    score: str = Field(description="The score rule: metric:weight pairs, their weighted mean.")
    final_selections: int
    reveal_at: datetime | None = Field(description="UTC; null: revealed when the organiser publishes.")
    published_at: datetime | None
    submissions_per_day: int
    max_active_per_team: int
    created_at: datetime
    phases: list[PhasePublic]
    current_phase: str | None = Field(description="The name of the phase open now, if any.")
    accepts_uploads: bool = Field(description="Whether the development phase is open now.")


class CompetitionList(BaseModel):
    competitions: list[CompetitionPublic]
