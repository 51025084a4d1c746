"""The evaluation set every command that evaluates needs: found, built, or explained."""

from pathlib import Path

import click

from server.state.config import get_settings

#: What to do without internet access: commands that work from a clone as they are.
OFFLINE_HELP = (
    "Without internet access, bring CIFAR-10 arrays yourself (for example the official python\n"
    "batches saved as one .npz, keys train_data/train_labels), then from the clone run:\n"
    "  .venv/bin/arena data import cifar10_arrays.npz --images-key train_data "
    "--labels-key train_labels --count 1024\n"
    "or point the server at a set you already have (arrays 'images' uint8, 'labels' int):\n"
    "  export ARENA_EVAL_SET=/path/to/set.npz"
)


def ensure_eval_set() -> None:
    """A declared ARENA_EVAL_SET must exist; the default set is built from CIFAR-10 on first use,
    and a failed download ends the command with what to do offline."""
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
        build_cifar10(settings.default_eval_set, split="train", count=1024)
    except Exception as error:  # noqa: BLE001 - explain any download failure plainly
        raise click.ClickException(
            "Could not download CIFAR-10 to build the evaluation set "
            f"({type(error).__name__}: {error}).\n" + OFFLINE_HELP
        ) from None


def warn_without_eval_set() -> None:
    """The API alone needs no evaluation set, but its workers do: say so where it is seen."""
    settings = get_settings()
    path = settings.eval_set or settings.default_eval_set
    if not path.is_file():
        click.echo(
            f"Warning: no evaluation set at {path}. Uploads will queue, but workers sharing "
            "this data folder stop until it is there.\n" + OFFLINE_HELP,
            err=True,
        )


def build_cifar10(path: Path, *, split: str, count: int | None) -> Path:
    """Download CIFAR-10 and write ``path``; the archive is kept under ARENA_HOME for next time."""
    from worker.data import download_cifar10

    settings = get_settings()
    return download_cifar10(path, split=split, count=count, cache=settings.home / "cifar10-cache")
