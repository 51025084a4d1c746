"""Database engine and sessions.

SQLite (the embedded default) is opened in WAL mode with a busy timeout so that the API and
the workers, separate processes, can write to it at the same time.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from server.config import get_settings


class Base(DeclarativeBase):
    pass


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
        # pysqlite's own implicit BEGIN is switched off so that SQLAlchemy's transactions map
        # onto real SQLite transactions; writers start with an UPDATE to take the lock first.
        conn.exec_driver_sql("BEGIN")


@lru_cache
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is off).
        _disable_pysqlite_transactions(engine)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _disable_pysqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None


def get_engine() -> Engine:
    settings = get_settings()
    if settings.database_url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.resolved_database_url)


@lru_cache
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


def new_session() -> Session:
    get_engine()
    return _session_factory(get_settings().resolved_database_url)()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_db() -> Iterator[Session]:
    """FastAPI dependency: one session per request."""
    session = new_session()
    try:
        yield session
    finally:
        session.close()
