"""Zip archives opened defensively: the directory is checked before anything is read.

A zip bomb declares small compressed sizes and enormous uncompressed ones; ``zipfile`` never
yields more than an entry's declared size, so checking the declared sizes first bounds the
memory and time any later read can take.
"""

import zipfile
from typing import BinaryIO

from models.errors import CheckpointError
from models.pickle_audit import audit_pickle

MAX_UNPACKED_BYTES = 8 * 2**30
MAX_ENTRY_BYTES = 256 * 2**20
MAX_ENTRIES = 100_000
MAX_RATIO = 100


def open_checked_zip(source: BinaryIO) -> zipfile.ZipFile:
    """Open a zip archive whose directory passes the zip-bomb limits, or raise CheckpointError."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
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
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise CheckpointError(f"Refused: the archive entry {name!r} is {info.file_size} bytes.")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise CheckpointError(f"The archive entry {name!r} is damaged ({error}).") from None


def audit_torch_zip(archive: zipfile.ZipFile) -> None:
    """Audit the one pickle of a ``torch.save`` zip archive (opened by ``open_checked_zip``)."""
    pickles = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(
            "This zip archive is not a PyTorch checkpoint (it needs exactly one data.pkl). "
            "Upload the file written by torch.save(model.state_dict(), ...)."
        )
    data = read_entry(archive, pickles[0])
    if not data:
        raise CheckpointError("The checkpoint's data.pkl is empty: the file is damaged.")
    audit_pickle(data)
