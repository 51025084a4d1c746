"""The cost model behind a wait estimate when history is missing or of another kind.

An evaluation costs the suite's passes (``worker.engine.cost``: images through the network,
forward only or with an input gradient, and every noisy copy certification draws) divided by
the network's throughput on a worker's device, which workers time the first time they meet
a network (``worker.throughput``, kept in the ``throughputs`` table). A zoo network no worker
has timed yet is scaled from a timed one on the same device by their forward FLOPs, so a
submission has a figure from the first second. Attacks stop on an image once it is fooled,
so for the attack stages the figure is a bound, which the summary says. Once evaluations of
other kinds have finished, their durations calibrate it: the figure becomes the bound times
the median ratio of their real durations to their own bounds (how early this platform's
models give in, and how busy its workers are), no longer a bound.
"""

import statistics
from collections.abc import Sequence

from sqlalchemy.orm import Session

from models.architectures.catalog import CATALOG
from server.state.estimates import RECENT, Kind, Typical, about
from server.state.tables import Throughput
from server.state.workers import throughputs
from worker.engine.protocol import SUITES, Suite, suite_passes  # torch-free


def throughput_key(arch: str, sha256: str) -> str:
    """What a timing is kept under: the zoo name, or the archive itself for a .pt2 upload."""
    return arch if arch in CATALOG else f"{arch}:{sha256[:12]}"


def modelled(
    *,
    session: Session,
    suite: str,
    kinds: dict[Kind, str],
    limit: int | None,
    runs: Sequence[tuple[Kind, float]] = (),
) -> dict[Kind, Typical]:
    """The cost model's figure for each kind (keyed to the name its timing is kept under:
    the zoo name, or the archive's own for a ``.pt2`` upload) that a worker's timing covers,
    calibrated by the suite's recent ``runs`` (kind, seconds; newest first) when there are."""
    protocol = SUITES.get(suite)
    if protocol is None or not kinds:
        return {}
    images = protocol.images or 10_000
    if limit:
        images = min(images, limit)
    timings = throughputs(session=session)

    def bound(kind: Kind, key: str) -> tuple[float, str] | None:
        return _bound(protocol, images, timings, kind, key)

    ratios = []
    for kind, seconds in runs[:RECENT]:
        their = bound(kind, kind.arch)
        if their is not None and their[0] > 0:
            ratios.append(seconds / their[0])
    figures = {}
    for kind, key in kinds.items():
        found = bound(kind, key)
        if found is not None:
            figures[kind] = _figure(kind, *found, ratios=ratios)
    return figures


def _bound(
    protocol: Suite, images: int, timings: list[Throughput], kind: Kind, key: str
) -> tuple[float, str] | None:
    """(seconds at most, how) for ``kind`` timed under ``key``; None while nothing times it."""
    rate = _rate(timings, key)
    if rate is None:
        return None
    forward, backward, how = rate
    passes = suite_passes(protocol, images, certified=kind.certified)
    seconds = passes.forward / forward + passes.backward / backward
    return seconds, (
        f"{passes.backward:,} gradient and {passes.forward:,} plain passes of {kind.arch} "
        f"at {backward:,.0f} and {forward:,.0f} images/s, {how}"
    )


def _figure(kind: Kind, seconds: float, how: str, *, ratios: list[float]) -> Typical:
    """The bound itself while no finished run calibrates it; else the bound times the runs'
    median ratio of real duration to their own bound, no longer a bound."""
    if not ratios:
        return Typical(
            seconds,
            0,
            kind,
            bound=True,
            basis=f"at most {about(seconds)} by the cost model: {how}; attacks that succeed early take less",
        )
    ratio = statistics.median(ratios)
    return Typical(
        seconds * ratio,
        len(ratios),
        kind,
        basis=f"about {about(seconds * ratio)} by the cost model ({how}), times "
        f"{ratio:.2g}, the median ratio of the last {len(ratios)} evaluations of this "
        "suite to their own model figures",
    )


def _rate(timings: list[Throughput], key: str) -> tuple[float, float, str] | None:
    """(forward, backward images/s, how they were found) for ``key``, newest timing first."""
    for timing in timings:
        if timing.arch == key:
            return (timing.forward_per_second, timing.backward_per_second, f"timed on {timing.device}")
    target = CATALOG.get(key)
    if target is None or not target.flops:
        return None
    for timing in timings:
        reference = CATALOG.get(timing.arch)
        if reference is not None and reference.flops:
            scale = reference.flops / target.flops
            return (
                timing.forward_per_second * scale,
                timing.backward_per_second * scale,
                f"scaled by FLOPs from {timing.arch} timed on {timing.device}",
            )
    return None
