"""Static audit of the pickle inside a checkpoint: never unpickles, only reads opcodes.

Loading a pickle runs whatever its GLOBAL/STACK_GLOBAL/INST opcodes import and its REDUCE,
NEWOBJ and OBJ opcodes call. The audit reads the opcodes with ``pickletools.genops`` and
decides three things, stated in the first section below:

- every imported name is in ``ALLOWED_GLOBALS`` (tensor rebuild functions, storage types,
  dtypes, OrderedDict, numpy scalars: a subset of what torch's weights-only unpickler loads);
- every call targets an imported name (so, an allowed one), never a value built at load time;
- no name is computed at load time, and the copyreg extension registry is never used.

The second section is bookkeeping only: an abstract stack that follows the pickle machine
just far enough to know which strings STACK_GLOBAL takes its names from and what a call
targets. It enforces the hard bounds of ``models.checkpoints.limits`` as it goes: pickle size and the
length any one opcode declares (checked before reading), opcode count, memo entries, stack
size, nesting (open MARKs) and a time budget. Anything refused gets a message saying how to
save a state_dict instead.
"""

import _compat_pickle
import io
import pickletools
from collections.abc import Iterator
from typing import Any, BinaryIO

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

HOW_TO_SAVE = (
    "Save only the weights (a state_dict) and pick the architecture from the zoo:\n"
    '    torch.save(model.state_dict(), "model.pth")\n'
    "A custom architecture can be uploaded as a torch.export archive (.pt2) instead."
)

# --- the decisions ------------------------------------------------------------------------

_STORAGES = (
    "Float Double Half BFloat16 Long Int Short Char Byte Bool ComplexFloat ComplexDouble "
    "QUInt8 QInt8 QInt32 QUInt4x2 QUInt2x4"
).split()
_DTYPES = (
    "float16 float32 float64 bfloat16 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool "
    "complex64 complex128 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz"
).split()

ALLOWED_GLOBALS: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch._tensor._rebuild_from_type_v2",
        "torch.nn.parameter.Parameter",
        "torch.Tensor",
        "torch.Size",
        "torch.device",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "_codecs.encode",
        "builtins.set",
        "builtins.complex",
        "builtins.bytearray",
        "numpy.dtype",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
    | {f"torch.{kind}Storage" for kind in _STORAGES}
    | {f"torch.{dtype}" for dtype in _DTYPES}
)
"""Every name a checkpoint of weights may import. Each is also allowed by torch's weights-only
unpickler (the numpy names through the loader's ``safe_globals``); a test checks it."""


def _check_callee(callee: object) -> None:
    """A call (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ) must target an imported name, which the
    ``ALLOWED_GLOBALS`` check then vets; anything else was built while loading."""
    if not isinstance(callee, _Global):
        raise CheckpointError(
            "Refused: the checkpoint's pickle calls something that is not a plain imported "
            "function, which a file of weights never needs.\n" + HOW_TO_SAVE
        )


def _computed_name() -> CheckpointError:
    return CheckpointError(
        "Refused: the checkpoint's pickle computes the name of what it imports at load time, "
        "which only code smuggled into a file does.\n" + HOW_TO_SAVE
    )


def _extension_registry() -> CheckpointError:
    return CheckpointError(
        "Refused: the checkpoint's pickle imports through the copyreg extension registry.\n" + HOW_TO_SAVE
    )


def audit_pickle(data: bytes | BinaryIO, budget: Budget | None = None) -> list[str]:
    """Raise CheckpointError unless one pickle imports only ``ALLOWED_GLOBALS`` and stays
    within the bounds of ``models.checkpoints.limits``. Returns the names it imports. Never unpickles."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    names = referenced_globals(stream, budget or Budget())
    refused = [name for name in names if name not in ALLOWED_GLOBALS]
    if refused:
        raise CheckpointError(refusal_message(refused[0], len(set(refused))))
    return names


# Wording only: these choose how a refusal is explained, never whether a name is refused.
_SYSTEM_MODULES = frozenset(
    "os posix nt subprocess sys builtins shutil socket importlib runpy pickle _pickle marshal "
    "ctypes code codeop pty webbrowser operator functools types io _io pathlib tempfile "
    "copyreg".split()
)


def _reads_like_a_pickled_model(target: str) -> bool:
    """Wording only: a class from torch.nn, torchvision or the team's own code (capitalised)."""
    module, _, name = target.rpartition(".")
    if module.split(".")[0] in _SYSTEM_MODULES:
        return False
    return module.startswith(("torch.nn.", "torchvision.")) or name[:1].isupper()


def refusal_message(target: str, count: int) -> str:
    """The message for a pickle that imports ``target`` (and ``count - 1`` more refused names)."""
    more = f" (and {count - 1} more)" if count > 1 else ""
    if _reads_like_a_pickled_model(target):
        return (
            "This checkpoint is a pickled Python object, not a state_dict: loading it would "
            f"import `{target}`{more}, i.e. run code from the file. It looks like a whole "
            "model saved with torch.save(model, ...).\n" + HOW_TO_SAVE
        )
    return (
        f"Refused: loading this checkpoint would import and run `{target}`{more}. A checkpoint "
        "may hold only tensors and plain containers (dict, list, tuple, numbers, strings).\n" + HOW_TO_SAVE
    )


