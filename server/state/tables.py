"""The tables: teams, their submissions, the evaluations of each submission (one per phase
run), one result per finished evaluation, the workers
alive now, the throughput workers measured per network and device (for wait estimates), and
the competitions with their phases."""

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from server.state.db import Base


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
    # server/state/names.py's name_key: unique, so names differing only by case or Unicode form
    # cannot both be created. NULL only for look-alikes that existed before the key did.
    name_key: Mapped[str | None] = mapped_column(String(400), unique=True, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Bumped by every upload, every discarded upload and every moderation of the team or its
    # submissions: the UPDATE takes the team's row lock, serialising quota checks, and the total
    # tells cached leaderboards that what they show changed.
    submission_counter: Mapped[int] = mapped_column(Integer, default=0)
    # Set by the organiser (server/state/moderation.py): a disqualified team is never ranked;
    # the reason is public, shown beside its name under the board. NULL: in good standing.
    disqualified_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    moderated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    submissions: Mapped[list["Submission"]] = relationship(back_populates="team")


class Submission(Base):
    """One uploaded checkpoint and what its team declared with it. Its evaluations (the
    first created at upload, ``validating`` while the upload is checked) carry the state."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id"), index=True)
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
    # False: the upload does not count against the daily quota (cancelled, or the platform
    # failed its first evaluation).
    charged: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set by the organiser: a hidden submission counts on no board (the team's next best does);
    # its page still says why. NULL: not hidden.
    hidden_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    moderated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set while the team selects this submission for its competition's final phase
    # (server/state/finals.py); NULL: not selected. A column, not a table: a selection is one
    # flag of one submission, and the per-team limit is a count over it.
    final_selected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    team: Mapped[Team] = relationship(back_populates="submissions")
    competition: Mapped["Competition"] = relationship()
    evaluations: Mapped[list["Evaluation"]] = relationship(
        back_populates="submission", order_by="Evaluation.id", cascade="all, delete-orphan"
    )


class Evaluation(Base):
    """One run of a submission in one phase: the unit of work a worker leases.

    ``suite_version`` is NULL until the evaluation finishes: it is the version the engine
    reports in its results (a queued evaluation runs under the suite as it is when it starts).
    """

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phases.id"), index=True)
    suite: Mapped[str] = mapped_column(String(32))
    suite_version: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.VALIDATING, index=True)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)

    submission: Mapped[Submission] = relationship(back_populates="evaluations")
    phase: Mapped["Phase"] = relationship()
    result: Mapped["Result | None"] = relationship(back_populates="evaluation", uselist=False)


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique: a redelivered task can never write a second result for the same evaluation.
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), unique=True)
    # The evaluation's submission, kept here so rankings and exports join one table less.
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    suite: Mapped[str] = mapped_column(String(32), index=True)
    suite_version: Mapped[str] = mapped_column(String(16))
    natural: Mapped[float | None] = mapped_column(Float, nullable=True)
    fgsm: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgd_linf: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgd_l2: Mapped[float | None] = mapped_column(Float, nullable=True)
    smoothing: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    evaluation: Mapped[Evaluation] = relationship(back_populates="result")


class WorkerHeartbeat(Base):
    """A running worker, seen again every few seconds: with none seen lately, the pages say that
    evaluations wait for a worker instead of promising a start. A stopping worker deletes its
    row; a killed one's row goes stale."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # The evaluation it holds now (the column kept its name from when submissions were leased).
    submission_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Throughput(Base):
    """Images per second of one network on one device, timed by a worker the first time it
    met the network: the cost model's rate when there is no history of that kind."""

    __tablename__ = "throughputs"
    __table_args__ = (UniqueConstraint("arch", "device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A zoo name, or "torch-export:<first 12 hex of the file's SHA-256>" for an archive.
    arch: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(128))  # "cpu", or "cuda: <GPU name>"
    forward_per_second: Mapped[float] = mapped_column(Float)
    backward_per_second: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class PhaseKind(enum.StrEnum):
    DEVELOPMENT = "development"  # open for uploads, ranked on the public evaluation set
    FINAL = "final"  # from the development's end: final selections on the private set


class Competition(Base):
    """A contest: its rules (suite, score rule, quotas) and its phases, in order.

    ``reveal_at`` NULL: final results are revealed when the organiser publishes them
    (``published_at``). The quotas are the competition's own, fixed at creation."""

    __tablename__ = "competitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")  # Markdown
    suite: Mapped[str] = mapped_column(String(32))
    score: Mapped[str] = mapped_column(Text)  # the rule, as ARENA_SCORE writes it (any length)
    final_selections: Mapped[int] = mapped_column(Integer, default=2)
    reveal_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When the final phase's evaluations were created (server/state/finals.py); set once, by
    # a conditional UPDATE, so of two reconcilers only one starts it. NULL: not started.
    finals_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    submissions_per_day: Mapped[int] = mapped_column(Integer)
    max_active_per_team: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    phases: Mapped[list["Phase"]] = relationship(
        back_populates="competition",
        order_by="Phase.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class Phase(Base):
    """One phase of a competition. Evaluations will name the phase (and so the evaluation
    set) they ran in. A development phase without dates is always open; a final phase has no
    dates of its own: it starts when the development phase ends."""

    __tablename__ = "phases"
    __table_args__ = (
        UniqueConstraint("competition_id", "name"),
        UniqueConstraint("competition_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # PhaseKind
    # A file name in ARENA_HOME/sets/ (the default competition's: the server's own set's name).
    eval_set: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    position: Mapped[int] = mapped_column(Integer)

    competition: Mapped[Competition] = relationship(back_populates="phases")
