"""The contract between the platform and the child that touches an upload.

The parent (the API's pre-queue probe or a worker) describes the child's job once, as a
``Job``; the child receives it as one JSON argument and validates it. The child answers on
its own pipe with JSON lines, each a ``Progress``, a ``Throughput`` or a ``Done``. The parent
trusts nothing it reads there: ``read_messages`` bounds the size and count of lines and
validates each one, and anything else is a ``MalformedMessage`` (a fault of the model, which
may have written it).

Torch-free: the API imports this module.
"""

from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from worker.engine.protocol import STAGES

MODEL_FAULT, PLATFORM_FAULT, STOPPED, DECLINED = 3, 4, 5, 6
"""Exit statuses of the child besides 0: its model's fault, the platform's, a stop signal, and
an evaluation declined before any attack (a declared normalisation beaten; not charged)."""

MAX_LINE_BYTES = 256 * 1024
MAX_MESSAGES = 1_000_000

#: A stage named by the evaluation protocol (a Literal of a tuple lists its members).
Stage = Literal[STAGES]  # type: ignore[valid-type]
Triple = tuple[float, float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Job(_Strict):
    """What one child does: probe an upload, or evaluate it. File descriptors, not paths:
    the parent opened the files, so the child reads exactly those."""

    kind: Literal["probe", "evaluate"]
    message_fd: NonNegativeInt
    checkpoint_fd: NonNegativeInt
    arch: str = Field("auto", max_length=100)
    mean: Triple | None = None
    std: Triple | None = None
    memory_limit_mb: NonNegativeInt = 0
    eval_set_fd: NonNegativeInt | None = None
    eval_set_name: str = Field("", max_length=255)
    suite: str | None = Field(None, max_length=50)
    sigma: float | None = Field(None, gt=0)
    limit: NonNegativeInt | None = None
    device: str = Field("cpu", max_length=20)
    normalisation: Literal["auto", "as-declared"] = "auto"
    measure: bool = False  # time the network first (a ``Throughput`` message) for estimates

    @model_validator(mode="after")
    def _evaluation_has_its_set(self) -> "Job":
        if self.kind == "evaluate" and (self.eval_set_fd is None or self.suite is None):
            raise ValueError("an evaluation needs eval_set_fd and suite")
        return self


class Progress(_Strict):
    type: Literal["progress"] = "progress"
    stage: Stage
    done: NonNegativeInt
    total: NonNegativeInt

    @model_validator(mode="after")
    def _done_within_total(self) -> "Progress":
        if self.done > self.total:
            raise ValueError(f"done ({self.done}) exceeds total ({self.total})")
        return self


class Throughput(_Strict):
    """Images per second of the loaded network on the child's device (for wait estimates)."""

    type: Literal["throughput"] = "throughput"
    device: str = Field(max_length=128)
    forward: float = Field(gt=0, allow_inf_nan=False)
    backward: float = Field(gt=0, allow_inf_nan=False)


class Done(_Strict):
    """The child's last word. ``kind`` says whose fault a failure is; ``stopped`` means a
    signal ended it (the watchdog or the worker's shutdown), which is nobody's fault."""

    type: Literal["done"] = "done"
    ok: bool
    kind: Literal["model", "platform", "stopped", "declined"] | None = None
    message: str = Field("", max_length=8000)
    arch: str | None = Field(None, max_length=100)
    results: dict[str, Any] | None = None


Message = Progress | Throughput | Done
_MESSAGE = TypeAdapter(Annotated[Message, Field(discriminator="type")])


class MalformedMessage(Exception):
    """The child wrote something that is not a valid message (its model may have)."""


def encode(message: Message) -> bytes:
    return message.model_dump_json().encode() + b"\n"


def read_messages(stream: BinaryIO) -> Iterator[Message]:
    """Validated messages from the child's pipe until it closes; raises MalformedMessage at
    the first line that is too long, not a known message, or one too many."""
    count, finished = 0, False
    while line := stream.readline(MAX_LINE_BYTES + 1):
        count += 1
        if finished:
            raise MalformedMessage("a message after the final one")
        if len(line) > MAX_LINE_BYTES:
            raise MalformedMessage(f"a line longer than {MAX_LINE_BYTES} bytes")
        if not line.endswith(b"\n"):
            raise MalformedMessage("an unterminated line")
        if count > MAX_MESSAGES:
            raise MalformedMessage(f"more than {MAX_MESSAGES} messages")
        try:
            message = _MESSAGE.validate_json(line)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"][1:]) or "the message"
            raise MalformedMessage(f"{where}: {first['msg']}") from None
        finished = isinstance(message, Done)
        yield message