# --- the bookkeeping ----------------------------------------------------------------------

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


def _qualified(module: str, name: str) -> str:
    """The name as Python 3 imports it (protocol 0-2 pickles may use Python 2 names)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _refuse_bound(what: str, limit: int) -> CheckpointError:
    return CheckpointError(
        f"Refused: the checkpoint's pickle has more than {limit:,} {what}; a file of weights "
        "needs far fewer.\n" + HOW_TO_SAVE
    )


def _malformed(detail: str) -> CheckpointError:
    return CheckpointError(f"The checkpoint's pickle is corrupt or truncated ({detail}).")


class _BoundedSource:
    """The stream as ``pickletools.genops`` reads it: a read past ``MAX_PICKLE_BYTES`` is
    refused before it happens, so a tiny file declaring a 50 GiB object allocates nothing."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._left = MAX_PICKLE_BYTES

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            raise self._too_long(size)
        data = self._stream.read(size)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._stream.readline(self._left + 1)
        if len(line) > self._left:
            raise self._too_long(len(line))
        self._left -= len(line)
        return line

    def _too_long(self, size: int) -> CheckpointError:
        if size > MAX_PICKLE_BYTES:
            return CheckpointError(
                f"Refused: the checkpoint's pickle declares an object of {size:,} bytes, above "
                f"the limit of {MAX_PICKLE_BYTES:,} (its tensors belong outside the pickle)."
            )
        return CheckpointError(
            f"Refused: the checkpoint's pickle is longer than {MAX_PICKLE_BYTES:,} bytes; a "
            "file of weights keeps its tensors outside the pickle.\n" + HOW_TO_SAVE
        )


def bounded_opcodes(stream: BinaryIO, budget: Budget) -> Iterator[tuple[pickletools.OpcodeInfo, Any]]:
    """The opcodes of one pickle (up to its STOP) and their arguments, within the byte bound
    and the ``budget`` of opcodes and time. Raises CheckpointError for a malformed pickle."""
    opcodes = pickletools.genops(_BoundedSource(stream))
    count = 0
    try:
        for opcode, arg, _ in opcodes:
            count += 1
            if count > budget.opcodes:
                raise _refuse_bound("opcodes", MAX_OPCODES)
            if count % CHECK_EVERY == 0:
                budget.check()
            yield opcode, arg
    except (ValueError, EOFError) as error:  # genops: unknown opcode, truncated argument
        if isinstance(error, CheckpointError):
            raise
        raise _malformed(str(error)) from None
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
            raise _refuse_bound("values on its stack at once", MAX_STACK)
        self.stack.append(value)

    def mark(self) -> None:
        if self.marks >= MAX_NESTING:
            raise _refuse_bound("levels of nesting", MAX_NESTING)
        self.marks += 1
        self.push(_MARK)

    def pop(self, count: int, opcode: str) -> list[object]:
        if count > len(self.stack):
            raise _malformed(f"{opcode} on a short stack")
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
        raise _malformed(f"{opcode} needs a MARK that is missing")

    def memoize(self, index: int, opcode: str) -> None:
        if not self.stack:
            raise _malformed(f"{opcode} on an empty stack")
        if index not in self.memo and len(self.memo) >= MAX_MEMO:
            raise _refuse_bound("memo entries", MAX_MEMO)
        self.memo[index] = self.stack[-1]

    def recall(self, index: int) -> None:
        if index not in self.memo:
            raise _malformed("it reads an unset memo slot")
        self.push(self.memo[index])

    def imported(self, opcode: str, arg: Any) -> str:
        """Push what GLOBAL, STACK_GLOBAL or INST imports (INST also calls it); its name."""
        if opcode == "STACK_GLOBAL":
            module, attr = self.pop(2, opcode)
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise _computed_name()
        else:
            module, _, attr = str(arg).partition(" ")
        target = _qualified(str(module), str(attr))
        if opcode == "INST":
            self.pop_to_mark(opcode)
            self.push(_UNKNOWN)
        else:
            self.push(_Global(target))
        return target

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
                raise _malformed("DUP on an empty stack")
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


def referenced_globals(stream: BinaryIO, budget: Budget | None = None) -> list[str]:
    """Every name one pickle would import, in order, read from the opcodes of ``stream``.

    Reads exactly one pickle (up to its STOP). Raises CheckpointError for a malformed pickle,
    one past a bound, a name computed at load time, or a call whose target is not an
    imported name.
    """
    machine = _Machine()
    found: list[str] = []
    for opcode, arg in bounded_opcodes(stream, budget or Budget()):
        name = opcode.name
        if name in _IMPORTS:
            found.append(machine.imported(name, arg))
        elif name in _CALLS:
            _check_callee(machine.call(name))
        elif name in _EXTENSIONS:
            raise _extension_registry()
        else:
            machine.step(opcode, arg)
    return found
