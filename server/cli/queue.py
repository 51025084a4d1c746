"""``arena queue``: what runs and waits now."""

import click


@click.command()
def queue() -> None:
    """The submissions running and waiting now, in the order workers take them."""
    from sqlalchemy import select

    from server.state.db import session_scope
    from server.state.tables import Status, Submission, utcnow

    with session_scope() as session:
        rows = session.scalars(
            select(Submission)
            .where(Submission.status.in_([Status.RUNNING, Status.QUEUED, Status.VALIDATING]))
            .order_by(Submission.id)  # the queue order (submissions.queued_ahead)
        ).all()
        if not rows:
            click.echo("Nothing running or queued.")
            return
        now, place = utcnow(), 0
        for row in sorted(rows, key=lambda r: r.status != Status.RUNNING):
            sigma = "" if row.sigma is None else f" σ={row.sigma:g}"
            if row.status == Status.RUNNING:
                progress = row.progress or {}
                since = (now - (row.started_at or now)).total_seconds()
                state = (
                    f"running {progress.get('stage', '')} "
                    f"{progress.get('done', 0)}/{progress.get('total', 0)} for {since:.0f} s"
                )
            elif row.status == Status.QUEUED:
                place += 1
                state = f"queued #{place}"
            else:
                state = "checking the upload"
            click.echo(f"{row.id}\t{row.team.name}\t{row.arch}{sigma}\t{state}")
