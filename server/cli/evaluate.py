"""``arena evaluate``: a checkpoint evaluated on this machine, exactly as the server does."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from models.architectures.catalog import Triple, parse_triple
from server.cli.eval_set import ensure_eval_set
from server.state.config import get_settings

if TYPE_CHECKING:
    from models.checkpoints.loading import LoadedModel


def _triple(raw: str | None) -> Triple | None:
    """``--mean`` or ``--std`` as the zoo's parser reads an upload's (the loader checks std > 0)."""
    if not raw:
        return None
    try:
        return parse_triple(raw)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command()
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
def evaluate(  # noqa: PLR0913 - one parameter per option of the command
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
        ensure_eval_set()

    def progress(stage: str, done: int, total: int) -> None:
        if not as_json:
            click.echo(f"\r{stage:>10}: {done}/{total}", nl=False, err=True)

    try:
        results = evaluate_loaded(
            _load(checkpoint, arch=arch, mean=mean, std=std),
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
    _print_summary(results)


def _load(checkpoint: Path, *, arch: str, mean: str | None, std: str | None) -> "LoadedModel":
    """A class-format project folder, or a checkpoint file (with its declared normalisation)."""
    if checkpoint.is_dir():
        from models.checkpoints.loading import load_class_project

        return load_class_project(checkpoint)
    from models.checkpoints.loading import load_model

    return load_model(checkpoint, arch=arch, mean=_triple(mean), std=_triple(std))


def _print_summary(results: dict[str, Any]) -> None:
    """Each metric's accuracy with its 95% interval, then the flags, one line each."""
    click.echo(f"architecture: {results['model'].get('arch')}  suite: {results['suite']['name']}")
    click.echo(f"normalisation: {results['normalisation']['summary']}")
    from worker.engine.protocol import METRICS

    for key in METRICS:
        if key in results:
            entry = results[key]
            low, high = entry["ci95"]
            click.echo(
                f"{key:>10}: {100 * entry['accuracy']:6.2f}%  "
                f"(95% CI {100 * low:.1f}–{100 * high:.1f}, n={entry['n']})"
            )
    for flag in results.get("flags", []):
        click.echo(f"flag {flag['code']}: {flag['message']}")
