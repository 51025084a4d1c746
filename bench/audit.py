"""What the static audit costs on the worst uploads under the default size limit (200 MiB).

    .venv/bin/python bench/audit.py [--keep DIR]

Builds hostile files, each aimed at one bound of ``models/checkpoints/limits.py`` (just inside it, where
the audit does the most work, or far past it, as an attack would), and times
``models.checkpoints.inspection.inspect_checkpoint`` on each in a fresh subprocess (the API's process
imports no torch either): wall time, and peak memory as the growth of the child's peak
resident set (``VmHWM`` in ``/proc/self/status``) over its size once the audit's modules are
imported.
Goal: every file audited, accepted or refused, in under 2 s and 200 MB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.checkpoints.limits import (  # noqa: E402
    MAX_ENTRIES,
    MAX_JSON_BYTES,
    MAX_MEMO,
    MAX_NESTING,
    MAX_OPCODES,
    MAX_PICKLE_BYTES,
    MAX_RATIO,
)

GOAL_SECONDS = 2.0
GOAL_MB = 200
UPLOAD_LIMIT = 200 * 2**20

PROTO, NONE, POP, MARK, TUPLE, MEMOIZE, STOP = b"\x80\x04", b"N", b"0", b"(", b"t", b"\x94", b"."

CHILD = """
import json, sys, time
from pathlib import Path
from models.checkpoints.errors import CheckpointError
from models.checkpoints.inspection import inspect_checkpoint

def peak_kb():  # this process's own high-water mark (ru_maxrss would include the parent's)
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])

before = peak_kb()
start = time.perf_counter()
try:
    outcome = "accepted: " + inspect_checkpoint(Path(sys.argv[1]))
except CheckpointError as error:
    outcome = "refused: " + str(error).splitlines()[0]
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": (peak_kb() - before) / 1024, "outcome": outcome}))
"""


def torch_zip(data_pkl: bytes, compression: int = zipfile.ZIP_DEFLATED, extra: int = 0) -> bytes:
    """A torch.save-shaped zip archive around ``data_pkl`` (plus ``extra`` stored bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression, compresslevel=9) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/version", b"3\n")
        if extra:
            archive.writestr("archive/data/0", b"\x00" * extra, zipfile.ZIP_STORED)
    return buffer.getvalue()


def opcodes(count: int) -> bytes:
    pairs = (count - 3) // 2
    return PROTO + (NONE + POP) * pairs + NONE + STOP


def memo_and_recall(count: int) -> bytes:
    """The memo filled to its bound, then recalled until the opcode bound: the most memory the
    walk itself can hold."""
    recalls = (count - MAX_MEMO - 3) // 2
    return PROTO + NONE + MEMOIZE * (MAX_MEMO - 1) + (b"h\x01" + POP) * recalls + NONE + STOP


