"""The hard bounds of the static audit: what one upload may cost the API before it is refused.

Every bound is a count checked as the audit goes, so a hostile file is refused with a reason
before it costs more; the time budget is a last resort against a slow host, never the first
line. Opcodes and time are counted for the whole file (the legacy format holds several
pickles); the other bounds hold for each pickle or member.
Together they keep the worst upload under the default size limit (200 MiB) to about a second
and well under 200 MB of memory (``bench/audit.py`` measures it). Real checkpoints stay far
below every bound: a WRN-34-10 state_dict's pickle is about 30 KB and 7,500 opcodes, the
LWTA network's exported program 0.8 MB of JSON.
"""

import time

from models.checkpoints.errors import CheckpointError

MAX_PICKLE_BYTES = 32 * 2**20
"""One pickle (a zip's data.pkl, or each pickle of the legacy format), and any one object in
it: a declared length above this is refused before anything is read or allocated."""
MAX_OPCODES = 500_000
MAX_MEMO = 100_000
MAX_STACK = 20_000
"""Values on the pickle stack at once (``pickle`` pushes up to 1,000 items per batch)."""
MAX_NESTING = 100
"""Containers under construction at once (open MARKs): how deep a pickle nests its data."""

MAX_JSON_BYTES = 8 * 2**20
"""The program of a .pt2 archive (models/model.json): ten times the LWTA network's."""
MAX_CONFIG_BYTES = 2 * 2**20
"""Each weight or constant configuration of a .pt2 archive (the LWTA network's: 88 KB)."""
MAX_JSON_DEPTH = 64
MAX_SAFETENSORS_HEADER = 16 * 2**20

MAX_UNPACKED_BYTES = 2 * 2**30
"""All entries of a zip archive together, as declared by its directory."""
MAX_ENTRY_BYTES = 1 * 2**30
MAX_ENTRIES = 10_000
MAX_RATIO = 100

TIME_BUDGET_S = 2.0
CHECK_EVERY = 4096
"""How many steps (opcodes, JSON values) pass between two looks at the clock."""


class Budget:
    """What one audit may still spend, whatever number of pickles or JSON members the file
    holds: ``opcodes`` pickle opcodes in all, and ``seconds`` of time, which ``check``
    (called every ``CHECK_EVERY`` steps) enforces by refusing the file once spent."""

    def __init__(self, seconds: float = TIME_BUDGET_S, opcodes: int = MAX_OPCODES) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.opcodes = opcodes

    def check(self) -> None:
        if time.monotonic() >= self.end:
            raise CheckpointError(
                f"Refused: checking this file took longer than {self.seconds:g} s, which no "
                "checkpoint of weights needs."
            )
