"""When a submission's results will come: a rough figure from the platform's recent work.

The night before a deadline a team wants to know when its results will arrive, not only its
place in the queue. The typical evaluation is the median duration of the last finished ones
in the same suite; the submissions ahead are handed, first come first served, to the workers
busy now (at least one), each of which frees up when its current evaluation would typically
end. Models differ in cost, so the figure is an estimate and the pages say so.
"""

import heapq
import statistics

from server.schemas import WaitEstimate

#: How many of the latest finished evaluations the typical duration is taken from.
RECENT = 20


def for_queued(
    *, durations: list[float], ahead: int, running_elapsed: list[float]
) -> WaitEstimate | None:
    """A queued submission with ``ahead`` others before it, while evaluations that started
    ``running_elapsed`` seconds ago hold the busy workers."""
    if not durations:
        return None
    typical = statistics.median(durations)
    # Each worker is free when its current evaluation would typically end (idle: now).
    free_at = [max(typical - elapsed, 0.0) for elapsed in running_elapsed] or [0.0]
    heapq.heapify(free_at)
    for _ in range(ahead):
        heapq.heappush(free_at, heapq.heappop(free_at) + typical)
    start = heapq.heappop(free_at)
    return WaitEstimate(
        typical_seconds=typical,
        based_on=len(durations),
        start_in_seconds=start,
        finish_in_seconds=start + typical,
        summary=f"expected to start {_within(start)} and to finish {_within(start + typical)} "
        f"({_basis(typical, len(durations))})",
    )


def for_running(*, durations: list[float], elapsed: float) -> WaitEstimate | None:
    """A submission under evaluation for ``elapsed`` seconds."""
    if not durations:
        return None
    typical = statistics.median(durations)
    left = typical - elapsed
    basis = _basis(typical, len(durations))
    return WaitEstimate(
        typical_seconds=typical,
        based_on=len(durations),
        finish_in_seconds=left if left > 0 else None,
        summary=f"expected to finish {_within(left)} ({basis})"
        if left > 0
        else f"taking longer than usual ({basis})",
    )


def _within(seconds: float) -> str:
    if seconds < 1:
        return "now"
    return f"in about {about(seconds)}"


def _basis(typical: float, count: int) -> str:
    runs = "the last evaluation" if count == 1 else f"the median of the last {count} evaluations"
    return f"a typical evaluation takes {about(typical)}: {runs} of this suite"


def about(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 1.5 h."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
