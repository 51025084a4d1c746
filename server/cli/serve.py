"""``arena serve`` and the processes it supervises: ``arena api`` and ``arena worker``."""

import logging
import os
import sys

import click

from server.cli.eval_set import ensure_eval_set, warn_without_eval_set
from server.state.config import get_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Run the API only (workers run elsewhere).")
@click.option(
    "--workers",
    "web_workers",
    type=click.IntRange(min=1),
    default=None,
    help="API processes (default ARENA_WEB_WORKERS, 1).",
)
def serve(host: str, port: int, no_worker: bool, web_workers: int | None) -> None:
    """Start the API (uvicorn) and, unless --no-worker, a Celery worker beside it.

    Both stop within seconds of SIGTERM or SIGINT (the running evaluation goes back to the
    queue, uncharged); a worker that dies is started again.
    """
    from server.state.migrate import upgrade

    upgrade()
    api_workers = web_workers or get_settings().web_workers
    if no_worker:
        warn_without_eval_set()
        _run_api(host, port, api_workers)
        return
    ensure_eval_set()
    from server.supervisor import Supervisor
    from worker.runner import time_reference

    time_reference()  # before the API answers: estimates from the first upload on

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s/serve] %(message)s")
    arena = [sys.executable, "-I", "-u", "-m", "server.cli"]  # no working directory on sys.path
    status = Supervisor(
        api=[*arena, "api", "--host", host, "--port", str(port), "--workers", str(api_workers)],
        worker=[*arena, "worker", "--skip-timing"],
    ).run()
    if status:
        raise SystemExit(status)


@click.command(hidden=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def api(host: str, port: int, workers: int) -> None:
    """Run the API alone, on a migrated database (``arena serve`` starts it as a child)."""
    _run_api(host, port, workers)


def _run_api(host: str, port: int, workers: int) -> None:
    import uvicorn

    from server.supervisor import API_GRACE

    uvicorn.run(
        "server.main:app",
        host=host,
        port=port,
        log_level="info",
        workers=workers,
        timeout_graceful_shutdown=API_GRACE,
    )


@click.command()
@click.option("--concurrency", default=1, show_default=True, help="Evaluations at once.")
@click.option("--loglevel", default="info", show_default=True)
@click.option(
    "--skip-timing",
    is_flag=True,
    hidden=True,
    help="Do not time the reference network (arena serve just did).",
)
def worker(concurrency: int, loglevel: str, skip_timing: bool) -> None:
    """Run a Celery worker that evaluates queued submissions."""
    ensure_eval_set()
    from worker.celery_app import app

    _explain_root()
    if not skip_timing:
        from worker.runner import time_reference

        time_reference()  # this device's speed, for wait estimates before any evaluation
    pool = "solo" if concurrency == 1 else "threads"
    app.worker_main(
        [
            "worker",
            f"--loglevel={loglevel}",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def _explain_root() -> None:
    """Celery warns at length when its worker runs as root (as in a container or a lab VM);
    say once, plainly, what that means here instead."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    import warnings

    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning)
    click.echo(
        "Note: this worker runs as root. Celery discourages it because a message could carry "
        "code to run; this worker accepts only JSON messages (submission ids) and evaluates "
        "uploads in a child process, but an ordinary user is still safer.",
        err=True,
    )
