"""Whether a task message still waits in the broker.

Redis usually keeps nothing on disk, and kombu's SQLAlchemy transport never makes the
message of a SIGKILLed worker visible again, so the database, not the broker, says what must
run; this module lets the reconciler see which queued submissions the broker has lost.
"""

import json
from typing import Any

from celery import Celery
from sqlalchemy import create_engine, text

from server.state.broker import sqlalchemy_database

QUEUE = "celery"


def waiting_task_ids(app: Celery) -> set[str] | None:
    """Ids of task messages waiting for delivery, or None if the transport is not supported."""
    if str(app.conf.broker_url).startswith("redis"):
        return _redis_ids(app)
    database = sqlalchemy_database(app.conf)
    return None if database is None else _sqla_ids(database)


def _task_id(raw: Any) -> str | None:
    try:
        message = json.loads(raw)
        return message.get("headers", {}).get("id") or message.get("properties", {}).get("correlation_id")
    except (ValueError, AttributeError, TypeError):
        return None


def _redis_ids(app: Celery) -> set[str]:
    with app.connection_for_write() as connection:
        # A Redis URL: kombu's Redis channel, which holds its client (not on the generic type).
        client = connection.default_channel.client  # type: ignore[attr-defined]
        items = client.lrange(QUEUE, 0, -1)
        for priority in range(1, 10):  # kombu's priority sub-queues
            items += client.lrange(f"{QUEUE}\x06\x16{priority}", 0, -1)
    return {task_id for raw in items if (task_id := _task_id(raw))}


def _sqla_ids(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = connection.dialect.get_table_names(connection)
            if "kombu_message" not in tables:
                return set()
            rows = connection.execute(
                text("SELECT payload FROM kombu_message WHERE visible = :visible"),
                {"visible": True},
            )
            return {task_id for (payload,) in rows if (task_id := _task_id(payload))}
    finally:
        engine.dispose()
