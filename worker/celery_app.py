"""The Celery application of the workers.

Tasks are acknowledged late and rejected (so redelivered) when their worker process dies;
one task at a time per worker, since an evaluation fills a GPU. A worker asked to stop
(SIGTERM, SIGINT) does not wait for a running evaluation, which can take hours: it kills the
child and gives the submission back to the queue, uncharged, within seconds.
"""

from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from server.state.broker import celery_broker
from server.state.config import get_settings
from server.state.queue import broker_options
from worker import forking, runner


def create_celery() -> Celery:
    settings = get_settings()
    if settings.broker_url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    app = Celery("arena", include=["worker.tasks"])
    app.conf.update(
        **celery_broker(settings.resolved_broker_url),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        accept_content=["json"],  # messages carry submission ids, never pickled objects
        task_serializer="json",
    )
    return app


app = create_celery()


@worker_ready.connect
def _start_background(**_kwargs: object) -> None:
    from worker.presence import Presence
    from worker.reconciler import Reconciler

    Presence.start_background()
    Reconciler.start_background(app)


@worker_shutting_down.connect
def _stop_evaluations(**_kwargs: object) -> None:
    # Sent from the signal handler in the worker's main process, on warm and cold shutdown.
    runner.request_stop()


@worker_ready.connect
def _report_isolation(**_kwargs: object) -> None:
    # In the main thread, which outlives every evaluation: the fork server started here
    # (ready before the first task) dies with it.
    from worker.isolation import log_layers

    settings = get_settings()
    log_layers(settings.sandbox_user, "This worker's evaluation", runner.forkserver(settings))


@worker_shutdown.connect
def _stop_background(**_kwargs: object) -> None:
    from worker.presence import Presence
    from worker.reconciler import Reconciler

    Reconciler.stop_background()
    Presence.stop_background()
    forking.stop_shared()
