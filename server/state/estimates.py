"""When a submission's results will come: a rough figure from the platform's recent work.

The night before a deadline a team wants to know when its results will arrive, not only its
place in the queue. A typical evaluation is the median duration of recent finished ones in
the same suite, for the same kind of model where there are enough of them — the same
architecture, with or without a σ to certify (a WideResNet-34-10 takes many times a LeNet's
time, and certification often more than all the attacks) — else for all. The submissions
ahead are handed, first come first served, to the workers busy now (at least one), each of
which frees up when its current evaluation would typically end. It remains an estimate, and
the pages say so. With no worker alive (none recorded a heartbeat lately) no start is promised.

A kind with too little history of its own takes the cost model's figure instead
(``server.state.costs``: the suite's passes at the rate a worker measured), which is an upper bound;
only without that either does it borrow the suite's median of every kind.
"""

import heapq
import statistics
from dataclasses import dataclass, field

from server.state.views import WaitEstimate

#: How many of the latest finished evaluations a typical duration is taken from.
RECENT = 20
#: How many of one kind make its own median worth more than the suite's.
SAME_KIND = 3
#: What the estimate says while no worker is alive.
NO_WORKER = "no worker is running; evaluation starts when one is"


@dataclass(frozen=True)
class Kind:
    """What an evaluation's duration depends on most: the network, and certification."""

    arch: str
    certified: bool

    def __str__(self) -> str:
        return f"{self.arch} evaluation" + (" with certification" if self.certified else "")


@dataclass(frozen=True)
class Typical:
    seconds: float
    based_on: int
    kind: Kind | None  # None: every kind of the suite
    basis: str | None = None  # how a figure that is not a median was found (the cost model)
    bound: bool = False  # the most it should take, not a typical time


@dataclass(frozen=True)
class History:
    """Recent finished evaluations of one suite, newest first: (kind, seconds); and the cost
    model's figures for kinds the history may lack."""

    runs: list[tuple[Kind, float]]
    modelled: dict[Kind, Typical] = field(default_factory=dict)

    def typical(self, kind: Kind) -> Typical | None:
        same = [seconds for other, seconds in self.runs if other == kind][:RECENT]
        if len(same) >= SAME_KIND:
            return Typical(statistics.median(same), len(same), kind)
        if kind in self.modelled:
            return self.modelled[kind]
        if not self.runs:
            return None
        latest = [seconds for _, seconds in self.runs[:RECENT]]
        return Typical(statistics.median(latest), len(latest), None)


def for_queued(
    *, history: History, kind: Kind, ahead: list[Kind], running: list[tuple[Kind, float]]
) -> WaitEstimate | None:
    """A queued submission of ``kind`` behind ``ahead`` (their kinds, in queue order), while
    the busy workers run ``running`` (kind, seconds since it started)."""
    own = history.typical(kind)
    if own is None:
        return None
    # One figure per kind, however long the queue (the page asks again every second); a kind
    # with neither history nor a cost model counts as nothing.
    typicals = {k: history.typical(k) for k in {*ahead, *(k for k, _ in running)}}
    seconds = {k: t.seconds if t else 0.0 for k, t in typicals.items()}
    # Each worker is free when its current evaluation would typically end (idle: now).
    free_at = [max(seconds[other] - elapsed, 0.0) for other, elapsed in running] or [0.0]
    heapq.heapify(free_at)
    for other in ahead:
        heapq.heappush(free_at, heapq.heappop(free_at) + seconds[other])
    start = heapq.heappop(free_at)
    return WaitEstimate(
        typical_seconds=own.seconds,
        based_on=own.based_on,
        start_in_seconds=start,
        finish_in_seconds=start + own.seconds,
        summary=f"expected to start {_within(start)} and to finish "
        f"{_within(start + own.seconds, own.bound)} ({_basis(own)})",
    )


def without_worker(*, history: History, kind: Kind) -> WaitEstimate:
    """A submission waiting while no worker is alive: its start cannot be foreseen."""
    own = history.typical(kind)
    return WaitEstimate(
        typical_seconds=own.seconds if own else None,
        based_on=own.based_on if own else 0,
        summary=NO_WORKER,
    )


def for_running(*, history: History, kind: Kind, elapsed: float) -> WaitEstimate | None:
    """A submission of ``kind`` under evaluation for ``elapsed`` seconds."""
    own = history.typical(kind)
    if own is None:
        return None
    left = own.seconds - elapsed
    late = "longer than the cost model's bound" if own.bound else "longer than usual"
    return WaitEstimate(
        typical_seconds=own.seconds,
        based_on=own.based_on,
        finish_in_seconds=left if left > 0 else None,
        summary=f"expected to finish {_within(left, own.bound)} ({_basis(own)})"
        if left > 0
        else f"taking {late} ({_basis(own)})",
    )


def _within(seconds: float, bound: bool = False) -> str:
    if seconds < 1:
        return "now"
    return f"{'within' if bound else 'in'} about {about(seconds)}"


def _basis(typical: Typical) -> str:
    if typical.basis:
        return typical.basis
    if typical.based_on == 1:
        runs = "the last one"
    elif typical.kind:
        runs = f"the median of the last {typical.based_on}"
    else:
        runs = f"the median of the last {typical.based_on} evaluations"
    return f"a typical {typical.kind or 'evaluation'} takes {about(typical.seconds)}: {runs} of this suite"


def about(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 1.5 h."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
