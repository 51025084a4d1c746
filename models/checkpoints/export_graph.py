"""The program of a torch.export archive (``models/model.json``): what its graph may do.

Accepted: nodes that call only the pure tensor operators of ``models.checkpoints.operators``
(in-place ones only on tensors the graph computed itself), arguments of plain kinds (strings
only as an operator's enumerated mode, devices only CPU/CUDA, batch norm never in training
mode), symbolic shape expressions of a tiny arithmetic grammar (``sympy.sympify`` evaluates
them), no guards code, no custom-object values, and one image input ``(N, 3, 32, 32)`` whose
batch dimension is dynamic.
"""

import re
from typing import Any

from models.checkpoints.export_json import containers, describe, expect_object, field, refuse
from models.checkpoints.limits import Budget
from models.checkpoints.operators import (
    DEVICE_TYPES,
    IN_PLACE,
    PURE,
    SHARES_AN_INPUT,
    STRING_MODES,
    SYMBOLIC,
    TRAINING_FLAGS,
)

MIN_BATCH = 1024
"""The largest batch size an exported input must accept at least (it must accept 1 too)."""

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


def audit_program(program: Any, budget: Budget) -> None:
    """Raise CheckpointError unless the parsed ``models/model.json`` is a plain, safe program."""
    if not isinstance(program, dict):
        raise refuse(f"models/model.json is {describe(program)}, not an exported program.")
    graph_module = field(program, "graph_module", dict, "the program")
    if program.get("guards_code"):
        raise refuse("it carries guards code, which would be compiled into Python on load.")
    graph = field(graph_module, "graph", dict, "graph_module")
    _audit_nodes(field(graph, "nodes", list, "graph_module.graph"))
    for item in containers(program, "models/model.json", budget):
        if isinstance(item, dict):
            _audit_object(item)
    _audit_input(graph_module, graph, program.get("range_constraints") or {})


def _audit_object(item: dict) -> None:
    """What any object of the program may hold, wherever it is (nested graphs included)."""
    if "target" in item and "inputs" in item:
        _operator(item["target"])
        name = item.get("name")
        if name is not None and not (isinstance(name, str) and _IDENTIFIER.fullmatch(name)):
            raise refuse(f"it has a node named {name!r}, which is not an identifier.")
    refused = _REFUSED_ARGUMENTS.intersection(item)
    if refused:
        kind = min(refused)[3:]
        raise refuse(f"a node passes {kind!r} as an argument; only tensors and numbers are accepted.")
    if "expr_str" in item:
        _audit_expression(item["expr_str"])
    if item.get("custom_obj_values"):
        raise refuse("it uses custom (torchbind) objects; only tensors are accepted.")


_REFUSED_ARGUMENTS = frozenset({"as_operator", "as_graph", "as_custom_obj", "as_strings"})


# --- operators ----------------------------------------------------------------------------


