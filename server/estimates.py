"""When a submission's results will come: a rough figure from the platform's recent work.

The night before a deadline a team wants to know when its results will arrive, not only its
place in the queue. A typical evaluation is the median duration of recent finished ones in
the same suite, for the same architecture where there are enough of them (a WideResNet-34-10
takes many times a LeNet's time), else for all. The submissions ahead are handed, first come
first served, to the workers busy now (at least one), each of which frees up when its current
evaluation would typically end. It remains an estimate, and the pages say so.
"""

import heapq
import statistics
from dataclasses import dataclass

from server.schemas import WaitEstimate

#: How many of the latest finished evaluations a typical duration is taken from.
RECENT = 20
#: How many of one architecture make its own median worth more than the suite's.
SAME_ARCH = 3


@dataclass(frozen=True)
class Typical:
    seconds: float
    based_on: int
    arch: str | None  # None: all architectures of the suite


@dataclass(frozen=True)
class History:
    """Recent finished evaluations of one suite, newest first: (architecture, seconds)."""

    runs: list[tuple[str, float]]

    def typical(self, arch: str) -> Typical:
        same = [seconds for name, seconds in self.runs if name == arch][:RECENT]
        if len(same) >= SAME_ARCH:
            return Typical(statistics.median(same), len(same), arch)
        latest = [seconds for _, seconds in self.runs[:RECENT]]
        return Typical(statistics.median(latest), len(latest), None)


def for_queued(
    *, history: History, arch: str, ahead: list[str], running: list[tuple[str, float]]
) -> WaitEstimate | None:
    """A queued ``arch`` submission behind ``ahead`` (their architectures, in queue order),
    while the busy workers run ``running`` (architecture, seconds since it started)."""
    if not history.runs:
        return None
    # Each worker is free when its current evaluation would typically end (idle: now).
    free_at = [max(history.typical(name).seconds - elapsed, 0.0) for name, elapsed in running]
    free_at = free_at or [0.0]
    heapq.heapify(free_at)
    for name in ahead:
        heapq.heappush(free_at, heapq.heappop(free_at) + history.typical(name).seconds)
    start = heapq.heappop(free_at)
    own = history.typical(arch)
    return WaitEstimate(
        typical_seconds=own.seconds,
        based_on=own.based_on,
        start_in_seconds=start,
        finish_in_seconds=start + own.seconds,
        summary=f"expected to start {_within(start)} and to finish "
        f"{_within(start + own.seconds)} ({_basis(own)})",
    )


def for_running(*, history: History, arch: str, elapsed: float) -> WaitEstimate | None:
    """An ``arch`` submission under evaluation for ``elapsed`` seconds."""
    if not history.runs:
        return None
    own = history.typical(arch)
    left = own.seconds - elapsed
    return WaitEstimate(
        typical_seconds=own.seconds,
        based_on=own.based_on,
        finish_in_seconds=left if left > 0 else None,
        summary=f"expected to finish {_within(left)} ({_basis(own)})"
        if left > 0
        else f"taking longer than usual ({_basis(own)})",
    )


def _within(seconds: float) -> str:
    if seconds < 1:
        return "now"
    return f"in about {about(seconds)}"


def _basis(typical: Typical) -> str:
    kind = f"{typical.arch} evaluation" if typical.arch else "evaluation"
    if typical.based_on == 1:
        runs = "the last one"
    elif typical.arch:
        runs = f"the median of the last {typical.based_on}"
    else:
        runs = f"the median of the last {typical.based_on} evaluations"
    return f"a typical {kind} takes {about(typical.seconds)}: {runs} of this suite"


def about(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 1.5 h."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
