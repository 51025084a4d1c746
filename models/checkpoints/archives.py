"""Zip archives opened defensively: the directory is checked before anything is read.

A zip bomb declares small compressed sizes and enormous uncompressed ones; ``zipfile`` never
yields more than an entry's declared size, so checking the declared sizes first bounds the
memory and time any later read can take: the whole archive may declare at most
``MAX_UNPACKED_BYTES`` (an absolute bound, whatever the ratio), one entry ``MAX_ENTRY_BYTES``,
a compressed entry at most ``MAX_RATIO`` times its compressed size, and a pickle or JSON member
is read only up to its own, smaller limit. Every failure of ``zipfile`` is a CheckpointError.
"""

import struct
import zipfile
from typing import BinaryIO

from models.checkpoints.errors import CheckpointError
from models.checkpoints.limits import (
    MAX_ENTRIES,
    MAX_ENTRY_BYTES,
    MAX_PICKLE_BYTES,
    MAX_RATIO,
    MAX_UNPACKED_BYTES,
    Budget,
)
from models.checkpoints.pickle_audit import audit_pickle

_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    UnicodeDecodeError,
    struct.error,
    OverflowError,
)


def open_checked_zip(source: BinaryIO) -> zipfile.ZipFile:
    """Open a zip archive whose directory passes the zip-bomb limits, or raise CheckpointError."""
    try:
        archive = zipfile.ZipFile(source)
    except _ZIP_ERRORS:
        raise CheckpointError(
            "The file is truncated: it starts like a zip archive (a PyTorch checkpoint) but its "
            "end is missing or damaged. Was the upload or the save interrupted?"
        ) from None
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError(f"Refused: the archive holds {len(infos)} entries (a zip bomb?).")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > MAX_ENTRY_BYTES:
            raise CheckpointError(
                f"Refused: the archive entry {info.filename!r} declares {info.file_size} bytes, "
                f"above the limit of {MAX_ENTRY_BYTES} for one entry (a zip bomb?)."
            )
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(
            MAX_RATIO * info.compress_size, 2**20
        ):
            raise CheckpointError(
                f"Refused: the archive entry {info.filename!r} would expand from "
                f"{info.compress_size} to {info.file_size} bytes (a zip bomb)."
            )
    if total > MAX_UNPACKED_BYTES:
        raise CheckpointError(
            f"Refused: the archive declares {total} bytes of content, above the limit of "
            f"{MAX_UNPACKED_BYTES} (a zip bomb?)."
        )
    return archive


def read_entry(archive: zipfile.ZipFile, name: str, limit: int = MAX_ENTRY_BYTES) -> bytes:
    """Read one entry whose declared size is at most ``limit``; a damaged entry is refused."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"The archive lacks the entry {name!r}.") from None
    if info.file_size > limit:
        raise CheckpointError(f"Refused: the archive entry {name!r} is {info.file_size} bytes.")
    try:
        return archive.read(info)
    except _ZIP_ERRORS as error:
        raise CheckpointError(f"The archive entry {name!r} is damaged ({error}).") from None


def audit_torch_zip(archive: zipfile.ZipFile, budget: Budget | None = None) -> None:
    """Audit the one pickle of a ``torch.save`` zip archive (opened by ``open_checked_zip``)."""
    pickles = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(
            "This zip archive is not a PyTorch checkpoint (it needs exactly one data.pkl). "
            "Upload the file written by torch.save(model.state_dict(), ...)."
        )
    data = read_entry(archive, pickles[0], MAX_PICKLE_BYTES)
    if not data:
        raise CheckpointError("The checkpoint's data.pkl is empty: the file is damaged.")
    audit_pickle(data, budget)
