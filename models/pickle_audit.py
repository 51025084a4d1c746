"""Static audit of the pickle inside a checkpoint: never unpickles, only reads opcodes.

Loading a pickle runs whatever its GLOBAL/STACK_GLOBAL/INST opcodes import and its REDUCE,
NEWOBJ and OBJ opcodes call. The audit walks the opcodes with ``pickletools.genops``, tracks the
stack abstractly (enough to resolve the strings STACK_GLOBAL takes its names from), and accepts
the pickle only if every imported name is in ``ALLOWED_GLOBALS`` (tensor rebuild functions,
storage types, dtypes, OrderedDict, numpy scalars) and every call targets such a name. Anything
else — a pickled ``nn.Module``, a ``__reduce__`` payload, a name computed at load time, the
copyreg extension registry — is refused with a message saying how to save a state_dict instead.
"""

import _compat_pickle
import io
import pickletools
from typing import BinaryIO

from models.errors import CheckpointError

HOW_TO_SAVE = (
    "Save only the weights (a state_dict) and pick the architecture from the zoo:\n"
    '    torch.save(model.state_dict(), "model.pth")\n'
    "A custom architecture can be uploaded as a torch.export archive (.pt2) instead."
)

_STORAGES = (
    "Float Double Half BFloat16 Long Int Short Char Byte Bool ComplexFloat ComplexDouble "
    "QUInt8 QInt8 QInt32 QUInt4x2 QUInt2x4"
).split()
_DTYPES = (
    "float16 float32 float64 bfloat16 half float double int8 int16 int32 int64 uint8 uint16 "
    "uint32 uint64 bool complex64 complex128 cfloat cdouble long int short "
    "float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz"
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
        "builtins.frozenset",
        "builtins.complex",
        "builtins.bytearray",
        "numpy.dtype",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
    | {f"torch.{kind}Storage" for kind in _STORAGES}
    | {f"torch.{dtype}" for dtype in _DTYPES}
)

_CALLS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ"})
_STRINGS = frozenset(
    {
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
    }
)
_DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "builtins",
        "shutil",
        "socket",
        "importlib",
        "runpy",
        "pickle",
        "_pickle",
        "marshal",
        "ctypes",
        "code",
        "codeop",
        "pty",
        "webbrowser",
        "operator",
        "functools",
        "types",
        "io",
        "_io",
        "pathlib",
        "tempfile",
        "copyreg",
        "__main__",
    }
)


class _Mark:
    pass


class _Global(str):
    """A stack value that is an imported name (what REDUCE and friends may call)."""


_MARK = _Mark()
_UNKNOWN = object()


def _qualified(module: str, name: str) -> str:
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _pop_to_mark(stack: list) -> None:
    while stack:
        if stack.pop() is _MARK:
            return
    raise CheckpointError("the pickle is malformed (an opcode needs a MARK that is missing)")


def referenced_globals(stream: BinaryIO) -> list[str]:
    """Every name one pickle would import, in order, read from the opcodes of ``stream``.

    Reads exactly one pickle (up to its STOP). Raises CheckpointError for a malformed pickle, a
    name that is computed at load time, or a call whose target is not an imported name.
    """
    stack: list = []
    memo: dict[int, object] = {}
    found: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                target = _qualified(module, attr)
                found.append(target)
                if name == "INST":
                    _pop_to_mark(stack)
                    stack.append(_UNKNOWN)
                else:
                    stack.append(_Global(target))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise CheckpointError(
                        "Refused: the checkpoint's pickle computes the name of what it imports "
                        "at load time, which only code smuggled into a file does.\n" + HOW_TO_SAVE
                    )
                target = _qualified(str(module), str(attr))
                found.append(target)
                stack.append(_Global(target))
            elif name in ("EXT1", "EXT2", "EXT4"):
                raise CheckpointError(
                    "Refused: the checkpoint's pickle imports through the copyreg extension "
                    "registry.\n" + HOW_TO_SAVE
                )
            elif name in _CALLS:
                _check_call(name, stack)
            elif name in _STRINGS:
                stack.append(str(arg))
            elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if int(arg) not in memo:
                    raise CheckpointError("the pickle is malformed (it reads an unset memo slot)")
                stack.append(memo[int(arg)])
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "MARK":
                stack.append(_MARK)
            else:
                _generic_effect(opcode, stack)
    except CheckpointError:
        raise
    except (ValueError, IndexError, EOFError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"The checkpoint's pickle is corrupt or truncated ({error})."
        ) from None
    return found


def _check_call(name: str, stack: list) -> None:
    if name == "OBJ":
        index = len(stack) - 1
        while index >= 0 and stack[index] is not _MARK:
            index -= 1
        target = stack[index + 1] if 0 <= index < len(stack) - 1 else _UNKNOWN
        _pop_to_mark(stack)
    else:
        arguments = 2 if name == "NEWOBJ_EX" else 1
        if len(stack) < arguments + 1:
            raise CheckpointError(f"the pickle is malformed ({name} on a short stack)")
        target = stack[-arguments - 1]
        del stack[-arguments - 1 :]
    if not isinstance(target, _Global):
        raise CheckpointError(
            "Refused: the checkpoint's pickle calls something that is not a plain imported "
            "function, which a file of weights never needs.\n" + HOW_TO_SAVE
        )
    stack.append(_UNKNOWN)


def _generic_effect(opcode: pickletools.OpcodeInfo, stack: list) -> None:
    before = opcode.stack_before
    if pickletools.markobject in before:
        _pop_to_mark(stack)
        pops = before.index(pickletools.markobject)
    else:
        pops = len(before)
    if pops > len(stack):
        raise CheckpointError(f"the pickle is malformed ({opcode.name} on a short stack)")
    if pops:
        del stack[-pops:]
    stack.extend(_UNKNOWN for _ in opcode.stack_after)


def _looks_like_module(target: str) -> bool:
    module, _, name = target.rpartition(".")
    if module.split(".")[0] in _DANGEROUS_MODULES and module != "__main__":
        return False
    return module.startswith(("torch.nn.", "torchvision.")) or name[:1].isupper()


def refusal_message(target: str, count: int) -> str:
    """The message for a pickle that imports ``target`` (and ``count - 1`` more refused names)."""
    more = f" (and {count - 1} more)" if count > 1 else ""
    if _looks_like_module(target):
        return (
            "This checkpoint is a pickled Python object, not a state_dict: loading it would "
            f"import `{target}`{more}, i.e. run code from the file. It looks like a whole "
            "model saved with torch.save(model, ...).\n" + HOW_TO_SAVE
        )
    return (
        f"Refused: loading this checkpoint would import and run `{target}`{more}. A checkpoint "
        "may hold only tensors and plain containers (dict, list, tuple, numbers, strings).\n"
        + HOW_TO_SAVE
    )


def audit_pickle(data: bytes | BinaryIO) -> list[str]:
    """Raise CheckpointError unless one pickle imports only ``ALLOWED_GLOBALS``.

    Returns the names it imports. Never unpickles.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    names = referenced_globals(stream)
    refused = [name for name in names if name not in ALLOWED_GLOBALS]
    if refused:
        raise CheckpointError(refusal_message(refused[0], len(set(refused))))
    return names
