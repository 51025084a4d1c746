"""Uploaded checkpoints on disk.

Files are stored under a random name in the upload folder; the client's file name is kept
only as display text, so no request can choose a path.
"""

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


class UploadTooLarge(Exception):
    pass


@dataclass(frozen=True)
class StoredFile:
    name: str
    path: Path
    sha256: str
    size: int


def store_upload(source: BinaryIO, *, folder: Path, max_bytes: int, suffix: str) -> StoredFile:
    """Copy ``source`` into ``folder`` chunk by chunk, hashing it and stopping past ``max_bytes``."""
    folder.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(16) + suffix
    path = folder / name
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("xb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StoredFile(name=name, path=path, sha256=digest.hexdigest(), size=size)


def safe_suffix(filename: str | None) -> str:
    """The extension the loader needs (.pth, .safetensors, .pt2...), from a fixed list only."""
    lowered = (filename or "").lower()
    for suffix in (".safetensors", ".pt2", ".pth", ".pt", ".th", ".bin", ".tar", ".ckpt"):
        if lowered.endswith(suffix):
            return suffix
    return ".pth"


def display_name(filename: str | None) -> str:
    """The client's file name reduced to printable text for display (never used as a path)."""
    text = (filename or "checkpoint").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:255] or "checkpoint"


def upload_path(folder: Path, stored_name: str) -> Path:
    return folder / stored_name
