"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, polled ten times a second."""

from pathlib import Path

from server.state.broker import POLL_SECONDS, TRANSPORT, celery_broker
from server.state.config import Settings
from server.state.queue import EVALUATE_TASK, make_client
from worker.broker_contents import waiting_task_ids


def test_sqlalchemy_urls_get_the_prompt_transport_and_others_stay_as_they_are():
    assert celery_broker("sqla+sqlite:////data/broker.db") == {
        "broker_url": "sqlite:////data/broker.db",
        "broker_transport": TRANSPORT,
    }
    assert celery_broker("redis://127.0.0.1:6379/0") == {"broker_url": "redis://127.0.0.1:6379/0"}


def test_the_embedded_broker_polls_ten_times_a_second_and_delivers_what_was_sent(tmp_path: Path):
    settings = Settings(home=tmp_path / "home", broker_url=None)
    app = make_client(settings)
    app.send_task(EVALUATE_TASK, args=[7], task_id="task-7")
    # What the reconciler sees waiting in the broker's database.
    assert waiting_task_ids(app) == {"task-7"}
    with app.connection_for_read() as connection:
        assert connection.transport.polling_interval == POLL_SECONDS < 1  # kombu's own: 1 s
        queue = connection.SimpleQueue("celery")
        message = queue.get(timeout=10)
        assert message.headers["id"] == "task-7" and message.headers["task"] == EVALUATE_TASK
        message.ack()
        queue.close()
    assert waiting_task_ids(app) == set()
    assert (tmp_path / "home" / "broker.db").exists()
