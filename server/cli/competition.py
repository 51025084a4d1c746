"""``arena competition``: create a competition from a YAML bundle, list them, show one; the
organiser's moderation commands (server/cli/moderation.py) and end-of-competition commands
(publish, finals, rerun: server/cli/finals.py) join the group.

A bundle is a YAML file in the shape of ``POST /api/competitions`` (docs/competition.yaml),
whose phases' ``eval_set`` are paths relative to the bundle's folder: each set is checked to
load as an evaluation set and copied into ARENA_HOME/sets/ under its file name, where the
workers will read it.
"""

import hashlib
import os
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from server.cli import finals, moderation
from server.state.config import get_settings


@click.group()
def competition() -> None:
    """Create, list and show competitions; hide submissions and disqualify teams; publish,
    follow and rejudge final results."""


for _command in [*moderation.COMMANDS, *finals.COMMANDS]:
    competition.add_command(_command)


@competition.command("create")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def competition_create(bundle: Path) -> None:
    """Create the competition BUNDLE (YAML) defines, copying its evaluation sets into place."""
    from server.state import competition_spec, competitions
    from server.state.db import session_scope
    from server.state.migrate import upgrade

    settings = get_settings()
    raw = _read_bundle(bundle)
    sources = _set_sources(raw, bundle.parent)
    try:
        spec = competition_spec.CompetitionSpec.model_validate(raw)
    except ValidationError as error:
        raise click.ClickException(f"{bundle}: {explain(error)}") from None
    upgrade()
    with session_scope() as session:
        if competitions.get_competition(session, spec.slug) is not None:
            raise click.ClickException(f"A competition with slug {spec.slug!r} already exists.")
    folder = competition_spec.sets_dir(settings.home)
    for phase, source in zip(spec.phases, sources, strict=True):
        _check_eval_set(source, phase.name)
        _install_set(source, folder / phase.eval_set)
    with session_scope() as session:
        try:
            created = competitions.create_competition(session, spec, settings.home, settings=settings)
        except competition_spec.CompetitionError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"Competition {created.slug!r} created (id {created.id}); sets in {folder}.")


@competition.command("list")
def competition_list() -> None:
    """List competitions: slug, title, suite and the phase open now."""
    from server.state import competitions
    from server.state.db import session_scope
    from server.state.tables import utcnow

    now = utcnow()
    with session_scope() as session:
        for each in competitions.list_competitions(session):
            phase = competitions.current_phase(each, now)
            state = f"{phase.name} open" if phase is not None else "closed"
            click.echo(f"{each.slug}\t{each.title}\t{each.suite}\t{state}")


@competition.command("show")
@click.argument("slug")
def competition_show(slug: str) -> None:
    """Show one competition with its phases (the private set's name included)."""
    from server.state import competition_spec, competitions
    from server.state.db import session_scope
    from server.state.tables import utcnow

    now = utcnow()
    with session_scope() as session:
        found = competitions.get_competition(session, slug)
        if found is None:
            raise click.ClickException(f"No competition {slug!r}.")
        reveal = competition_spec.iso_utc(found.reveal_at) if found.reveal_at else "when published"
        click.echo(f"{found.slug}: {found.title}")
        click.echo(f"suite {found.suite}, score {found.score}")
        click.echo(
            f"quotas: {found.submissions_per_day} per day, {found.max_active_per_team} active; "
            f"final selections: {found.final_selections}; results revealed {reveal}"
        )
        current = competitions.current_phase(found, now)
        for phase in found.phases:
            window = competitions.phase_window(found, phase)
            if window is None:
                dates = "never opens"
            else:
                start, end = (competition_spec.iso_utc(t) if t else "…" for t in window)
                dates = f"{start} to {end}"
            marker = "  (open now)" if phase is current else ""
            place = phase.position + 1
            click.echo(f"  {place}. {phase.name} [{phase.kind}] {phase.eval_set}: {dates}{marker}")
        click.echo(competitions.accepts_uploads(found, now)[1])
        if found.description:
            click.echo("")
            click.echo(found.description)


def explain(error: ValidationError) -> str:
    """Pydantic's errors as one line each: where, then what."""
    lines = []
    for each in error.errors():
        where = ".".join(str(part) for part in each["loc"])
        message = str(each["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "\n".join(lines)


def _read_bundle(bundle: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(bundle.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise click.ClickException(f"Cannot read {bundle}: {error}") from None
    if not isinstance(raw, dict):
        raise click.ClickException(f"{bundle} must be a YAML mapping (slug, title, ..., phases).")
    return raw


def _set_sources(raw: dict[str, Any], folder: Path) -> list[Path]:
    """Each phase's set, relative to the bundle's folder; the definition keeps its file name."""
    sources = []
    phases = raw.get("phases")
    for phase in phases if isinstance(phases, list) else []:
        if isinstance(phase, dict) and isinstance(phase.get("eval_set"), str):
            source = folder / phase["eval_set"]
            phase["eval_set"] = source.name
            sources.append(source)
        else:
            sources.append(folder)  # the definition's validation refuses this phase first
    return sources


def _check_eval_set(source: Path, phase: str) -> None:
    from worker.data import EvalSetError, load_eval_set

    try:
        load_eval_set(source)
    except (EvalSetError, OSError, ValueError) as error:
        raise click.ClickException(f"Phase {phase!r}: {source} is not an evaluation set: {error}") from None


def _install_set(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target``; the same file already there is fine, another is refused."""
    if target.exists():
        if _sha256(target) == _sha256(source):
            return
        raise click.ClickException(
            f"{target} already exists with other content; a set's name is kept once used: "
            f"rename {source.name} in the bundle."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(source.read_bytes())
    try:
        os.link(partial, target)  # fails rather than replace a file that appeared meanwhile
    except FileExistsError:
        if _sha256(target) != _sha256(source):
            raise click.ClickException(f"{target} appeared meanwhile with other content.") from None
    except OSError:  # a file system without hard links
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
