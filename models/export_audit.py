"""Static audit of a ``torch.export`` archive (.pt2) before ``torch.export.load`` sees it.

``torch.export.load`` is not safe on untrusted files as it stands: it unpickles weights and
constants (``torch.load(weights_only=False)``, ``pickle.loads``), loads AOTInductor shared
libraries, evaluates every ``expr_str`` of the graph with ``sympy.sympify`` (an ``eval``),
compiles ``guards_code`` into Python, and resolves node targets by ``getattr`` from ``torch``
(``torch.os.system`` resolves). This audit accepts only what a plain exported network needs:

- entries of the known layout, weights and tensor constants as raw bytes (no pickled payloads,
  no custom or opaque objects, no compiled code), sample inputs that pass the pickle audit;
- one program, ``models/model.json``, whose node targets are ATen/prims operators (plus a few
  arithmetic helpers), whose symbolic expressions use only a tiny arithmetic grammar, with no
  guards code and no custom-object values;
- one image input ``(N, 3, 32, 32)`` whose batch dimension is dynamic.

Standard library only; nothing is unpickled, evaluated or imported.
"""

import json
import re
import zipfile
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from models.archives import audit_torch_zip, open_checked_zip, read_entry
from models.errors import CheckpointError

HOW_TO_EXPORT = (
    "Export with a dynamic batch dimension and nothing but tensors:\n"
    "    model.eval()\n"
    '    batch = torch.export.Dim("batch", min=1, max=4096)\n'
    "    program = torch.export.export(model, (torch.rand(2, 3, 32, 32),),\n"
    '                                  dynamic_shapes={"x": {0: batch}})\n'
    '    torch.export.save(program, "model.pt2")\n'
    '(replace "x" by the name of your forward\'s input).'
)

MAX_JSON_BYTES = 256 * 2**20
MIN_BATCH = 1024

