"""Static audit of a ``torch.export`` archive (.pt2) before ``torch.export.load`` sees it.

``torch.export.load`` is not safe on untrusted files as it stands: it unpickles weights and
constants (``torch.load(weights_only=False)``, ``pickle.loads``), loads AOTInductor shared
libraries, evaluates every ``expr_str`` of the graph with ``sympy.sympify`` (an ``eval``),
compiles ``guards_code`` into Python, and resolves node targets by ``getattr`` from ``torch``
(``torch.os.system`` resolves). This audit accepts only what a plain exported network needs:

- entries of the known layout, weights and tensor constants as raw bytes (no pickled payloads,
  no custom or opaque objects, no compiled code), sample inputs that pass the pickle audit;
- one program, ``models/model.json``, that calls only the pure tensor operators listed in
  ``models.checkpoints.operators`` (no files, storage, printing, devices other than CPU/CUDA, control
  flow or other namespaces; in-place operators only on tensors the graph computed itself;
  string arguments only as enumerated modes), whose symbolic expressions use only a tiny
  arithmetic grammar, with no guards code and no custom-object values;
- one image input ``(N, 3, 32, 32)`` whose batch dimension is dynamic.

Standard library only; nothing is unpickled, evaluated or imported. Every JSON member is read
within the bounds of ``models.checkpoints.limits``, and a member of the wrong shape (a list where an object
belongs, a number where a size object belongs, nesting too deep) is refused saying where.
"""

import json
import re
import zipfile
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from models.checkpoints.archives import audit_torch_zip, open_checked_zip, read_entry
from models.checkpoints.errors import CheckpointError
from models.checkpoints.limits import (
    CHECK_EVERY,
    MAX_CONFIG_BYTES,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_PICKLE_BYTES,
    Budget,
)
from models.checkpoints.operators import (
    DEVICE_TYPES,
    IN_PLACE,
    PURE,
    SHARES_AN_INPUT,
    STRING_MODES,
    SYMBOLIC,
    TRAINING_FLAGS,
)

HOW_TO_EXPORT = (
    "Export with a dynamic batch dimension and nothing but tensors:\n"
    "    model.eval()\n"
    '    batch = torch.export.Dim("batch", min=1, max=4096)\n'
    "    program = torch.export.export(model, (torch.rand(2, 3, 32, 32),),\n"
    '                                  dynamic_shapes={"x": {0: batch}})\n'
    '    torch.export.save(program, "model.pt2")\n'
    '(replace "x" by the name of your forward\'s input).'
)

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
_ARGUMENT_KINDS = frozenset(
    """
    as_none as_tensor as_tensors as_optional_tensor as_optional_tensors as_int as_ints
    as_int_lists as_float as_floats as_float_lists as_bool as_bools as_complex as_sym_int
    as_sym_ints as_sym_float as_sym_floats as_sym_bool as_sym_bools as_scalar_type
    as_memory_format as_layout as_string as_device
    """.split()
)
"""How a node argument may be serialised; ``as_string`` and ``as_device`` are checked further.
Refused: string lists, subgraphs (control flow), operators and custom objects."""
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


def audit_export_archive(archive: zipfile.ZipFile, budget: Budget | None = None) -> None:
    """Raise CheckpointError unless ``archive`` is a plain, safe torch.export program."""
    budget = budget or Budget()
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
            _audit_payload_config(archive, root, config, entries, budget)
    if "data/sample_inputs/model.pt" in entries:
        sample = read_entry(archive, root + "data/sample_inputs/model.pt", MAX_PICKLE_BYTES)
        if sample:
            try:
                audit_torch_zip(open_checked_zip(BytesIO(sample)), budget)
            except CheckpointError as error:
                reason = str(error).splitlines()[0]
                raise _refuse(f"its sample inputs are not plain tensors. {reason}") from None
    program = _load_json(archive, root + "models/model.json", MAX_JSON_BYTES)
    _audit_program(program, budget)