def incompressible(pattern: bytes, count: int, every: int) -> bytes:
    """``pattern`` ``count`` times with a BINPUT of a random slot after every ``every``-th, so
    that deflate cannot shrink it past the ratio bound (as the reported attack did)."""
    rng = random.Random(0)
    chunk = pattern * every
    return b"".join(chunk + b"q" + bytes([rng.randrange(256)]) for _ in range(count // every))


def sprinkled(size: int) -> bytes:
    """Zeros with one random byte in every 160: deflates at a ratio just under 100."""
    rng = random.Random(0)
    data = bytearray(size)
    for position in range(0, size, 160):
        data[position] = rng.randrange(256)
    return bytes(data)


def nesting() -> bytes:
    return PROTO + MARK * MAX_NESTING + TUPLE * MAX_NESTING + STOP


def largest_string() -> bytes:
    size = MAX_PICKLE_BYTES - 64
    return PROTO + b"\x8d" + size.to_bytes(8, "little") + b"a" * size + STOP  # BINUNICODE8


def declared_50_gib() -> bytes:
    data = PROTO + b"\x8e" + (50 * 2**30).to_bytes(8, "little")  # BINBYTES8
    return data + b"\x00" * (117 - len(data))


def legacy_stream() -> bytes:
    """The pre-zip torch format: magic number, protocol, system info, then two big pickles."""
    import pickle

    from models.checkpoints.inspection import LEGACY_MAGIC

    head = pickle.dumps(LEGACY_MAGIC, 2) + pickle.dumps(1001, 2) + pickle.dumps({}, 2)
    return head + opcodes(MAX_OPCODES * 6 // 10) * 2


def many_entries() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", opcodes(10))
        for index in range(MAX_ENTRIES - 2):
            archive.writestr(f"archive/data/{index}", b"")
    return buffer.getvalue()


def exported_program(path: Path, edit: Callable[[dict], bytes | dict]) -> bytes:
    """A tiny network exported by the recipe, with its model.json rewritten by ``edit``."""
    import torch

    from tests.models.helpers import TinyNet, export_to

    torch.manual_seed(0)
    source = export_to(TinyNet(), path)
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    name = next(name for name in entries if name.endswith("models/model.json"))
    edited = edit(json.loads(entries[name]))
    entries[name] = edited if isinstance(edited, bytes) else json.dumps(edited).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return buffer.getvalue()


def long_graph(program: dict) -> dict:
    """The graph padded with ReLU nodes, each on the previous, up to the JSON size bound."""
    nodes = program["graph_module"]["graph"]["nodes"]
    relu = next(node for node in nodes if node["target"].endswith("relu.default"))
    position = nodes.index(relu)
    template = json.dumps(relu)
    count = int(MAX_JSON_BYTES * 0.97) // (len(template) + 16)
    previous = relu["outputs"][0]["as_tensor"]["name"]
    padding = []
    for index in range(count):
        node = json.loads(template)
        node["name"] = f"pad_{index}"
        node["inputs"][0]["arg"]["as_tensor"]["name"] = previous
        node["outputs"][0]["as_tensor"]["name"] = previous = f"pad_{index}"
        padding.append(node)
    nodes[position + 1 : position + 1] = padding
    return program


STORED = zipfile.ZIP_STORED

CASES: dict[str, Callable[[Path], bytes]] = {
    "memo bomb: 25 M MEMOIZE, deflate ratio < 100": lambda tmp: torch_zip(
        PROTO + NONE + incompressible(MEMOIZE, 25_000_000, 20) + STOP
    ),
    "12 M incompressible opcodes": lambda tmp: torch_zip(
        PROTO + NONE + incompressible(b"", 12_000_000, 1) + STOP
    ),
    f"opcodes at the bound ({MAX_OPCODES:,})": lambda tmp: torch_zip(opcodes(MAX_OPCODES), STORED),
    "memo full, then recalled to the opcode bound": lambda tmp: torch_zip(
        memo_and_recall(MAX_OPCODES), STORED
    ),
    f"nesting at the bound ({MAX_NESTING})": lambda tmp: torch_zip(nesting(), STORED),
    "largest allowed object (32 MiB string)": lambda tmp: torch_zip(largest_string(), STORED),
    "declared 50 GiB object (117 bytes)": lambda tmp: declared_50_gib(),
    f"32 MiB pickle deflated at ratio < {MAX_RATIO}": lambda tmp: torch_zip(
        PROTO
        + b"\x8e"
        + (MAX_PICKLE_BYTES - 64).to_bytes(8, "little")
        + sprinkled(MAX_PICKLE_BYTES - 64)
        + STOP
    ),
    "200 MiB stored checkpoint (tensor data beside a small pickle)": lambda tmp: torch_zip(
        opcodes(1000), STORED, extra=UPLOAD_LIMIT - 2**20
    ),
    f"zip of {MAX_ENTRIES:,} entries": lambda tmp: many_entries(),
    "legacy stream, two pickles of 0.6 x the opcode bound": lambda tmp: legacy_stream(),
    f".pt2 whose graph fills the JSON bound ({MAX_JSON_BYTES // 2**20} MiB)": lambda tmp: exported_program(
        tmp / "long.pt2", long_graph
    ),
    ".pt2 with 200 000 levels of nesting": lambda tmp: exported_program(
        tmp / "deep.pt2", lambda _: b"[" * 200_000 + b"]" * 200_000
    ),
}


def measure(path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="arena-audit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (name, build) in enumerate(CASES.items()):
        path = folder / f"case{index}.bin"
        path.write_bytes(build(folder))
        figures = measure(path)
        met = figures["seconds"] < GOAL_SECONDS and figures["peak_mb"] < GOAL_MB
        rows.append(
            (
                name,
                f"{path.stat().st_size / 2**20:.2f}",
                f"{figures['seconds']:.3f}",
                f"{figures['peak_mb']:.0f}",
                "yes" if met else "NO",
                figures["outcome"][:70],
            )
        )
        if not args.keep:
            path.unlink()
        print(" | ".join(rows[-1]), flush=True)
    headers = ("upload", "MiB", "audit s", "peak MB", "goal met", "outcome")
    print()
    print(table(headers, rows))
    print(f"\nGoal: each under {GOAL_SECONDS:g} s and {GOAL_MB} MB. Load average: {os.getloadavg()}")


def table(headers, rows) -> str:
    cells = [list(headers)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
