"""``arena queue``: what runs and waits now."""

import click


@click.command()
def queue() -> None:
    """The evaluations running and waiting now, in the order workers take them (each line
    starts with its submission's id)."""
    from sqlalchemy import select

    from server.state.db import session_scope
    from server.state.tables import Evaluation, Status, utcnow

    with session_scope() as session:
        rows = session.scalars(
            select(Evaluation)
            .where(Evaluation.status.in_([Status.RUNNING, Status.QUEUED, Status.VALIDATING]))
            .order_by(Evaluation.id)  # the queue order (submissions.queued_ahead)
        ).all()
        if not rows:
            click.echo("Nothing running or queued.")
            return
        now, place = utcnow(), 0
        for row in sorted(rows, key=lambda r: r.status != Status.RUNNING):
            submission = row.submission
            sigma = "" if submission.sigma is None else f" σ={submission.sigma:g}"
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
            click.echo(f"{submission.id}\t{submission.team.name}\t{submission.arch}{sigma}\t{state}")
