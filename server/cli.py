"""The ``arena`` command: serve, worker, team, evaluate, db, data."""

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from server.state.config import get_settings


@click.group()
def main() -> None:
    """Robustness Arena: adversarial-robustness leaderboard for CIFAR-10 classifiers."""


# --- serving -------------------------------------------------------------------------------


@main.command()
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
        _warn_without_eval_set()
        _run_api(host, port, api_workers)
        return
    _ensure_eval_set()
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


@main.command(hidden=True)
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


#: What to do without internet access: commands that work from a clone as they are.
OFFLINE_HELP = (
    "Without internet access, bring CIFAR-10 arrays yourself (for example the official python\n"
    "batches saved as one .npz, keys train_data/train_labels), then from the clone run:\n"
    "  .venv/bin/arena data import cifar10_arrays.npz --images-key train_data "
    "--labels-key train_labels --count 1024\n"
    "or point the server at a set you already have (arrays 'images' uint8, 'labels' int):\n"
    "  export ARENA_EVAL_SET=/path/to/set.npz"
)


def _ensure_eval_set() -> None:
    settings = get_settings()
    if settings.eval_set is not None:
        if not settings.eval_set.is_file():
            raise click.ClickException(
                f"ARENA_EVAL_SET={settings.eval_set} does not exist: the evaluation set is "
                "missing. Put it there with\n"
                f"  arena data import FILE.npz --count 1024 --out {settings.eval_set}\n"
                "(under docker compose: docker compose run --rm api arena data import "
                "/import/FILE.npz ..., see the README), or unset ARENA_EVAL_SET."
            )
        return
    if settings.default_eval_set.is_file():
        return
    click.echo(f"No evaluation set yet: building {settings.default_eval_set} from CIFAR-10 ...")
    try:
        _build_cifar10(settings.default_eval_set, split="train", count=1024)
    except Exception as error:  # noqa: BLE001 - explain any download failure plainly
        raise click.ClickException(
            "Could not download CIFAR-10 to build the evaluation set "
            f"({type(error).__name__}: {error}).\n" + OFFLINE_HELP
        ) from None


def _warn_without_eval_set() -> None:
    """The API alone needs no evaluation set, but its workers do: say so where it is seen."""
    settings = get_settings()
    path = settings.eval_set or settings.default_eval_set
    if not path.is_file():
        click.echo(
            f"Warning: no evaluation set at {path}. Uploads will queue, but workers sharing "
            "this data folder stop until it is there.\n" + OFFLINE_HELP,
            err=True,
        )


def _build_cifar10(path: Path, *, split: str, count: int | None) -> Path:
    from worker.data import download_cifar10

    settings = get_settings()
    return download_cifar10(path, split=split, count=count, cache=settings.home / "cifar10-cache")


@main.command()
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
    _ensure_eval_set()
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


# --- teams ---------------------------------------------------------------------------------


@main.group()
def team() -> None:
    """Create, list and revoke teams."""


