"""What the state layer returns to its readers: a leaderboard and a wait estimate.

Pydantic models, so the API serves them as they are (``server.api.schemas`` re-exports them)
and the pages and exports read the same fields.
"""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class WaitEstimate(BaseModel):
    """When the results should come (server/state/estimates.py): a rough figure, not a promise."""

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
    public_rank: int | None = Field(
        None,
        description="Final board only: the team's rank on the development (public) board; null "
        "on development boards, for baselines, and for a team the public board did not rank.",
    )
    rank_change: int | None = Field(
        None,
        description="Final board only: public rank minus final rank (positive: moved up); null "
        "where public_rank is.",
    )


class DisqualifiedTeam(BaseModel):
    """A team the organiser disqualified: listed under the board, never ranked."""

    model_config = ConfigDict(frozen=True)

    team: str
    reason: str = Field(description="The organiser's public reason.")
    disqualified_at: datetime | None = Field(None, description="UTC.")


class Leaderboard(BaseModel):
    model_config = ConfigDict(frozen=True)

    suite: str
    track: str = "empirical"
    radius: float | None = Field(None, description="ℓ2 radius ranked by the certified track.")
    score_rule: str
    ties_rule: str = ""
    teams: int = 0
    final: bool = Field(
        False, description="A final board: ranked on the private set, rows give the shake-up."
    )
    rows: list[LeaderboardRow]
    disqualified: list[DisqualifiedTeam] = Field(
        default_factory=list,
        description="Teams the organiser disqualified that would otherwise be on this board, "
        "by name, with the public reason; never ranked.",
    )
    rejudging: int = Field(
        0,
        description="Submissions being re-evaluated under the suite's current version; until "
        "they finish, only results of that version are ranked.",
    )
