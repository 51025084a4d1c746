"""The platform's state, shared by the API, the workers and the command line.

Settings, the database and its tables, the operations on them (``teams``, ``submissions``,
``lifecycle`` for every state change of a submission, ``workers``), the queue, the stored
uploads, the ranking and the wait estimates. Nothing here imports the web layer
(``server.api``, ``server.web``) or the worker's runtime (Celery app, runner, sandbox); of the
worker package only the engine's torch-free protocol definitions.
"""
