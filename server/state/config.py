"""All settings of the platform, read once from ``ARENA_*`` environment variables.

The API, the workers and the command line share this one ``Settings`` class, so a value
documented in the README means the same thing everywhere.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARENA_", env_file=".env", extra="ignore")

    home: Path = Field(Path("arena-data"), description="Data directory (database, broker, uploads).")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite under home if unset.")
    broker_url: str | None = Field(None, description="Celery broker URL; SQLite transport if unset.")
    eval_set: Path | None = Field(None, description="The .npz evaluation set (images, labels).")
    suite: str = Field("class", description="Evaluation protocol: class, robustbench or smoke.")
    eval_limit: int | None = Field(None, description="Evaluate only the first N images (demos).")
    admin_token: str | None = Field(None, description="Bearer token for admin routes.")
    web_workers: int = Field(1, ge=1, description="API processes `arena serve` starts.")
    device: str = Field("auto", description="Torch device for workers: auto, cpu or cuda.")
    score: str = Field(
        "natural:1,pgd_linf:1,pgd_l2:1",
        description="Score rule: metric:weight pairs; the score is their weighted mean.",
    )
    max_upload_mb: float = Field(200.0, description="Largest accepted checkpoint, in MiB.")
    max_description_chars: int = 500
    submissions_per_day: int = Field(10, description="Per-team quota of counted submissions.")
    max_active_per_team: int = Field(1, description="Queued or running submissions per team.")
    lease_seconds: float = Field(60.0, description="Worker lease on a running submission.")
    reconcile_seconds: float = Field(15.0, description="How often workers look for lost work.")
    requeue_after_seconds: float = Field(30.0, description="Queued this long and absent: requeue.")
    worker_heartbeat_seconds: float = Field(
        5.0, description="How often a worker records that it is alive (gone after 3 missed)."
    )
    max_attempts: int = Field(3, description="Tries of a submission failed by the platform.")
    soft_time_limit: float = Field(3 * 3600.0, description="Seconds before an evaluation stops.")
    hard_time_limit: float = Field(3 * 3600.0 + 300, description="Seconds before it is killed.")
    memory_limit_mb: int = Field(
        0, description="Address-space limit of the evaluating child; 0 = none (CUDA needs none)."
    )
    upload_grace_seconds: float = Field(
        3600.0, description="Age after which a stored file no submission refers to is deleted."
    )
    sandbox_user: str = Field(
        "arena-sandbox", description="User the children run as when started as root (else nobody)."
    )
    child_start: Literal["fork", "fresh"] = Field(
        "fork",
        description="How a worker starts each evaluating child: a fork of its pre-imported "
        "process, or a fresh interpreter.",
    )
    probe_timeout: float = Field(120.0, description="Seconds for the pre-queue model check.")
    probe_memory_limit_mb: int = Field(
        6144, description="Address-space limit of the pre-queue check (CPU only); 0 = none."
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'arena.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.home / 'broker.db').resolve()}"

    @property
    def upload_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def default_eval_set(self) -> Path:
        return self.home / "cifar10-class.npz"

    def score_weights(self) -> dict[str, float]:
        """Parse ``score`` ("pgd_linf" or "natural:1,pgd_l2:2") into metric weights."""
        return parse_score(self.score)


def parse_score(rule: str) -> dict[str, float]:
    """Metric weights of a score rule ("pgd_linf" or "natural:1,pgd_l2:2"); a missing weight
    is 1. Shared by the settings and by each competition's own rule, so both read alike."""
    weights: dict[str, float] = {}
    for part in rule.split(","):
        name, _, weight = part.strip().partition(":")
        if name:
            weights[name] = float(weight) if weight else 1.0
    return weights


@lru_cache
def get_settings() -> Settings:
    return Settings()