@team.command("create")
@click.argument("name", required=False)
@click.option(
    "--from-csv",
    "csv_file",
    type=click.File("r", encoding="utf-8-sig"),
    default=None,
    help="Create a team per row of this CSV (first column: the name; '-' reads stdin).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --from-csv: write name,token rows here instead of printing them.",
)
@click.option("--baseline", is_flag=True, help="An organiser's reference entry.")
@click.option("--json", "as_json", is_flag=True)
def team_create(name: str | None, csv_file: Any, out: Path | None, baseline: bool, as_json: bool) -> None:
    """Create a team (or one per CSV row) and print its API token (shown only once)."""
    from server.state.db import session_scope
    from server.state.migrate import upgrade
    from server.state.names import clean_team_name, name_key
    from server.state.teams import create_team, team_like

    if (name is None) == (csv_file is None):
        raise click.UsageError("Give a team NAME or --from-csv FILE, not both.")
    raw = [name] if csv_file is None else _names_from_csv(csv_file)
    try:
        names = [clean_team_name(each) for each in raw]
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    name = names[0]
    upgrade()
    with session_scope() as session:
        taken = [team.name for each in names if (team := team_like(session=session, name=each)) is not None]
        if taken and csv_file is None:
            raise click.ClickException(f"A team named {taken[0]!r} already exists.")
        if taken:
            raise click.ClickException(
                f"These teams already exist, so none was created: {', '.join(map(repr, taken))}."
            )
        keys = [name_key(each) for each in names]
        if len(set(keys)) < len(keys):
            twice = sorted({n for n, key in zip(names, keys, strict=True) if keys.count(key) > 1})
            raise click.ClickException(
                "These names are the same team whatever their case or form, so none was created: "
                f"{', '.join(map(repr, twice))}."
            )
        created = []
        for each in names:  # every name was checked first: the batch is created whole
            team, token = create_team(session=session, name=each, baseline=baseline)
            created.append({"id": team.id, "name": team.name, "token": token})
    if csv_file is not None:
        _write_tokens(created, out)
    elif as_json:
        click.echo(json.dumps(created[0]))
    else:
        click.echo(
            f"Team {name!r} created (id {created[0]['id']}). Token (shown once):\n{created[0]['token']}"
        )


def _names_from_csv(handle: Any) -> list[str]:
    """Team names from the first column; a first row reading "name" or "team" is a header."""
    import csv

    from server.state.tables import Team

    longest = Team.__table__.c.name.type.length
    rows = [row for row in csv.reader(handle) if row and row[0].strip()]
    names = [row[0].strip() for row in rows]
    if names and names[0].lower() in ("name", "team", "team name"):
        names = names[1:]
    if not names:
        raise click.ClickException("The CSV holds no team names (first column).")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise click.ClickException(f"Names repeated in the CSV: {', '.join(map(repr, repeated))}.")
    too_long = [n for n in names if len(n) > longest or not n.isprintable()]
    if too_long:
        raise click.ClickException(
            f"Team names must be printable and at most {longest} characters: "
            f"{', '.join(map(repr, too_long))}."
        )
    return names


def _write_tokens(created: list[dict[str, Any]], out: Path | None) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "token"])
    writer.writerows([row["name"], row["token"]] for row in created)
    if out is None:
        click.echo(buffer.getvalue(), nl=False)
        return
    out.touch(mode=0o600)
    out.write_text(buffer.getvalue())
    click.echo(f"Created {len(created)} teams; their tokens (shown once) are in {out}.", err=True)


@team.command("list")
def team_list() -> None:
    """List teams."""
    from sqlalchemy import select

    from server.state.db import session_scope
    from server.state.tables import Team

    with session_scope() as session:
        for row in session.scalars(select(Team).order_by(Team.id)):
            state = "revoked" if row.revoked else "active"
            click.echo(f"{row.id}\t{row.name}\t{state}{' baseline' if row.is_baseline else ''}")


@team.command("revoke")
@click.argument("name")
@click.option("--new-token", is_flag=True, help="Issue a new token instead of disabling.")
def team_revoke(name: str, new_token: bool) -> None:
    """Revoke a team's token (optionally issuing a new one)."""
    from server.state.db import session_scope
    from server.state.teams import revoke_team, rotate_token, team_by_name

    with session_scope() as session:
        found = team_by_name(session=session, name=name)
        if found is None:
            raise click.ClickException(f"No team named {name!r}.")
        if new_token:
            click.echo(rotate_token(session=session, team=found))
        else:
            revoke_team(session=session, team=found)
            click.echo(f"Token of {name!r} revoked.")


