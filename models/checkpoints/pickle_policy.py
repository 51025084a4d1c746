"""What a checkpoint's pickle may import and call: the security decisions of the pickle audit.

Loading a pickle runs whatever its GLOBAL/STACK_GLOBAL/INST opcodes import and its REDUCE,
NEWOBJ, NEWOBJ_EX and OBJ opcodes call. The audit (``models.checkpoints.pickle_audit``) lets
a pickle through only if

- every name it imports passes ``may_import``: it is in ``ALLOWED_GLOBALS`` (tensor rebuild
  functions, storage types, dtypes, OrderedDict, numpy scalars: a subset of what torch's
  weights-only unpickler loads);
- every call passes ``may_call``: it targets an imported name (so, an allowed one), never a
  value built at load time.

A name the audit cannot read from the file itself (computed at load time, or looked up in the
copyreg extension registry of the loading process) cannot be vetted, so the walker
(``models.checkpoints.pickle_machine``) refuses it outright. Nothing here reads opcodes or
words a message.
"""

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


def may_import(module: str, name: str) -> bool:
    """Whether a pickle may import ``name`` from ``module`` (as Python 3 names them)."""
    return f"{module}.{name}" in ALLOWED_GLOBALS


def may_call(imported_as: str | None) -> bool:
    """Whether a pickle may call a callable: only one it imported (``imported_as``, its
    qualified name), never one built while loading (``None``: a call's result, a string, a
    container). Whether that import is allowed is ``may_import``'s to say. The arguments play
    no part: torch's weights-only unpickler, which loads the file, also vets only the callable."""
    return imported_as is not None
