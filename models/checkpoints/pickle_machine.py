"""The pickle machine, followed abstractly: which names a pickle imports, without unpickling.

Bookkeeping only: the opcodes come from ``pickletools.genops``, and an abstract stack and memo
follow the pickle machine just far enough to know which strings STACK_GLOBAL takes its names
from and what each call targets. The security decisions are asked of
``models.checkpoints.pickle_policy`` (``may_call`` here, as each call is met; ``may_import`` by
``models.checkpoints.pickle_audit`` once the walk is done). A name that cannot be read from the
file (computed at load time, or an EXT opcode's registry code) is refused, since nothing could
vet it.

The walk enforces the hard bounds of ``models.checkpoints.limits`` as it goes: pickle size and
the length any one opcode declares (checked before reading), opcode count, memo entries, stack
size, nesting (open MARKs) and a time budget.
"""

import _compat_pickle
import pickletools
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from models.checkpoints import pickle_messages as messages
from models.checkpoints.errors import CheckpointError
from models.checkpoints.limits import (
    CHECK_EVERY,
    MAX_MEMO,
    MAX_NESTING,
    MAX_OPCODES,
    MAX_PICKLE_BYTES,
    MAX_STACK,
    Budget,
)
from models.checkpoints.pickle_policy import may_call

_IMPORTS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})
_CALLS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ"})
_EXTENSIONS = frozenset({"EXT1", "EXT2", "EXT4"})
_STRINGS = frozenset(
    "UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 STRING BINSTRING SHORT_BINSTRING".split()
)
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


class _Global(str):
    """A stack value that is an imported name (what REDUCE and friends may call)."""


class _Mark:
    """The MARK pushed by MARK, which OBJ, TUPLE, APPENDS and friends pop back to."""


_MARK = _Mark()
_UNKNOWN = object()


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The name as Python 3 imports it (protocol 0-2 pickles may use Python 2 names)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return module, name