@main.command()
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
    "--normalisation",
    type=click.Choice(["auto", "as-declared"]),
    default="auto",
    show_default=True,
    help="auto: check the normalisation first (switch an undeclared one, stop on a beaten "
    "declaration); as-declared: keep it as given.",
)
@click.option("--limit", type=int, default=None, help="Only the first N images.")
@click.option("--eval-set", type=click.Path(path_type=Path), default=None)
@click.option("--device", default=None, help="auto, cpu or cuda (default ARENA_DEVICE).")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON only.")
def evaluate(
    checkpoint: Path,
    arch: str,
    suite: str | None,
    sigma: float | None,
    mean: str | None,
    std: str | None,
    normalisation: str,
    limit: int | None,
    eval_set: Path | None,
    device: str | None,
    as_json: bool,
) -> None:
    """Evaluate a checkpoint locally, exactly as the server does.

    CHECKPOINT may also be a class-format project folder (model.py defining Net with
    load_for_testing): its code runs on this machine, never on the server.
    """
    from models.checkpoints.errors import CheckpointError
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
            from models.checkpoints.loading import load_class_project

            loaded = load_class_project(checkpoint)
        else:
            from models.checkpoints.loading import load_model

            loaded = load_model(checkpoint, arch=arch, mean=_triple(mean), std=_triple(std))
        results = evaluate_loaded(
            loaded,
            eval_set=eval_path,
            suite=suite or settings.suite,
            sigma=sigma,
            limit=limit,
            device=device or settings.device,
            progress=progress,
            normalisation=normalisation,
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
            click.echo(
                f"{key:>10}: {100 * entry['accuracy']:6.2f}%  "
                f"(95% CI {100 * low:.1f}–{100 * high:.1f}, n={entry['n']})"
            )
    for flag in results.get("flags", []):
        click.echo(f"flag {flag['code']}: {flag['message']}")


# --- database and data -----------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from server.state.db import session_scope
    from server.state.migrate import upgrade
    from server.state.teams import look_alike_teams

    upgrade()
    click.echo("Database schema is up to date.")
    with session_scope() as session:
        look_alikes = look_alike_teams(session=session)
    if look_alikes:
        click.echo(
            "Teams whose names differ from an earlier team's only by case or Unicode form "
            "(kept as they are; no new team may take such a name):"
        )
        for name, earlier in look_alikes:
            click.echo(f"  {name!r} (like {earlier!r})")


@main.group()
def data() -> None:
    """Build the evaluation set."""


@data.command("cifar10")
@click.option(
    "--split",
    type=click.Choice(["train", "test"]),
    default="train",
    show_default=True,
    help="train: the class protocol's set; test: a held-out set.",
)
@click.option("--count", type=int, default=1024, show_default=True, help="0 for all images.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Default: ARENA_EVAL_SET, else ARENA_HOME/cifar10-class.npz.",
)
def data_cifar10(split: str, count: int, out: Path | None) -> None:
    """Download CIFAR-10 with torchvision and write the evaluation .npz."""
    settings = get_settings()
    path = out or settings.eval_set or settings.default_eval_set
    try:
        _build_cifar10(path, split=split, count=count or None)
    except Exception as error:  # noqa: BLE001
        raise click.ClickException(f"Download failed ({error}).\n" + OFFLINE_HELP) from None
    click.echo(f"Wrote {path}. The server uses it by default (or set ARENA_EVAL_SET={path}).")


@data.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--images-key", default="images", show_default=True)
@click.option("--labels-key", default="labels", show_default=True)
@click.option("--count", type=int, default=None, help="Keep only the first N images.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Default: ARENA_EVAL_SET, else ARENA_HOME/cifar10-class.npz.",
)
def data_import(source: Path, images_key: str, labels_key: str, count: int | None, out: Path | None) -> None:
    """Import arrays from an .npz you already have (e.g. the official batches' rows)."""
    import numpy as np

    from worker.data import save_eval_set

    settings = get_settings()
    path = out or settings.eval_set or settings.default_eval_set
    with np.load(source, allow_pickle=False) as archive:
        images, labels = archive[images_key], archive[labels_key]
    if count:
        images, labels = images[:count], labels[:count]
    save_eval_set(path, images, labels)
    click.echo(f"Wrote {path} ({len(labels)} images).")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
