"""The JSON shapes of the API, declared once and documented by OpenAPI."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class WaitEstimate(BaseModel):
    """When the results should come (server/estimates.py): a rough figure, not a promise."""

    typical_seconds: float | None = Field(
        None, description="Median duration of recent evaluations (null before the first)."
    )
    based_on: int = Field(0, description="How many recent evaluations that median comes from.")
    start_in_seconds: float | None = Field(
        None, description="Until a worker takes it up (queued submissions only)."
    )
    finish_in_seconds: float | None = Field(
        None, description="Until its results are in; null once it runs past the typical time."
    )
    summary: str = Field(description="The estimate in words, as the submission page shows it.")


class Quota(BaseModel):
    per_day: int
    used_today: int
    remaining_today: int
    active: int
    max_active: int


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
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


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


class Flag(BaseModel):
    """A warning the evaluation raised about a model (stochastic, gradient masking, ...)."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class LeaderboardRow(BaseModel):
    """One team's best submission. Accuracies are fractions in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    rank: int | None = Field(description="The team's rank; null for a baseline entry.")
    position: int = Field(description="Place in the table, baseline entries included.")
    team: str
    baseline: bool = Field(description="An organiser's reference model, not a team.")
    submission_id: int
    score: float = Field(description="The ranking figure of the board's track.")
    score_ci95: tuple[float, float] | None = None
    tied: bool = Field(False, description="Its score interval overlaps the row above's.")
    natural: float | None
    fgsm: float | None
    pgd_linf: float | None
    pgd_l2: float | None
    smoothing: float | None = Field(description="Certified accuracy at ℓ2 radius 0.5.")
    ci95: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="95% Clopper–Pearson interval of each accuracy."
    )
    sigma: float | None = None
    submissions: int
    submitted_at: datetime
    flags: list[Flag] = []


class Leaderboard(BaseModel):
    model_config = ConfigDict(frozen=True)

    suite: str
    track: str = "empirical"
    radius: float | None = Field(None, description="ℓ2 radius ranked by the certified track.")
    score_rule: str
    ties_rule: str = ""
    teams: int = 0
    rows: list[LeaderboardRow]
