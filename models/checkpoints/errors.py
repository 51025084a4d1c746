"""The one error type of checkpoint intake.

Its message is shown to the team as it is, so it says what is wrong with their file and how to
fix it, never a traceback.
"""


class CheckpointError(ValueError):
    """A checkpoint that cannot be accepted; ``str(error)`` is the message for the team."""
