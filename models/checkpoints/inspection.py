"""Static inspection of an uploaded checkpoint: which format it is, and whether it is safe.

Standard library only (the web server calls it without torch) and never unpickles: pickles are
read opcode by opcode (``models.checkpoints.pickle_audit``), zip archives through their directory, with the
declared sizes checked before anything is decompressed, and torch.export archives by their JSON
(``models.checkpoints.export_audit``). Every refusal is a ``CheckpointError`` whose message is for the team.
"""

import json
import struct
import zipfile
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from models.checkpoints.archives import audit_torch_zip, open_checked_zip
from models.checkpoints.errors import CheckpointError
from models.checkpoints.export_audit import audit_export_archive
from models.checkpoints.limits import MAX_SAFETENSORS_HEADER, Budget
from models.checkpoints.pickle_audit import audit_pickle
from models.checkpoints.pickle_machine import bounded_opcodes
from models.checkpoints.pickle_messages import HOW_TO_SAVE


class CheckpointFormat(StrEnum):
    TORCH_ZIP = "torch-zip"
    TORCH_LEGACY = "torch-legacy"
    SAFETENSORS = "safetensors"
    TORCH_EXPORT = "torch-export"


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SAFETENSORS_DTYPES = frozenset(
    "BOOL U8 I8 U16 I16 U32 I32 U64 I64 F16 BF16 F32 F64 F8_E4M3 F8_E5M2 C64".split()
)


def inspect_checkpoint(path: Path) -> str:
    """Return the format of ``path`` ("torch-zip", "torch-legacy", "safetensors",
    "torch-export") or raise CheckpointError saying why it is refused.

    Guarantees: nothing in the file is executed or unpickled, no zip entry is decompressed
    before the archive's declared sizes pass the zip-bomb limits, the audit stays within the
    bounds of ``models.checkpoints.limits``, any malformed file raises CheckpointError and nothing else,
    and a "torch-zip" or "torch-legacy" result means every pickle in the file imports only
    tensor-rebuilding names.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError("The file is empty (0 bytes): the upload or the save did not finish.")
    budget = Budget()
    with path.open("rb") as handle:
        head = handle.read(512)
        handle.seek(0)
        try:
            return _inspect(handle, head, size, budget)
        except CheckpointError:
            raise
        except _MALFORMED as error:  # a safety net: each reader raises CheckpointError itself
            raise CheckpointError(
                f"The file is damaged or malformed ({type(error).__name__}: {error})."[:500]
            ) from None


_MALFORMED = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    EOFError,
    RecursionError,
    MemoryError,
    OverflowError,
    struct.error,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
)


def _inspect(handle: BinaryIO, head: bytes, size: int, budget: Budget) -> str:
    if head.startswith(b"PK\x03\x04"):
        return _inspect_zip(handle, budget)
    if head[:1] == b"\x80":
        _inspect_legacy(handle, budget)
        return CheckpointFormat.TORCH_LEGACY.value
    if _looks_like_safetensors(head, size):
        _inspect_safetensors(handle, size)
        return CheckpointFormat.SAFETENSORS.value
    if zipfile.is_zipfile(handle):
        return _inspect_zip(handle, budget)
    raise CheckpointError(_unknown_format_message(head))


def _unknown_format_message(head: bytes) -> str:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        preview = text.strip().splitlines()[0][:60] if text.strip() else ""
        return (
            f"This is a text file (it starts with {preview!r}), not a checkpoint. Upload the "
            "file written by torch.save(model.state_dict(), ...), a .safetensors file or a "
            "torch.export .pt2 archive."
        )
    if len(head) > 262 and head[257:262] == b"ustar":
        return (
            "This is a tar archive (the oldest torch.save format, or a packed folder). Load it "
            "with the PyTorch that wrote it and save the state_dict again.\n" + HOW_TO_SAVE
        )
    return (
        "Not a recognised checkpoint: expected a PyTorch file (torch.save), a .safetensors "
        "file or a torch.export .pt2 archive."
    )


# --- zip archives -------------------------------------------------------------------------


def _inspect_zip(handle: BinaryIO, budget: Budget) -> str:
    handle.seek(0)
    archive = open_checked_zip(handle)
    names = archive.namelist()
    if any(name.rsplit("/", 1)[-1] == "archive_format" for name in names):
        audit_export_archive(archive, budget)
        return CheckpointFormat.TORCH_EXPORT.value
    if "serialized_exported_program.json" in names:
        raise CheckpointError(
            "This torch.export archive uses the format of PyTorch 2.7 and older; export it "
            "again with a current PyTorch (see the export how-to)."
        )
    if any("/code/" in name or name.endswith("constants.pkl") for name in names):
        raise CheckpointError(
            "This is a TorchScript archive (torch.jit.save), which runs its own code. Upload "
            "the state_dict, or a torch.export .pt2 archive for a custom network.\n" + HOW_TO_SAVE
        )
    audit_torch_zip(archive, budget)
    return CheckpointFormat.TORCH_ZIP.value


# --- the legacy (non-zip) torch format ----------------------------------------------------


def _inspect_legacy(handle: BinaryIO, budget: Budget) -> None:
    """The pre-1.6 format is a stream of pickles: magic number, protocol version, system info,
    the object, storage keys, then raw storage bytes. Audit every pickle before the raw bytes."""
    if _leading_integer(handle, budget) != LEGACY_MAGIC:
        handle.seek(0)
        audit_pickle(handle, budget)
        raise CheckpointError(
            "This is a plain Python pickle, not a file written by torch.save.\n" + HOW_TO_SAVE
        )
    for _ in range(4):
        audit_pickle(handle, budget)


def _leading_integer(handle: BinaryIO, budget: Budget) -> object:
    """The integer that the first pickle of ``handle`` holds, or None if it holds more."""
    value: object = None
    try:
        for opcode, arg in bounded_opcodes(handle, budget):
            if opcode.name in ("LONG1", "LONG4", "BININT", "BININT1", "BININT2"):
                value = arg
            elif opcode.name not in ("PROTO", "FRAME", "STOP"):
                return None
    except CheckpointError:
        return None
    return value


# --- safetensors --------------------------------------------------------------------------


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    header_size = struct.unpack("<Q", head[:8])[0]
    return head[8:9] == b"{" and 2 <= header_size <= size - 8


def _inspect_safetensors(handle: BinaryIO, size: int) -> None:
    header_size = struct.unpack("<Q", handle.read(8))[0]
    if header_size > MAX_SAFETENSORS_HEADER:
        raise CheckpointError(f"Refused: the safetensors header claims {header_size} bytes.")
    try:
        header = json.loads(handle.read(header_size))
    except RecursionError:
        raise CheckpointError("Refused: the safetensors header is nested too deeply.") from None
    except ValueError:  # undecodable bytes, invalid JSON, a number of thousands of digits
        raise CheckpointError("The safetensors header is not valid JSON: the file is damaged.") from None
    if not isinstance(header, dict):
        raise CheckpointError("The safetensors header is not a JSON object: the file is damaged.")
    payload = size - 8 - header_size
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            valid = (
                dtype in SAFETENSORS_DTYPES
                and all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(begin, int)
                and isinstance(end, int)
                and 0 <= begin <= end <= payload
            )
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise CheckpointError(
                f"The safetensors entry {name!r} is damaged or truncated (its data lies outside "
                "the file, or its dtype or shape is invalid)."
            )
