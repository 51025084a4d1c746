"""Sending evaluation ids to the workers.

The API queues by task name, so the web process never imports the worker, torch or the
engine. Only the id travels: the worker re-reads everything else from the database.
"""

import uuid
from functools import lru_cache
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from server.state.broker import celery_broker
from server.state.config import Settings, get_settings
from server.state.lifecycle import mark_queued

# The task's name from when submissions were the unit of work: messages already in a broker
# carry a submission id, and the migration gave each migrated evaluation its submission's id.
EVALUATE_TASK = "worker.tasks.evaluate_submission"


def broker_options(settings: Settings) -> dict[str, Any]:
    """Transport options shared by the API's client and the workers."""
    # Redis hands an unacknowledged task to a second worker after visibility_timeout: keep it
    # above the longest evaluation; leases settle any race that remains. (The SQLAlchemy
    # transport passes its options to create_engine, which takes none of these.)
    if not settings.resolved_broker_url.startswith("redis"):
        return {}
    return {"visibility_timeout": int(settings.hard_time_limit + 600)}


def make_client(settings: Settings) -> Celery:
    if settings.broker_url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    app = Celery("arena-api")
    app.conf.update(**celery_broker(settings.resolved_broker_url))
    app.conf.broker_transport_options = broker_options(settings)
    app.conf.broker_connection_retry_on_startup = True
    return app


@lru_cache
def _client(broker_url: str) -> Celery:
    return make_client(get_settings())


def enqueue(session: Session, evaluation_id: int, app: Celery | None = None) -> str | None:
    """Mark the evaluation queued, then send its id; returns the Celery task id.

    The row is committed as queued (with the task id it is about to get) before the message
    leaves, so a worker that receives it at once can always claim it. Returns None, sending
    nothing, when the evaluation is no longer waiting (running elsewhere, or ended). If this process dies in
    between, the reconciler finds the queued row missing from the broker and sends it again.
    """
    task_id = str(uuid.uuid4())
    if not mark_queued(session=session, evaluation_id=evaluation_id, task_id=task_id):
        return None  # a worker holds it already, or it ended
    client = app or _client(get_settings().resolved_broker_url)
    client.send_task(EVALUATE_TASK, args=[evaluation_id], task_id=task_id)
    return task_id
