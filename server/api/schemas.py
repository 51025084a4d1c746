"""The JSON shapes of the API, declared once and documented by OpenAPI."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
