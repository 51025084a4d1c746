"""The ``arena`` command: serve, worker, team, evaluate, db, data."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from server.config import get_settings


@click.group()
def main() -> None:
    """Robustness Arena: adversarial-robustness leaderboard for CIFAR-10 classifiers."""


# --- serving -------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Run the API only (workers run elsewhere).")
@click.option(
    "--workers", "web_workers", type=click.IntRange(min=1), default=None,
    help="API processes (default ARENA_WEB_WORKERS, 1).",
)
def serve(host: str, port: int, no_worker: bool, web_workers: int | None) -> None:
    """Start the API (uvicorn) and, unless --no-worker, a Celery worker beside it."""
    import uvicorn

    from server.migrate import upgrade

    upgrade()
    if not no_worker:
        _ensure_eval_set()
    worker = None if no_worker else subprocess.Popen([sys.executable, "-m", "server.cli", "worker"])
    try:
        uvicorn.run(
            "server.main:app",
            host=host,
            port=port,
            log_level="info",
            workers=web_workers or get_settings().web_workers,
        )
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def _ensure_eval_set() -> None:
    settings = get_settings()
    if settings.eval_set is not None:
        if not settings.eval_set.is_file():
            raise click.ClickException(f"ARENA_EVAL_SET={settings.eval_set} does not exist.")
        return
    if settings.default_eval_set.is_file():
        return
    click.echo(f"No evaluation set yet: building {settings.default_eval_set} from CIFAR-10 ...")
    try:
        _build_cifar10(settings.default_eval_set, split="train", count=1024)
    except Exception as error:  # noqa: BLE001 - explain any download failure plainly
        raise click.ClickException(
            "Could not download CIFAR-10 to build the evaluation set "
            f"({type(error).__name__}: {error}).\n"
            "Without internet access, bring the data yourself, then either:\n"
            "  * arena data import FILE.npz --images-key KEY --labels-key KEY\n"
            "    (arrays as in torchvision's CIFAR10.data, or the official batches' rows), or\n"
            "  * export ARENA_EVAL_SET=/path/to/set.npz  (arrays 'images' and 'labels')."
        ) from None


def _build_cifar10(path: Path, *, split: str, count: int | None) -> Path:
    from worker.data import download_cifar10

    settings = get_settings()
    return download_cifar10(path, split=split, count=count, cache=settings.home / "cifar10-cache")


@main.command()
@click.option("--concurrency", default=1, show_default=True, help="Evaluations at once.")
@click.option("--loglevel", default="info", show_default=True)
def worker(concurrency: int, loglevel: str) -> None:
    """Run a Celery worker that evaluates queued submissions."""
    _ensure_eval_set()
    from worker.celery_app import app

    pool = "solo" if concurrency == 1 else "threads"
    app.worker_main(
        ["worker", f"--loglevel={loglevel}", f"--pool={pool}", f"--concurrency={concurrency}",
         "--without-gossip", "--without-mingle"]
    )


# --- teams ---------------------------------------------------------------------------------


@main.group()
def team() -> None:
    """Create, list and revoke teams."""


@team.command("create")
@click.argument("name")
@click.option("--baseline", is_flag=True, help="An organiser's reference entry.")
@click.option("--json", "as_json", is_flag=True)
def team_create(name: str, baseline: bool, as_json: bool) -> None:
    """Create a team and print its API token (shown only once)."""
    from server import crud
    from server.db import session_scope
    from server.migrate import upgrade

    upgrade()
    with session_scope() as session:
        if crud.team_by_name(session=session, name=name) is not None:
            raise click.ClickException(f"A team named {name!r} already exists.")
        created, token = crud.create_team(session=session, name=name, baseline=baseline)
        payload = {"id": created.id, "name": created.name, "token": token}
    if as_json:
        click.echo(json.dumps(payload))
    else:
        click.echo(f"Team {name!r} created (id {payload['id']}). Token (shown once):\n{token}")


@team.command("list")
def team_list() -> None:
    """List teams."""
    from sqlalchemy import select

    from server.db import session_scope
    from server.tables import Team

    with session_scope() as session:
        for row in session.scalars(select(Team).order_by(Team.id)):
            state = "revoked" if row.revoked else "active"
            click.echo(f"{row.id}\t{row.name}\t{state}{' baseline' if row.is_baseline else ''}")


@team.command("revoke")
@click.argument("name")
@click.option("--new-token", is_flag=True, help="Issue a new token instead of disabling.")
def team_revoke(name: str, new_token: bool) -> None:
    """Revoke a team's token (optionally issuing a new one)."""
    from server import crud
    from server.db import session_scope

    with session_scope() as session:
        found = crud.team_by_name(session=session, name=name)
        if found is None:
            raise click.ClickException(f"No team named {name!r}.")
        if new_token:
            click.echo(crud.rotate_token(session=session, team=found))
        else:
            crud.revoke_team(session=session, team=found)
            click.echo(f"Token of {name!r} revoked.")


# --- local evaluation ----------------------------------------------------------------------


