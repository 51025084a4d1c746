"""unique team name key, ignoring case and Unicode form

Existing teams get their key in creation order; a look-alike of an earlier team keeps a NULL
key (the unique index allows several) and is listed by `arena db upgrade`, not renamed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _key(name: str) -> str:
    # The same as server/state/names.py's name_key, frozen here as this migration applied it.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=400), nullable=True))
    connection = op.get_bind()
    teams = sa.table(
        "teams",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("name_key", sa.String),
    )
    seen: set[str] = set()
    rows = connection.execute(sa.select(teams.c.id, teams.c.name).order_by(teams.c.id))
    for team_id, name in rows.all():
        key = _key(name)
        if key in seen:
            continue  # a look-alike of an earlier team: kept, listed, no key
        seen.add(key)
        connection.execute(teams.update().where(teams.c.id == team_id).values(name_key=key))
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teams_name_key"), ["name_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_name_key"))
        batch_op.drop_column("name_key")