def _operator(target: Any) -> str:
    """The allowlisted operator a node calls (``aten.relu.default``), or a refusal naming it."""
    name = target.removeprefix("torch.ops.") if isinstance(target, str) else None
    if name is None or not (
        (target.startswith("torch.ops.") and (name in PURE or name in IN_PLACE)) or target in SYMBOLIC
    ):
        raise refuse(
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
            raise refuse(f"in models/model.json, {where} is {describe(node)} where an object belongs.")
        operator = _operator(node.get("target"))
        arguments = {}
        for position, entry in enumerate(field(node, "inputs", list, where)):
            if not isinstance(entry, dict):
                raise refuse(
                    f"in models/model.json, {where}.inputs[{position}] is {describe(entry)} "
                    "where an object belongs."
                )
            name = field(entry, "name", str, f"{where}.inputs[{position}]")
            argument = field(entry, "arg", dict, f"{where}.inputs[{position}]")
            _audit_argument(operator, name, argument)
            arguments[name] = argument
        outputs = _tensor_names(field(node, "outputs", list, where))
        if operator in IN_PLACE:
            target = _tensor_names([arguments.get("self")])
            if not target or not target <= fresh:
                shown = ", ".join(sorted(target)) or "nothing"
                raise refuse(
                    f"it calls {operator}, which overwrites its input, on {shown}: an input, "
                    "a weight or a view of one. Only tensors the network computes may be "
                    "overwritten."
                )
            fresh |= outputs
        elif operator in PURE and operator not in SHARES_AN_INPUT:
            fresh |= outputs


def _audit_argument(operator: str, name: str, argument: dict) -> None:
    """One argument of a node is of a plain kind: a string only as an enumerated mode of its
    operator, a device only CPU or CUDA, a training flag only false."""
    if len(argument) != 1 or next(iter(argument)) not in _ARGUMENT_KINDS:
        raise refuse(f"it calls {operator} with an argument of kind {sorted(argument)}.")
    kind, value = next(iter(argument.items()))
    if kind == "as_string":
        allowed = STRING_MODES.get((operator, name), frozenset())
        if not isinstance(value, str) or value not in allowed:
            raise refuse(
                f"it calls {operator} with the string {str(value)[:80]!r} for {name!r}; strings "
                "are accepted only as a mode of an operator (gelu's approximate, div's "
                "rounding_mode, pad's mode, scatter_reduce's reduce)."
            )
    elif kind == "as_device":
        device = value.get("type") if isinstance(value, dict) else None
        if not isinstance(device, str) or device not in DEVICE_TYPES:
            raise refuse(f"it calls {operator} on the device {str(device)[:40]!r}; only cpu and cuda.")
    elif (operator, name) in TRAINING_FLAGS and value is not False:
        raise refuse(
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
        raise refuse("a symbolic shape expression is not a short string.")
    position = 0
    while position < len(text):
        match = _EXPR_TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip() == "":
                break
            raise refuse(f"a symbolic shape expression is not plain arithmetic: {text[:80]!r}")
        name = match.group("name")
        if name and not (name in _EXPR_WORDS or _SYMBOL.fullmatch(name) or _CAMEL.fullmatch(name)):
            raise refuse(f"a symbolic shape expression uses {name!r}: {text[:80]!r}")
        position = match.end()


def _audit_input(graph_module: dict, graph: dict, ranges: Any) -> None:
    """The forward takes one ``(N, 3, 32, 32)`` image batch whose batch dimension is dynamic
    and admits every size from 1 to ``MIN_BATCH``."""
    signature = field(graph_module, "signature", dict, "graph_module")
    specs = field(signature, "input_specs", list, "graph_module.signature")
    user_inputs = [spec["user_input"] for spec in specs if isinstance(spec, dict) and "user_input" in spec]
    if len(user_inputs) != 1:
        raise refuse(f"its forward takes {len(user_inputs)} inputs; expected one image batch.")
    where = "graph_module.signature.input_specs[user_input]"
    argument = field(expect_object(user_inputs[0], where), "arg", dict, where)
    if "as_tensor" not in argument:
        raise refuse("its forward's input is not a tensor; expected one image batch.")
    name = field(field(argument, "as_tensor", dict, where + ".arg"), "name", str, where + ".arg")
    values = field(graph, "tensor_values", dict, "graph_module.graph")
    meta = values.get(name)
    if not isinstance(meta, dict):
        raise refuse(f"in models/model.json, the input {name[:40]!r} has no tensor description.")
    sizes = field(meta, "sizes", list, f"graph.tensor_values[{name[:40]!r}]")
    if len(sizes) != 4:
        raise refuse("its input is not a 4-d (N, 3, 32, 32) image batch.")
    for position, size in enumerate(sizes):
        if not isinstance(size, dict):
            raise refuse(
                f"in models/model.json, the input's size {position} is {describe(size)} where "
                'a size object ({"as_int": ...} or {"as_expr": ...}) belongs.'
            )
    fixed = [size.get("as_int") for size in sizes[1:]]
    if fixed != [3, 32, 32]:
        shape = ", ".join(map(str, fixed))
        raise refuse(f"its input has shape (N, {shape}); expected (N, 3, 32, 32).")
    if "as_int" in sizes[0]:
        raise refuse(
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
            raise refuse(
                f"its batch dimension only accepts sizes {low}..{high}; allow 1..{MIN_BATCH} at least."
            )
