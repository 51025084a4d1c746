"""``arena team``: create (one or a CSV batch), list and revoke teams."""

import json
from pathlib import Path
from typing import Any

import click


@click.group()
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
    raw = _names_from_csv(csv_file) if name is None else [name]
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

    from sqlalchemy import String

    from server.state.tables import Team

    column_type = Team.__table__.c.name.type
    assert isinstance(column_type, String) and column_type.length is not None  # String(100)
    longest = column_type.length
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
