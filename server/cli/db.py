"""``arena db``: the database schema."""

import click


@click.group()
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
