"""The JSON members of a torch.export archive, read within bounds, and the shape of a refusal.

``torch.export.load`` reads ``models/model.json`` and the payload configurations with a
recursive reader; these helpers read them within the byte and depth bounds of
``models.checkpoints.limits`` (checking the time budget as they walk), and refuse a member of
the wrong shape (a list where an object belongs, a number where a size object belongs) saying
where. Every refusal of the .pt2 audit ends with ``HOW_TO_EXPORT``.
"""

import json
import zipfile
from collections.abc import Iterator
from typing import Any

from models.checkpoints.archives import read_entry
from models.checkpoints.errors import CheckpointError
from models.checkpoints.limits import CHECK_EVERY, MAX_JSON_DEPTH, Budget

HOW_TO_EXPORT = (
    "Export with a dynamic batch dimension and nothing but tensors:\n"
    "    model.eval()\n"
    '    batch = torch.export.Dim("batch", min=1, max=4096)\n'
    "    program = torch.export.export(model, (torch.rand(2, 3, 32, 32),),\n"
    '                                  dynamic_shapes={"x": {0: batch}})\n'
    '    torch.export.save(program, "model.pt2")\n'
    '(replace "x" by the name of your forward\'s input).'
)


def refuse(reason: str) -> CheckpointError:
    """The error for an archive refused for ``reason``, with how to export one that passes."""
    return CheckpointError(f"Refused torch.export archive: {reason}\n{HOW_TO_EXPORT}")


def load_json(archive: zipfile.ZipFile, name: str, limit: int) -> Any:
    """The parsed JSON entry ``name`` (at most ``limit`` bytes), or a refusal naming it."""
    member = name.split("/", 1)[1]
    try:
        return json.loads(read_entry(archive, name, limit))
    except RecursionError:
        raise refuse(f"{member} is nested too deeply.") from None
    except ValueError:  # undecodable bytes, invalid JSON, a number of thousands of digits
        raise refuse(f"{member} is not valid JSON.") from None


def containers(value: Any, member: str, budget: Budget) -> Iterator[Any]:
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
            raise refuse(f"{member} is nested more than {MAX_JSON_DEPTH} levels deep.")
        yield item
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


def describe(value: Any) -> str:
    """What a JSON value is, for a refusal: "an object", "a list", "missing (or null)"."""
    if value is None:
        return "missing (or null)"
    return TYPE_NAMES.get(type(value), type(value).__name__)


def field(parent: dict, key: str, kind: type, where: str) -> Any:
    """``parent[key]`` if it is a ``kind``; otherwise the archive is refused saying where."""
    value = parent.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise refuse(
            f"in models/model.json, {where}.{key} is {describe(value)} where {TYPE_NAMES[kind]} belongs."
        )
    return value


def expect_object(value: Any, where: str) -> dict:
    """``value`` if it is an object; otherwise the archive is refused saying where."""
    if not isinstance(value, dict):
        raise refuse(f"in models/model.json, {where} is {describe(value)} where an object belongs.")
    return value