def _describe_entry(entry: str) -> str:
    if "custom_obj_" in entry or "opaque_obj_" in entry:
        return "a pickled custom or opaque object; only tensors are accepted."
    if entry.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")):
        return "compiled code (AOTInductor/ExecuTorch), which would run as it loads."
    if entry.endswith(".pt") or entry.endswith(".pkl"):
        return "a pickled payload (an old torch.export layout, or hand-made)."
    return "which torch.export.save does not write for a plain network."


def _load_json(archive: zipfile.ZipFile, name: str, limit: int) -> Any:
    member = name.split("/", 1)[1]
    try:
        return json.loads(read_entry(archive, name, limit))
    except RecursionError:
        raise _refuse(f"{member} is nested too deeply.") from None
    except ValueError:  # undecodable bytes, invalid JSON, a number of thousands of digits
        raise _refuse(f"{member} is not valid JSON.") from None


def _containers(value: Any, member: str, budget: Budget) -> Iterator[Any]:
    """Every object and list in ``value``, refusing nesting deeper than ``MAX_JSON_DEPTH``
    (torch's reader recurses) and checking the time budget as it goes."""
    stack = [(value, 1)]
    steps = 0
    while stack:
        item, depth = stack.pop()
        steps += 1
        if steps % CHECK_EVERY == 0:
            budget.check()
        if depth > MAX_JSON_DEPTH:
            raise _refuse(f"{member} is nested more than {MAX_JSON_DEPTH} levels deep.")
        yield item
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


def _describe(value: Any) -> str:
    if value is None:
        return "missing (or null)"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _field(parent: dict, key: str, kind: type, where: str) -> Any:
    """``parent[key]`` if it is a ``kind``; otherwise the archive is refused saying where."""
    value = parent.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _refuse(
            f"in models/model.json, {where}.{key} is {_describe(value)} where {_TYPE_NAMES[kind]} belongs."
        )
    return value


def _audit_payload_config(
    archive: zipfile.ZipFile, root: str, config: str, entries: set[str], budget: Budget
) -> None:
    folder, _, _ = config.rpartition("/")
    payload = _load_json(archive, root + config, MAX_CONFIG_BYTES)
    for _ in _containers(payload, config, budget):  # only the nesting and time bounds
        pass
    items = payload.get("config") if isinstance(payload, dict) else None
    if not isinstance(items, dict):
        raise _refuse(f"{config} is not a payload configuration.")
    prefix = "weight_" if folder.endswith("weights") else "tensor_"
    for fqn, meta in items.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(
                f"{fqn!r} is stored as a pickle (a tensor subclass or an object); export plain tensors only."
            )
        path = meta.get("path_name")
        if not (isinstance(path, str) and re.fullmatch(prefix + r"\d+", path)):
            raise _refuse(f"{fqn!r} points at {path!r}, which is not a raw tensor file.")
        if f"{folder}/{path}" not in entries:
            raise _refuse(f"{fqn!r} points at {path!r}, which the archive lacks.")


def _audit_program(program: Any, budget: Budget) -> None:
    if not isinstance(program, dict):
        raise _refuse(f"models/model.json is {_describe(program)}, not an exported program.")
    graph_module = _field(program, "graph_module", dict, "the program")
    if program.get("guards_code"):
        raise _refuse("it carries guards code, which would be compiled into Python on load.")
    graph = _field(graph_module, "graph", dict, "graph_module")
    _audit_nodes(_field(graph, "nodes", list, "graph_module.graph"))
    for item in _containers(program, "models/model.json", budget):
        if isinstance(item, dict):
            _audit_object(item)
    _audit_input(graph_module, graph, program.get("range_constraints") or {})


