"""Celery tasks: thin wrappers that take an evaluation id and call plain functions."""

from celery.exceptions import Reject

from server.state.queue import EVALUATE_TASK
from worker import runner
from worker.celery_app import app


@app.task(name=EVALUATE_TASK, acks_late=True, reject_on_worker_lost=True)
def evaluate(evaluation_id: int) -> str:
    """Run one evaluation; safe to receive twice (the lease decides who runs it)."""
    if runner.stopping.is_set():
        # Delivered while this worker shuts down: leave the message for the next worker.
        raise Reject("the worker is stopping", requeue=True)
    return runner.run_evaluation(evaluation_id)
