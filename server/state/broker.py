"""Which Celery broker settings a broker URL gives, for the API's client and the workers alike.

kombu's SQLAlchemy transport (``sqla+`` URLs, the embedded default on a SQLite file) looks for
new messages once a second, and its ``polling_interval`` option cannot be set: the transport
passes every option to ``create_engine``, which refuses it. Such URLs go to ``Transport``
below, the same transport polling ten times a second, so a queued evaluation waits a tenth of
a second for its worker rather than up to a second.
"""

from typing import Any

from kombu.transport import sqlalchemy

#: Seconds between two looks at an empty SQLAlchemy queue (kombu's default: 1).
POLL_SECONDS = 0.1
#: The name Celery's ``broker_transport`` setting gives ``Transport``.
TRANSPORT = f"{__name__}:Transport"


class Transport(sqlalchemy.Transport):
    """kombu's SQLAlchemy transport, polling every ``POLL_SECONDS``."""

    polling_interval = POLL_SECONDS


def celery_broker(url: str) -> dict[str, Any]:
    """Celery's ``broker_url`` and, for a ``sqla+`` URL, ``broker_transport`` (the prompt
    transport, on the URL's database)."""
    if url.startswith("sqla+"):
        return {"broker_url": url.removeprefix("sqla+"), "broker_transport": TRANSPORT}
    return {"broker_url": url}


def sqlalchemy_database(conf: Any) -> str | None:
    """The database URL of a Celery app's SQLAlchemy broker (``conf`` is ``app.conf`` of an app
    configured by ``celery_broker``), or None."""
    return str(conf.broker_url) if conf.broker_transport == TRANSPORT else None
