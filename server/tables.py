"""The three tables: teams, their submissions, and one result per finished submission."""

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from server.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite keeps no zone), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Status(enum.StrEnum):
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (Status.VALIDATING, Status.QUEUED, Status.RUNNING)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Bumped by every upload and every discarded upload: the UPDATE takes the team's row lock,
    # serialising quota checks, and the total tells cached leaderboards that counts changed.
    submission_counter: Mapped[int] = mapped_column(Integer, default=0)

    submissions: Mapped[list["Submission"]] = relationship(back_populates="team")


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    arch: Mapped[str] = mapped_column(String(64))
    sigma: Mapped[float | None] = mapped_column(Float, nullable=True)
    mean: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    std: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    # "auto": the evaluation checks the normalisation first; "as-declared": keeps it, whatever.
    normalisation: Mapped[str] = mapped_column(String(16), default="auto", server_default="auto")
    description: Mapped[str] = mapped_column(Text, default="")
    original_filename: Mapped[str] = mapped_column(String(255), default="")
    stored_name: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    suite: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=Status.VALIDATING, index=True)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    charged: Mapped[bool] = mapped_column(Boolean, default=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, index=True
    )
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)

    team: Mapped[Team] = relationship(back_populates="submissions")
    result: Mapped["Result | None"] = relationship(back_populates="submission", uselist=False)


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique: a redelivered task can never write a second result for the same submission.
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    suite: Mapped[str] = mapped_column(String(32), index=True)
    suite_version: Mapped[str] = mapped_column(String(16))
    natural: Mapped[float | None] = mapped_column(Float, nullable=True)
    fgsm: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgd_linf: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgd_l2: Mapped[float | None] = mapped_column(Float, nullable=True)
    smoothing: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="result")