def _triple(raw: str | None) -> list[float] | None:
    if not raw:
        return None
    values = [float(x) for x in raw.split(",")]
    if len(values) != 3:
        raise click.BadParameter("expected three comma-separated numbers")
    return values


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option("--arch", default="auto", show_default=True, help="Zoo name, or auto.")
@click.option("--suite", default=None, help="class, robustbench or smoke (default ARENA_SUITE).")
@click.option("--sigma", type=float, default=None, help="Certify with smoothing at this σ.")
@click.option("--mean", default=None, help="Input normalisation mean, e.g. 0.5,0.5,0.5.")
@click.option("--std", default=None, help="Input normalisation std.")
@click.option(
    "--normalisation", type=click.Choice(["auto", "as-declared"]), default="auto",
    show_default=True,
    help="auto: check the normalisation first (switch an undeclared one, stop on a beaten "
    "declaration); as-declared: keep it as given.",
)
@click.option("--limit", type=int, default=None, help="Only the first N images.")
@click.option("--eval-set", type=click.Path(path_type=Path), default=None)
@click.option("--device", default=None, help="auto, cpu or cuda (default ARENA_DEVICE).")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON only.")
def evaluate(
    checkpoint: Path, arch: str, suite: str | None, sigma: float | None, mean: str | None,
    std: str | None, normalisation: str, limit: int | None, eval_set: Path | None,
    device: str | None, as_json: bool,
) -> None:
    """Evaluate a checkpoint locally, exactly as the server does.

    CHECKPOINT may also be a class-format project folder (model.py defining Net with
    load_for_testing): its code runs on this machine, never on the server.
    """
    from models.errors import CheckpointError
    from worker.evaluation import evaluate_loaded
    from worker.normalisation import NormalisationRejected

    settings = get_settings()
    eval_path = eval_set or settings.eval_set or settings.default_eval_set
    if not eval_path.is_file():
        _ensure_eval_set()

    def progress(stage: str, done: int, total: int) -> None:
        if not as_json:
            click.echo(f"\r{stage:>10}: {done}/{total}", nl=False, err=True)

    try:
        if checkpoint.is_dir():
            from models.loading import load_class_project

            loaded = load_class_project(checkpoint)
        else:
            from models.loading import load_model

            loaded = load_model(checkpoint, arch=arch, mean=_triple(mean), std=_triple(std))
        results = evaluate_loaded(
            loaded, eval_set=eval_path, suite=suite or settings.suite, sigma=sigma, limit=limit,
            device=device or settings.device, progress=progress, normalisation=normalisation,
        )
    except (CheckpointError, NormalisationRejected) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(results))
        return
    click.echo("", err=True)
    click.echo(f"architecture: {results['model'].get('arch')}  suite: {results['suite']['name']}")
    click.echo(f"normalisation: {results['normalisation']['summary']}")
    for key in ("natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing", "autoattack"):
        if key in results:
            entry = results[key]
            low, high = entry["ci95"]
            click.echo(f"{key:>10}: {100 * entry['accuracy']:6.2f}%  "
                       f"(95% CI {100 * low:.1f}–{100 * high:.1f}, n={entry['n']})")
    for flag in results.get("flags", []):
        click.echo(f"flag {flag['code']}: {flag['message']}")


# --- database and data -----------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from server.migrate import upgrade

    upgrade()
    click.echo("Database schema is up to date.")


@main.group()
def data() -> None:
    """Build the evaluation set."""


@data.command("cifar10")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="train: the class protocol's set; test: a held-out set.")
@click.option("--count", type=int, default=1024, show_default=True, help="0 for all images.")
@click.option("--out", type=click.Path(path_type=Path), default=None)
def data_cifar10(split: str, count: int, out: Path | None) -> None:
    """Download CIFAR-10 with torchvision and write the evaluation .npz."""
    settings = get_settings()
    path = out or settings.default_eval_set
    try:
        _build_cifar10(path, split=split, count=count or None)
    except Exception as error:  # noqa: BLE001
        raise click.ClickException(
            f"Download failed ({error}). Without internet, use 'arena data import'."
        ) from None
    click.echo(f"Wrote {path}. The server uses it by default (or set ARENA_EVAL_SET={path}).")


@data.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--images-key", default="images", show_default=True)
@click.option("--labels-key", default="labels", show_default=True)
@click.option("--count", type=int, default=None, help="Keep only the first N images.")
@click.option("--out", type=click.Path(path_type=Path), default=None)
def data_import(
    source: Path, images_key: str, labels_key: str, count: int | None, out: Path | None
) -> None:
    """Import arrays from an .npz you already have (e.g. the official batches' rows)."""
    import numpy as np

    from worker.data import save_eval_set

    settings = get_settings()
    path = out or settings.default_eval_set
    with np.load(source, allow_pickle=False) as archive:
        images, labels = archive[images_key], archive[labels_key]
    if count:
        images, labels = images[:count], labels[:count]
    save_eval_set(path, images, labels)
    click.echo(f"Wrote {path} ({len(labels)} images).")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