_FIXED_ENTRIES = frozenset(
    {
        "archive_format",
        "archive_version",
        "byteorder",
        "version",
        ".data/version",
        ".data/serialization_id",
        ".format_version",
        ".storage_alignment",
    }
)
_ENTRY_PATTERNS = (
    re.compile(r"models/model\.json"),
    re.compile(r"data/weights/model_weights_config\.json"),
    re.compile(r"data/weights/weight_\d+"),
    re.compile(r"data/constants/model_constants_config\.json"),
    re.compile(r"data/constants/tensor_\d+"),
    re.compile(r"data/sample_inputs/model\.pt"),
    re.compile(r"extra/[A-Za-z0-9_.\-]+"),
)
_TARGETS = (
    re.compile(r"torch\.ops\.(aten|prims)\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+"),
    re.compile(
        r"torch\.ops\.higher_order\."
        r"(cond|while_loop|map_impl|wrap_with_set_grad_enabled|wrap_with_autocast)"
    ),
    re.compile(
        r"_operator\.(getitem|add|sub|mul|truediv|floordiv|mod|neg|pos|abs|pow|eq|ne|lt|le|gt"
        r"|ge|and_|or_|not_)"
    ),
    re.compile(r"torch\.sym_(max|min|float|int|not|ite|sqrt|sum)"),
    re.compile(r"math\.(ceil|floor|trunc|sqrt)"),
)
_EXPR_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z][A-Za-z0-9]*)|(?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"|(?P<string>'[A-Za-z]+\d*')|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),=<>&|~!]))"
)
_EXPR_WORDS = frozenset(
    "positive negative nonnegative nonpositive integer real finite infinite zero nonzero "
    "even odd rational commutative oo zoo nan floor ceiling sqrt".split()
)
_SYMBOL = re.compile(r"[a-z]+\d+")
_CAMEL = re.compile(r"[A-Z][A-Za-z0-9]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _refuse(reason: str) -> CheckpointError:
    return CheckpointError(f"Refused torch.export archive: {reason}\n{HOW_TO_EXPORT}")


def audit_export_archive(archive: zipfile.ZipFile) -> None:
    """Raise CheckpointError unless ``archive`` is a plain, safe torch.export program."""
    names = archive.namelist()
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or any("/" not in name for name in names):
        raise _refuse("expected every entry under one top folder, as torch.export.save writes.")
    root = roots.pop() + "/"
    entries = {name[len(root) :] for name in names if not name.endswith("/")}
    for entry in sorted(entries):
        if entry in _FIXED_ENTRIES or any(p.fullmatch(entry) for p in _ENTRY_PATTERNS):
            continue
        raise _refuse(f"it contains {entry!r}, {_describe_entry(entry)}")
    if read_entry(archive, root + "archive_format", 64).strip() != b"pt2":
        raise _refuse("its archive_format entry does not say pt2.")
    if "models/model.json" not in entries:
        raise _refuse("it holds no program named 'model' (models/model.json).")
    for config in (
        "data/weights/model_weights_config.json",
        "data/constants/model_constants_config.json",
    ):
        if config in entries:
            _audit_payload_config(archive, root, config, entries)
    if "data/sample_inputs/model.pt" in entries:
        sample = read_entry(archive, root + "data/sample_inputs/model.pt")
        if sample:
            try:
                audit_torch_zip(open_checked_zip(BytesIO(sample)))
            except CheckpointError as error:
                reason = str(error).splitlines()[0]
                raise _refuse(f"its sample inputs are not plain tensors. {reason}") from None
    program = _load_json(archive, root + "models/model.json")
    _audit_program(program)


def _describe_entry(entry: str) -> str:
    if "custom_obj_" in entry or "opaque_obj_" in entry:
        return "a pickled custom or opaque object; only tensors are accepted."
    if entry.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")):
        return "compiled code (AOTInductor/ExecuTorch), which would run as it loads."
    if entry.endswith(".pt") or entry.endswith(".pkl"):
        return "a pickled payload (an old torch.export layout, or hand-made)."
    return "which torch.export.save does not write for a plain network."


def _load_json(archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(read_entry(archive, name, MAX_JSON_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(f"{name.split('/', 1)[1]} is not valid JSON.") from None


def _audit_payload_config(archive, root: str, config: str, entries: set[str]) -> None:
    folder, _, _ = config.rpartition("/")
    payload = _load_json(archive, root + config)
    items = payload.get("config") if isinstance(payload, dict) else None
    if not isinstance(items, dict):
        raise _refuse(f"{config} is not a payload configuration.")
    prefix = "weight_" if folder.endswith("weights") else "tensor_"
    for fqn, meta in items.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(
                f"{fqn!r} is stored as a pickle (a tensor subclass or an object); "
                "export plain tensors only."
            )
        path = meta.get("path_name")
        if not (isinstance(path, str) and re.fullmatch(prefix + r"\d+", path)):
            raise _refuse(f"{fqn!r} points at {path!r}, which is not a raw tensor file.")
        if f"{folder}/{path}" not in entries:
            raise _refuse(f"{fqn!r} points at {path!r}, which the archive lacks.")


def _walk(value: Any) -> Iterator[tuple[str, Any, dict]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                yield key, child, item
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _audit_program(program: Any) -> None:
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _refuse("models/model.json is not an exported program.")
    if program.get("guards_code"):
        raise _refuse("it carries guards code, which would be compiled into Python on load.")
    for key, value, parent in _walk(program):
        if (key == "target" and "inputs" in parent) or key == "as_operator":
            if not (isinstance(value, str) and any(t.fullmatch(value) for t in _TARGETS)):
                raise _refuse(f"it calls {value!r}; only ATen operators are accepted.")
        elif key == "expr_str":
            _audit_expression(value)
        elif key == "as_custom_obj" or (key == "custom_obj_values" and value):
            raise _refuse("it uses custom (torchbind) objects; only tensors are accepted.")
        elif key == "name" and "target" in parent:
            if not (isinstance(value, str) and _IDENTIFIER.fullmatch(value)):
                raise _refuse(f"it has a node named {value!r}, which is not an identifier.")
    _audit_input(program["graph_module"], program.get("range_constraints") or {})


def _audit_expression(text: Any) -> None:
    """Symbolic shapes are parsed with ``sympy.sympify`` (an eval): allow only arithmetic on
    shape symbols (``s0``, ``u1``), numbers and capitalised sympy/torch function names."""
    if not isinstance(text, str) or len(text) > 10_000:
        raise _refuse("a symbolic shape expression is not a short string.")
    position = 0
    while position < len(text):
        match = _EXPR_TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip() == "":
                break
            raise _refuse(f"a symbolic shape expression is not plain arithmetic: {text[:80]!r}")
        name = match.group("name")
        if name and not (name in _EXPR_WORDS or _SYMBOL.fullmatch(name) or _CAMEL.fullmatch(name)):
            raise _refuse(f"a symbolic shape expression uses {name!r}: {text[:80]!r}")
        position = match.end()


def _audit_input(graph_module: dict, ranges: Any) -> None:
    signature = graph_module.get("signature") or {}
    graph = graph_module.get("graph") or {}
    user_inputs = [
        spec["user_input"].get("arg", {})
        for spec in signature.get("input_specs", [])
        if isinstance(spec, dict) and "user_input" in spec
    ]
    if len(user_inputs) != 1 or "as_tensor" not in user_inputs[0]:
        raise _refuse(f"its forward takes {len(user_inputs)} inputs; expected one image batch.")
    name = user_inputs[0]["as_tensor"].get("name")
    sizes = (graph.get("tensor_values", {}).get(name) or {}).get("sizes", [])
    if len(sizes) != 4:
        raise _refuse("its input is not a 4-d (N, 3, 32, 32) image batch.")
    fixed = [size.get("as_int") for size in sizes[1:]]
    if fixed != [3, 32, 32]:
        shape = ", ".join(map(str, fixed))
        raise _refuse(f"its input has shape (N, {shape}); expected (N, 3, 32, 32).")
    if "as_int" in sizes[0]:
        raise _refuse(
            f"its batch dimension is fixed to {sizes[0]['as_int']}; the platform evaluates "
            "batches of other sizes."
        )
    symbol = re.search(r"[a-z]+\d+", str((sizes[0].get("as_expr") or {}).get("expr_str", "")))
    bounds = ranges.get(symbol.group(0)) if symbol and isinstance(ranges, dict) else None
    if isinstance(bounds, dict):
        low, high = bounds.get("min_val"), bounds.get("max_val")
        if (isinstance(low, int) and low > 1) or (isinstance(high, int) and high < MIN_BATCH):
            raise _refuse(
                f"its batch dimension only accepts sizes {low}..{high}; "
                f"allow 1..{MIN_BATCH} at least."
            )
