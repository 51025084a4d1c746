"""A competition's definition and its checks: what a YAML bundle and ``POST /api/competitions``
both give (``CompetitionSpec``), before anything is stored (``server.state.competitions``).

Times are timezone-aware and kept in UTC; a time without a UTC offset is refused rather than
guessed.
"""

import math
import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.state.config import parse_score
from server.state.scoring import validate_weights
from server.state.tables import PhaseKind
from worker.engine.protocol import SUITES, get_suite  # torch-free

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DEFAULT_SLUG = "default"
DEFAULT_TITLE = "Robustness Arena"
DEFAULT_PHASE = "development"
#: Where, under ARENA_HOME, the evaluation sets competitions name are kept.
SETS_FOLDER = "sets"
EXAMPLE_TIME = "2027-01-10T09:00:00Z"


class CompetitionError(ValueError):
    """A definition that cannot be stored as it is; ``field`` names the part at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CompetitionExists(CompetitionError):
    """The slug is taken."""


def sets_dir(home: Path) -> Path:
    return home / SETS_FOLDER


def iso_utc(moment: datetime) -> str:
    """``2027-01-10T09:00:00Z``: the form every message and answer gives times in."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(value: datetime | None) -> datetime | None:
    """A time with its offset, converted to UTC; one without is refused, never guessed."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{value.isoformat()} has no time zone: give a UTC offset, e.g. {EXAMPLE_TIME} "
            "or 2027-01-10T10:00:00+01:00"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from None


def check_set_name(name: str) -> str:
    """An evaluation set's name: a plain ``.npz`` file name, looked up in ARENA_HOME/sets/."""
    if (
        not name.endswith(".npz")
        or len(name) <= len(".npz")
        or "/" in name
        or "\\" in name
        or ".." in name
        or name.startswith(".")
        or not name.isprintable()
        or name != name.strip()
    ):
        raise ValueError(
            f"eval_set {name!r} must be a plain file name ending in .npz (no folder, no '..', "
            f"not hidden), of a file in ARENA_HOME/{SETS_FOLDER}/"
        )
    return name


def _printable(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be blank")
    if not value.isprintable():
        raise ValueError(f"{what} must be printable (no control characters or line breaks)")
    return value


class PhaseSpec(BaseModel):
    """One phase of a definition. The development phase has both dates; the final phase none
    (it starts when the development phase ends) and names the private set."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="Shown to teams, e.g. 'Development'.")
    kind: PhaseKind = Field(description="development (uploads, public set) or final (private set).")
    eval_set: str = Field(
        max_length=255, description="A .npz file name in ARENA_HOME/sets/ (e.g. public.npz)."
    )
    starts_at: datetime | None = Field(None, description="Development only; with a UTC offset.")
    ends_at: datetime | None = Field(None, description="Development only, exclusive; with a UTC offset.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _printable(value, "the phase name")

    @field_validator("eval_set")
    @classmethod
    def _eval_set(cls, value: str) -> str:
        return check_set_name(value)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


class CompetitionSpec(BaseModel):
    """A competition's definition, as a YAML bundle and ``POST /api/competitions`` give it."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(
        max_length=63, description="Its name in addresses: a-z, 0-9 and '-', e.g. ml-class-2027."
    )
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20_000, description="Markdown, shown to teams.")
    suite: str = Field(description=f"Evaluation protocol: {', '.join(SUITES)}.")
    score: str = Field(
        max_length=200, description="Score rule as ARENA_SCORE writes it, e.g. natural:1,pgd_linf:1."
    )
    final_selections: int = Field(
        2, ge=1, le=100, description="Submissions each team may select for the final phase."
    )
    reveal_at: datetime | None = Field(
        None,
        description="When final results become public (after the development end); null: when "
        "the organiser publishes them.",
    )
    submissions_per_day: int | None = Field(
        None, ge=1, le=100_000, description="Per-team counted uploads per UTC day; default ARENA_*."
    )
    max_active_per_team: int | None = Field(
        None, ge=1, le=1_000, description="Queued or running uploads per team; default ARENA_*."
    )
    phases: list[PhaseSpec] = Field(min_length=1, max_length=8)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.fullmatch(value):
            raise ValueError(
                f"slug {value!r} must be 1 to 63 characters among a-z, 0-9 and '-', starting "
                "with a letter or digit (e.g. ml-class-2027)"
            )
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _printable(value, "the title")

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("the description must not contain NUL characters")
        return value

    @field_validator("suite")
    @classmethod
    def _suite(cls, value: str) -> str:
        get_suite(value)  # its ValueError names the known suites
        return value

    @field_validator("score")
    @classmethod
    def _score(cls, value: str) -> str:
        value = value.strip()
        try:
            weights = parse_score(value)
        except ValueError:
            raise ValueError(
                f"Invalid score rule {value!r}: each weight must be a number, as in natural:1,pgd_l2:2."
            ) from None
        if not all(math.isfinite(weight) for weight in weights.values()):
            raise ValueError(f"Invalid score rule {value!r}: weights must be finite numbers.")
        validate_weights(weights)  # the settings' own message
        return value

    @field_validator("reveal_at")
    @classmethod
    def _reveal_at(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _phases(self) -> "CompetitionSpec":
        kinds = [phase.kind for phase in self.phases]
        developments, finals = kinds.count(PhaseKind.DEVELOPMENT), kinds.count(PhaseKind.FINAL)
        if developments != 1:
            raise ValueError(f"a competition has exactly one development phase; {developments} given")
        if finals > 1:
            raise ValueError(f"a competition has at most one final phase; {finals} given")
        names = [phase.name for phase in self.phases]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"phase names must differ: {', '.join(map(repr, twice))} given twice")
        development = self.development
        if development.starts_at is None or development.ends_at is None:
            raise ValueError(
                f"the development phase needs starts_at and ends_at, with a UTC offset (e.g. {EXAMPLE_TIME})"
            )
        if development.starts_at >= development.ends_at:
            raise ValueError(
                f"the development phase must start before it ends: starts_at "
                f"{iso_utc(development.starts_at)} is not before ends_at {iso_utc(development.ends_at)}"
            )
        final = self.final
        if final is not None:
            if final.starts_at is not None or final.ends_at is not None:
                raise ValueError(
                    "the final phase has no dates of its own: it starts when the development "
                    f"phase ends ({iso_utc(development.ends_at)})"
                )
            if final.eval_set == development.eval_set:
                raise ValueError(
                    "the final phase's eval_set must differ from the development phase's: "
                    "the private set stays unseen until the end"
                )
        if self.reveal_at is not None and self.reveal_at <= development.ends_at:
            raise ValueError(
                f"reveal_at {iso_utc(self.reveal_at)} must be after the development phase ends "
                f"({iso_utc(development.ends_at)})"
            )
        return self

    @property
    def development(self) -> PhaseSpec:
        return next(phase for phase in self.phases if phase.kind == PhaseKind.DEVELOPMENT)

    @property
    def final(self) -> PhaseSpec | None:
        return next((phase for phase in self.phases if phase.kind == PhaseKind.FINAL), None)


# --- storing and reading ---------------------------------------------------------------------
