"""Static audit of the pickle inside a checkpoint: never unpickles, only reads opcodes.

Three parts, read in this order:

- ``models.checkpoints.pickle_policy``: the decisions, ``ALLOWED_GLOBALS`` and
  ``may_import``/``may_call``;
- ``models.checkpoints.pickle_machine``: the walk over the opcodes, an abstract stack and memo
  that find every imported name and call target, within the bounds of
  ``models.checkpoints.limits``;
- ``models.checkpoints.pickle_messages``: the wording of every refusal (wording only).

``audit_pickle`` puts them together: the walk refuses a bad call, a name it cannot read, a
malformed pickle or one past a bound as soon as it meets it; the imports are vetted once the
walk is done, so that the refusal can count every refused name.
"""

import io
from typing import BinaryIO

from models.checkpoints.errors import CheckpointError
from models.checkpoints.limits import Budget
from models.checkpoints.pickle_machine import imported_names
from models.checkpoints.pickle_messages import refused_import_message
from models.checkpoints.pickle_policy import ALLOWED_GLOBALS, may_import

__all__ = ["ALLOWED_GLOBALS", "audit_pickle"]


def audit_pickle(data: bytes | BinaryIO, budget: Budget | None = None) -> list[str]:
    """Raise CheckpointError unless one pickle imports only what ``may_import`` allows and
    stays within the bounds of ``models.checkpoints.limits``. Returns the names it imports
    (``module.name``). Never unpickles."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    imports = imported_names(stream, budget or Budget())
    refused = [f"{module}.{name}" for module, name in imports if not may_import(module, name)]
    if refused:
        raise CheckpointError(refused_import_message(refused[0], len(set(refused))))
    return [f"{module}.{name}" for module, name in imports]