def _audit_object(item: dict) -> None:
    """What any object of the program may hold, wherever it is (nested graphs included)."""
    if "target" in item and "inputs" in item:
        _operator(item["target"])
        name = item.get("name")
        if name is not None and not (isinstance(name, str) and _IDENTIFIER.fullmatch(name)):
            raise _refuse(f"it has a node named {name!r}, which is not an identifier.")
    refused = _REFUSED_ARGUMENTS.intersection(item)
    if refused:
        kind = min(refused)[3:]
        raise _refuse(f"a node passes {kind!r} as an argument; only tensors and numbers are accepted.")
    if "expr_str" in item:
        _audit_expression(item["expr_str"])
    if item.get("custom_obj_values"):
        raise _refuse("it uses custom (torchbind) objects; only tensors are accepted.")


_REFUSED_ARGUMENTS = frozenset({"as_operator", "as_graph", "as_custom_obj", "as_strings"})


# --- operators ----------------------------------------------------------------------------


def _operator(target: Any) -> str:
    """The allowlisted operator a node calls (``aten.relu.default``), or a refusal naming it."""
    name = target.removeprefix("torch.ops.") if isinstance(target, str) else None
    if name is None or not (
        (target.startswith("torch.ops.") and (name in PURE or name in IN_PLACE)) or target in SYMBOLIC
    ):
        raise _refuse(
            f"it calls {target!r}, which is not among the pure tensor operators the platform "
            "runs (no files, storage, printing, processes or other devices; no operator that "
            "writes to its inputs)."
        )
    return name


def _audit_nodes(nodes: list) -> None:
    """Every node's arguments, and in-place operators only on tensors the graph computed.

    A tensor is "fresh" when an operator of the graph that never returns an argument made it
    (or an in-place operator updated a fresh one): it shares no memory with the input batch,
    a weight or a buffer, so overwriting it changes nothing outside this one call.
    """
    fresh: set[str] = set()
    for index, node in enumerate(nodes):
        where = f"graph.nodes[{index}]"
        if not isinstance(node, dict):
            raise _refuse(f"in models/model.json, {where} is {_describe(node)} where an object belongs.")
        operator = _operator(node.get("target"))
        arguments = {}
        for position, entry in enumerate(_field(node, "inputs", list, where)):
            if not isinstance(entry, dict):
                raise _refuse(
                    f"in models/model.json, {where}.inputs[{position}] is {_describe(entry)} "
                    "where an object belongs."
                )
            name = _field(entry, "name", str, f"{where}.inputs[{position}]")
            argument = _field(entry, "arg", dict, f"{where}.inputs[{position}]")
            _audit_argument(operator, name, argument)
            arguments[name] = argument
        outputs = _tensor_names(_field(node, "outputs", list, where))
        if operator in IN_PLACE:
            target = _tensor_names([arguments.get("self")])
            if not target or not target <= fresh:
                shown = ", ".join(sorted(target)) or "nothing"
                raise _refuse(
                    f"it calls {operator}, which overwrites its input, on {shown}: an input, "
                    "a weight or a view of one. Only tensors the network computes may be "
                    "overwritten."
                )
            fresh |= outputs
        elif operator in PURE and operator not in SHARES_AN_INPUT:
            fresh |= outputs


def _audit_argument(operator: str, name: str, argument: dict) -> None:
    if len(argument) != 1 or next(iter(argument)) not in _ARGUMENT_KINDS:
        raise _refuse(f"it calls {operator} with an argument of kind {sorted(argument)}.")
    kind, value = next(iter(argument.items()))
    if kind == "as_string":
        allowed = STRING_MODES.get((operator, name), frozenset())
        if not isinstance(value, str) or value not in allowed:
            raise _refuse(
                f"it calls {operator} with the string {str(value)[:80]!r} for {name!r}; strings "
                "are accepted only as a mode of an operator (gelu's approximate, div's "
                "rounding_mode, pad's mode, scatter_reduce's reduce)."
            )
    elif kind == "as_device":
        device = value.get("type") if isinstance(value, dict) else None
        if not isinstance(device, str) or device not in DEVICE_TYPES:
            raise _refuse(f"it calls {operator} on the device {str(device)[:40]!r}; only cpu and cuda.")
    elif (operator, name) in TRAINING_FLAGS and value is not False:
        raise _refuse(
            f"it calls {operator} in training mode, which overwrites its running statistics "
            "on every call; export after model.eval()."
        )


