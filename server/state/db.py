"""Database engines and sessions.

SQLite (the embedded default) is opened in WAL mode with a busy timeout so that the API and
the workers, separate processes, can share it. Sessions that may write begin with
``BEGIN IMMEDIATE``: a transaction that read first and then tried to write could otherwise
fail at once with "database is locked" when another process wrote in between. Read-only
sessions (the GET routes) begin deferred, so readers never wait for each other.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from server.state.config import get_settings


class Base(DeclarativeBase):
    pass


def _configure_sqlite(engine: Engine, *, write: bool) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        # pysqlite's own implicit BEGIN is switched off; SQLAlchemy's transactions map onto
        # real SQLite transactions, which writers open with the write lock already held.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@lru_cache
def engine_for(url: str, write: bool = True) -> Engine:
    if url.startswith("sqlite"):
        # One connection per request thread (FastAPI runs sync routes on 40): never queue.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=40,
        )
        _disable_pysqlite_transactions(engine)
        _configure_sqlite(engine, write=write)
        return engine
    if not write:
        return engine_for(url, True)  # PostgreSQL's row locks need no second engine
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=30)


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
def _session_factory(url: str, write: bool) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url, write), expire_on_commit=False)


def new_session(write: bool = True) -> Session:
    get_engine()
    return _session_factory(get_settings().resolved_database_url, write)()


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
    """FastAPI dependency: one read-only session per request."""
    session = new_session(write=False)
    try:
        yield session
    finally:
        session.close()


def get_write_db() -> Iterator[Session]:
    """FastAPI dependency: one session per request that changes the database."""
    session = new_session(write=True)
    try:
        yield session
    finally:
        session.close()
