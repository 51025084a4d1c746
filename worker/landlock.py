"""Landlock, through its three system calls: a process confines itself to the paths it names.

Unprivileged and inherited by everything the process executes; available on Linux 5.13+
when the kernel enables it. ``restrict`` allows reading (and executing) beneath ``read``,
everything beneath ``write``, and nothing else of the file system; from ABI 4 on it also
forbids TCP bind and connect, from ABI 6 on signals and abstract UNIX sockets outside the
sandbox. See Documentation/userspace-api/landlock.rst in the kernel.
"""

import ctypes
import os
import stat
from collections.abc import Iterable

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_MAKE_AND_REMOVE = sum(1 << bit for bit in range(4, 13))  # remove/make dir, reg, sock, sym...
REFER, TRUNCATE = 1 << 13, 1 << 14
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE
READ = EXECUTE | READ_FILE | READ_DIR
_NET_TCP = 0b11  # bind, connect
_SCOPED = 0b11  # abstract UNIX sockets, signals


class _Ruleset(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: object) -> int:
    result = _libc.syscall(number, *args)
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is absent or disabled."""
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except OSError:
        return 0


def _handled_fs(version: int) -> int:
    rights = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _MAKE_AND_REMOVE
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    return rights


def restrict(*, read: Iterable[str | int], write: Iterable[str], devices: Iterable[str] = ()) -> int:
    """Confine this process (needs no_new_privs); returns the ABI used. ``read`` takes paths
    or open descriptors (exactly that file); paths that do not exist are skipped;
    ``devices`` may be read and written (``/dev``), not created."""
    version = abi()
    if version < 1:
        raise OSError("Landlock is not available on this kernel")
    handled = _handled_fs(version)
    attr = _Ruleset(handled, _NET_TCP if version >= 4 else 0, _SCOPED if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24
    ruleset = _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    try:
        for paths, allowed in ((read, READ), (devices, READ | WRITE_FILE), (write, handled)):
            for path in paths:
                _allow(ruleset, path, allowed & handled)
        _syscall(_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    return version


def _allow(ruleset: int, path: str | int, allowed: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC) if isinstance(path, str) else os.dup(path)
    except OSError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            allowed &= _FILE_ONLY
        rule = _PathBeneath(allowed, fd)
        _syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(fd)
