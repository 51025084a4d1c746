"""Celery tasks: thin wrappers that take a submission id and call plain functions."""

from server.queue import EVALUATE_TASK
from worker.celery_app import app
from worker.runner import run_submission


@app.task(name=EVALUATE_TASK, acks_late=True, reject_on_worker_lost=True)
def evaluate_submission(submission_id: int) -> str:
    """Evaluate one submission; safe to receive twice (the lease decides who runs it)."""
    return run_submission(submission_id)
