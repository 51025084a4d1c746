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
    status: str
    queue_position: int | None = None
    progress: Progress | None = None
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


class LeaderboardRow(BaseModel):
    rank: int
    team: str
    baseline: bool
    submission_id: int
    score: float
    natural: float | None
    fgsm: float | None
    pgd_linf: float | None
    pgd_l2: float | None
    smoothing: float | None
    submissions: int
    submitted_at: datetime
    flags: list[str] = []


class Leaderboard(BaseModel):
    suite: str
    score_rule: str
    rows: list[LeaderboardRow]