class _BoundedSource:
    """The stream as ``pickletools.genops`` reads it: a read past ``MAX_PICKLE_BYTES`` is
    refused before it happens, so a tiny file declaring a 50 GiB object allocates nothing."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._left = MAX_PICKLE_BYTES

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            raise messages.too_long(size)
        data = self._stream.read(size)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._stream.readline(self._left + 1)
        if len(line) > self._left:
            raise messages.too_long(len(line))
        self._left -= len(line)
        return line


def bounded_opcodes(stream: BinaryIO, budget: Budget) -> Iterator[tuple[pickletools.OpcodeInfo, Any]]:
    """The opcodes of one pickle (up to its STOP) and their arguments, within the byte bound
    and the ``budget`` of opcodes and time. Raises CheckpointError for a malformed pickle."""
    # genops reads with read() and readline() only, which is all _BoundedSource offers.
    opcodes = pickletools.genops(cast(BinaryIO, _BoundedSource(stream)))
    count = 0
    try:
        for opcode, arg, _ in opcodes:
            count += 1
            if count > budget.opcodes:
                raise messages.over_bound("opcodes", MAX_OPCODES)
            if count % CHECK_EVERY == 0:
                budget.check()
            yield opcode, arg
    except (ValueError, EOFError) as error:  # genops: unknown opcode, truncated argument
        if isinstance(error, CheckpointError):
            raise
        raise messages.malformed(str(error)) from None
    finally:
        budget.opcodes -= count


class _Machine:
    """The pickle machine's stack and memo, abstractly: values are strings (candidate names),
    imported names, MARKs or unknown. Enforces ``MAX_STACK``, ``MAX_NESTING``, ``MAX_MEMO``."""

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}
        self.marks = 0

    def push(self, value: object) -> None:
        if len(self.stack) >= MAX_STACK:
            raise messages.over_bound("values on its stack at once", MAX_STACK)
        self.stack.append(value)

    def mark(self) -> None:
        if self.marks >= MAX_NESTING:
            raise messages.over_bound("levels of nesting", MAX_NESTING)
        self.marks += 1
        self.push(_MARK)

    def pop(self, count: int, opcode: str) -> list[object]:
        if count > len(self.stack):
            raise messages.malformed(f"{opcode} on a short stack")
        if count == 0:
            return []
        popped = self.stack[-count:]
        del self.stack[-count:]
        if _MARK in popped:
            self.marks -= popped.count(_MARK)
        return popped

    def pop_to_mark(self, opcode: str) -> list[object]:
        """The values above the topmost MARK, which is removed too."""
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] is _MARK:
                above = self.stack[index + 1 :]
                del self.stack[index:]
                self.marks -= 1
                return above
        raise messages.malformed(f"{opcode} needs a MARK that is missing")

    def memoize(self, index: int, opcode: str) -> None:
        if not self.stack:
            raise messages.malformed(f"{opcode} on an empty stack")
        if index not in self.memo and len(self.memo) >= MAX_MEMO:
            raise messages.over_bound("memo entries", MAX_MEMO)
        self.memo[index] = self.stack[-1]

    def recall(self, index: int) -> None:
        if index not in self.memo:
            raise messages.malformed("it reads an unset memo slot")
        self.push(self.memo[index])

    def imported(self, opcode: str, arg: Any) -> tuple[str, str]:
        """Push what GLOBAL, STACK_GLOBAL or INST imports (INST also calls it); its
        (module, name)."""
        if opcode == "STACK_GLOBAL":
            module, attr = self.pop(2, opcode)
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise messages.computed_name()
        else:
            module, _, attr = str(arg).partition(" ")
        module, attr = _python3_name(str(module), str(attr))
        if opcode == "INST":
            self.pop_to_mark(opcode)
            self.push(_UNKNOWN)
        else:
            self.push(_Global(f"{module}.{attr}"))
        return module, attr

    def call(self, opcode: str) -> object:
        """Apply a call opcode; returns its target (the callable it would call)."""
        if opcode == "OBJ":
            above = self.pop_to_mark(opcode)
            callee = above[0] if above else _UNKNOWN
        else:
            callee = self.pop(3 if opcode == "NEWOBJ_EX" else 2, opcode)[0]
        self.push(_UNKNOWN)
        return callee

    def step(self, opcode: pickletools.OpcodeInfo, arg: Any) -> None:
        """Every other opcode: only its effect on the stack and memo matters."""
        name = opcode.name
        if name in _STRINGS:
            self.push(str(arg))
        elif name == "MEMOIZE":
            self.memoize(len(self.memo), name)
        elif name in _PUTS:
            self.memoize(int(arg), name)
        elif name in _GETS:
            self.recall(int(arg))
        elif name == "DUP":
            if not self.stack:
                raise messages.malformed("DUP on an empty stack")
            self.push(self.stack[-1])
        elif name == "MARK":
            self.mark()
        else:
            to_mark, pops, pushes = _EFFECTS[name]
            if to_mark:
                self.pop_to_mark(name)
            if pops:
                self.pop(pops, name)
            for _ in range(pushes):
                self.push(_UNKNOWN)


def _effect(opcode: pickletools.OpcodeInfo) -> tuple[bool, int, int]:
    """(pops to a MARK first, values popped, values pushed) as ``pickletools`` documents."""
    before = opcode.stack_before
    if pickletools.markobject in before:
        return True, before.index(pickletools.markobject), len(opcode.stack_after)
    return False, len(before), len(opcode.stack_after)


_EFFECTS = {opcode.name: _effect(opcode) for opcode in pickletools.opcodes}


def imported_names(stream: BinaryIO, budget: Budget | None = None) -> list[tuple[str, str]]:
    """Every (module, name) one pickle would import, in order, read from the opcodes of
    ``stream``; whether each may be imported is left to the caller.

    Reads exactly one pickle (up to its STOP). Raises CheckpointError for a malformed pickle,
    one past a bound, a name computed at load time, or a call ``may_call`` refuses.
    """
    machine = _Machine()
    found: list[tuple[str, str]] = []
    for opcode, arg in bounded_opcodes(stream, budget or Budget()):
        name = opcode.name
        if name in _IMPORTS:
            found.append(machine.imported(name, arg))
        elif name in _CALLS:
            callee = machine.call(name)
            if not may_call(callee if isinstance(callee, _Global) else None):
                raise messages.refused_call()
        elif name in _EXTENSIONS:
            raise messages.extension_registry()
        else:
            machine.step(opcode, arg)
    return found
