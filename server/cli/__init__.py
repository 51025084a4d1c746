"""The ``arena`` command: serve, worker, team, competition, queue, evaluate, db, data.

Each command group lives in its own module; this one gathers them under ``main`` (the
``arena`` entry point). Imports that need torch, Celery or the database stay inside the
commands, so ``arena --help`` starts fast.
"""

import click

from server.cli import competition, data, db, evaluate, queue, serve, team


@click.group()
def main() -> None:
    """Robustness Arena: adversarial-robustness leaderboard for CIFAR-10 classifiers."""


for command in (
    serve.serve,
    serve.api,
    serve.worker,
    team.team,
    competition.competition,
    queue.queue,
    evaluate.evaluate,
    db.db,
    data.data,
):
    main.add_command(command)
