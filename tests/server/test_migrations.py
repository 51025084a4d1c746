"""The Alembic migrations build exactly the schema the code declares (server/state/tables.py)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from server.state import tables  # noqa: F401  (registers the tables on Base.metadata)
from server.state.db import Base, get_engine


def test_migrated_database_matches_the_tables(settings_env):
    # settings_env ran every migration on this test's database (SQLite, or PostgreSQL in CI).
    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "a change to server/state/tables.py needs a migration: " + repr(differences)
