"""Schema migrations with Alembic, driven from code (``arena db upgrade``)."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from server.state.competitions import ensure_default_at_start
from server.state.config import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    settings = get_settings()
    if url is None and settings.database_url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url or settings.resolved_database_url)
    return config


def upgrade(url: str | None = None) -> None:
    """Bring the database schema to the newest revision (idempotent), then the competition
    ``default`` in step with the settings (every start runs this)."""
    command.upgrade(alembic_config(url), "head")
    ensure_default_at_start(url)