def _tensor_names(arguments: list) -> set[str]:
    """The tensor names an argument list refers to (as_tensor, as_tensors, optional ones)."""
    names: set[str] = set()
    for argument in arguments:
        if not isinstance(argument, dict):
            continue
        for kind in ("as_tensor", "as_optional_tensor"):
            if isinstance(argument.get(kind), dict):
                names.add(str(argument[kind].get("name")))
        for kind in ("as_tensors", "as_optional_tensors"):
            for item in argument.get(kind) or []:
                if isinstance(item, dict):
                    inner = item.get("as_tensor", item)
                    if isinstance(inner, dict) and "name" in inner:
                        names.add(str(inner["name"]))
    return names


# --- symbolic shapes and the input ----------------------------------------------------------


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


def _audit_input(graph_module: dict, graph: dict, ranges: Any) -> None:
    signature = _field(graph_module, "signature", dict, "graph_module")
    specs = _field(signature, "input_specs", list, "graph_module.signature")
    user_inputs = [spec["user_input"] for spec in specs if isinstance(spec, dict) and "user_input" in spec]
    if len(user_inputs) != 1:
        raise _refuse(f"its forward takes {len(user_inputs)} inputs; expected one image batch.")
    where = "graph_module.signature.input_specs[user_input]"
    argument = _field(_expect_object(user_inputs[0], where), "arg", dict, where)
    if "as_tensor" not in argument:
        raise _refuse("its forward's input is not a tensor; expected one image batch.")
    name = _field(_field(argument, "as_tensor", dict, where + ".arg"), "name", str, where + ".arg")
    values = _field(graph, "tensor_values", dict, "graph_module.graph")
    meta = values.get(name)
    if not isinstance(meta, dict):
        raise _refuse(f"in models/model.json, the input {name[:40]!r} has no tensor description.")
    sizes = _field(meta, "sizes", list, f"graph.tensor_values[{name[:40]!r}]")
    if len(sizes) != 4:
        raise _refuse("its input is not a 4-d (N, 3, 32, 32) image batch.")
    for position, size in enumerate(sizes):
        if not isinstance(size, dict):
            raise _refuse(
                f"in models/model.json, the input's size {position} is {_describe(size)} where "
                'a size object ({"as_int": ...} or {"as_expr": ...}) belongs.'
            )
    fixed = [size.get("as_int") for size in sizes[1:]]
    if fixed != [3, 32, 32]:
        shape = ", ".join(map(str, fixed))
        raise _refuse(f"its input has shape (N, {shape}); expected (N, 3, 32, 32).")
    if "as_int" in sizes[0]:
        raise _refuse(
            f"its batch dimension is fixed to {sizes[0]['as_int']}; the platform evaluates "
            "batches of other sizes."
        )
    expression = sizes[0].get("as_expr")
    symbol = re.search(
        r"[a-z]+\d+", str(expression.get("expr_str", "")) if isinstance(expression, dict) else ""
    )
    bounds = ranges.get(symbol.group(0)) if symbol and isinstance(ranges, dict) else None
    if isinstance(bounds, dict):
        low, high = bounds.get("min_val"), bounds.get("max_val")
        if (isinstance(low, int) and low > 1) or (isinstance(high, int) and high < MIN_BATCH):
            raise _refuse(
                f"its batch dimension only accepts sizes {low}..{high}; allow 1..{MIN_BATCH} at least."
            )


def _expect_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _refuse(f"in models/model.json, {where} is {_describe(value)} where an object belongs.")
    return value
