"""What the state knows of the workers: which are alive (heartbeats) and how fast each network
runs on their devices (throughput, the cost model's rates)."""

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.state.tables import Evaluation, Status, Throughput, WorkerHeartbeat, utcnow


def record_worker(*, session: Session, worker_id: str, hostname: str, pid: int) -> None:
    """Insert or refresh a worker's heartbeat, with the evaluation it holds now."""
    now = utcnow()
    holding = session.scalar(
        select(Evaluation.id)
        .where(Evaluation.lease_owner == worker_id, Evaluation.status == Status.RUNNING)
        .limit(1)
    )
    row = session.get(WorkerHeartbeat, worker_id)
    if row is None:
        row = WorkerHeartbeat(worker_id=worker_id, hostname=hostname, pid=pid, started_at=now)
        session.add(row)
    row.last_seen, row.submission_id = now, holding
    session.commit()


def forget_workers(*, session: Session, worker_id: str | None = None, unseen_for: float = 0) -> None:
    """Delete one worker's heartbeat (it stops), or every one unseen for ``unseen_for`` s."""
    if worker_id is not None:
        condition = WorkerHeartbeat.worker_id == worker_id
    else:
        condition = WorkerHeartbeat.last_seen < utcnow() - timedelta(seconds=unseen_for)
    session.execute(delete(WorkerHeartbeat).where(condition))
    session.commit()


def live_workers(*, session: Session, seen_within: float) -> int:
    """How many workers were seen in the last ``seen_within`` seconds."""
    cutoff = utcnow() - timedelta(seconds=seen_within)
    return (
        session.scalar(
            select(func.count()).select_from(WorkerHeartbeat).where(WorkerHeartbeat.last_seen > cutoff)
        )
        or 0
    )


# --- throughput --------------------------------------------------------------------------


def record_throughput(*, session: Session, arch: str, device: str, forward: float, backward: float) -> None:
    """Keep a worker's latest timing of ``arch`` on ``device`` (images per second)."""
    values = {"forward_per_second": forward, "backward_per_second": backward, "measured_at": utcnow()}
    # Session.execute is typed as a Result; an UPDATE gives a CursorResult, which counts rows.
    changed = cast(
        CursorResult[Any],
        session.execute(
            update(Throughput).where(Throughput.arch == arch, Throughput.device == device).values(**values)
        ),
    ).rowcount
    if not changed:
        try:
            with session.begin_nested():
                session.add(Throughput(arch=arch, device=device, **values))
        except IntegrityError:  # another worker timed it at the same moment: keep theirs
            pass
    session.commit()


def throughputs(*, session: Session) -> list[Throughput]:
    """Every timing, newest first."""
    return list(session.scalars(select(Throughput).order_by(Throughput.measured_at.desc())))
