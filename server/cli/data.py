"""``arena data``: the evaluation set, downloaded or imported from arrays at hand."""

from pathlib import Path

import click

from server.cli.eval_set import OFFLINE_HELP, build_cifar10
from server.state.config import get_settings


@click.group()
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
        build_cifar10(path, split=split, count=count or None)
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
