"""Malformed files of every format raise CheckpointError saying what is wrong, and nothing
else: no AttributeError, RecursionError, TypeError, KeyError or zipfile error escapes the
inspection (the API would answer 500 and keep the file)."""

import io
import json
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.architectures.lenet import LeNet
from models.checkpoints.errors import CheckpointError
from models.checkpoints.inspection import inspect_checkpoint
from tests.models.helpers import rewrite_zip

SAFETY_NET = "damaged or malformed ("


def _edit_json(source: Path, destination: Path, member: str, edit) -> Path:
    def rewrite(entries: dict[str, bytes]) -> None:
        name = next(name for name in entries if name.endswith(member))
        value = edit(json.loads(entries[name]))
        entries[name] = value if isinstance(value, bytes) else json.dumps(value).encode()

    return rewrite_zip(source, destination, rewrite)


def _input_sizes(program: dict) -> list:
    graph = program["graph_module"]["graph"]
    return graph["tensor_values"]["x"]["sizes"]


def _sizes_as_ints(program: dict) -> dict:
    sizes = _input_sizes(program)
    sizes[:] = [2, 3, 32, 32]
    return program


def _nodes_as_dict(program: dict) -> dict:
    program["graph_module"]["graph"]["nodes"] = {"0": "conv"}
    return program


def _node_inputs_as_ints(program: dict) -> dict:
    program["graph_module"]["graph"]["nodes"][0]["inputs"] = [1, 2]
    return program


def _signature_as_list(program: dict) -> dict:
    program["graph_module"]["signature"] = []
    return program


def _user_input_as_string(program: dict) -> dict:
    for spec in program["graph_module"]["signature"]["input_specs"]:
        if "user_input" in spec:
            spec["user_input"] = "x"
    return program


def _node_argument(field: str, value) -> Callable[[dict], dict]:
    def edit(program: dict) -> dict:
        entry = program["graph_module"]["graph"]["nodes"][0]["inputs"][0]
        if field == "name":
            entry["name"] = value
        else:
            entry["arg"] = {field: value}
        return program

    return edit


def _input_name_as_list(program: dict) -> dict:
    for spec in program["graph_module"]["signature"]["input_specs"]:
        if "user_input" in spec:
            spec["user_input"]["arg"]["as_tensor"]["name"] = ["x"]
    return program


CASES = {
    "argument name is a list": ("models/model.json", _node_argument("name", ["self"]), "is a list"),
    "string argument is a list": (
        "models/model.json",
        _node_argument("as_string", ["tanh"]),
        "strings are accepted only",
    ),
    "device type is a list": (
        "models/model.json",
        _node_argument("as_device", {"type": ["cpu"]}),
        "only cpu and cuda",
    ),
    "input name is a list": ("models/model.json", _input_name_as_list, "name is a list"),
    "model.json is a list": ("models/model.json", lambda program: [program], "is a list"),
    "plain ints where size objects are": (
        "models/model.json",
        _sizes_as_ints,
        "size 0 is an integer where a size object",
    ),
    "nodes are a dict": ("models/model.json", _nodes_as_dict, "graph.nodes is an object"),
    "node inputs are ints": ("models/model.json", _node_inputs_as_ints, r"inputs\[0\] is an integer"),
    "signature is a list": ("models/model.json", _signature_as_list, "signature is a list"),
    "user input is a string": ("models/model.json", _user_input_as_string, "is a string"),
    "200 000 levels of nesting": (
        "models/model.json",
        lambda program: b"[" * 200_000 + b"]" * 200_000,
        "nested too deeply",
    ),
    "100 levels of nesting": (
        "models/model.json",
        lambda program: dict(program, extra=json.loads("[" * 100 + "]" * 100)),
        "nested more than 64 levels",
    ),
    "not UTF-8": ("models/model.json", lambda program: b"\xff\xfe{}", "not valid JSON"),
    "a number of 5000 digits": ("models/model.json", lambda program: b"1" * 5000, "not valid JSON"),
    "weights config is a list": (
        "model_weights_config.json",
        lambda config: [config],
        "not a payload configuration",
    ),
    "weight entry is an int": (
        "model_weights_config.json",
        lambda config: {"config": {name: 0 for name in config["config"]}},
        "stored as a pickle",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_program_is_refused_saying_what_is_wrong(tiny_export, tmp_path, case):
    member, edit, message = CASES[case]
    path = _edit_json(tiny_export[0], tmp_path / "bad.pt2", member, edit)
    with pytest.raises(CheckpointError, match=message) as refused:
        inspect_checkpoint(path)
    assert SAFETY_NET not in str(refused.value)


def _replace_somewhere(value, rng: random.Random, depth: int = 0):
    """``value`` with one randomly chosen sub-value swapped for one of the wrong type."""
    wrong = [[], {}, 0, -1, 1.5, "x", None, True, [[[]]], {"as_int": "3"}]
    children = (
        list(value.items())
        if isinstance(value, dict)
        else list(enumerate(value))
        if isinstance(value, list)
        else []
    )
    if not children or rng.random() < 0.15 + 0.02 * depth:
        return rng.choice(wrong)
    key, child = rng.choice(children)
    value[key] = _replace_somewhere(child, rng, depth + 1)
    return value


def test_type_confusion_anywhere_in_model_json_raises_only_checkpoint_error(tiny_export, tmp_path):
    with zipfile.ZipFile(tiny_export[0]) as archive:
        name = next(n for n in archive.namelist() if n.endswith("models/model.json"))
        original = archive.read(name)
    rng = random.Random(11)
    for attempt in range(150):
        program = _replace_somewhere(json.loads(original), rng)
        path = _edit_json(tiny_export[0], tmp_path / "fuzz.pt2", "models/model.json", lambda _, p=program: p)
        try:
            inspect_checkpoint(path)
        except CheckpointError as error:
            assert SAFETY_NET not in str(error), (attempt, str(error)[:300])


def _flip_bytes(data: bytes, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(damaged))
        damaged[position] = rng.randrange(256)
    if rng.random() < 0.3:
        damaged = damaged[: rng.randrange(1, len(damaged))]
    return bytes(damaged)


def _samples(tmp_path: Path, tiny_export) -> dict[str, bytes]:
    state = LeNet().state_dict()
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    save_file(state, tmp_path / "weights.safetensors")
    buffer = io.BytesIO()
    torch.save({"a": torch.zeros(2)}, buffer)
    return {
        "zip": (tmp_path / "zip.pth").read_bytes(),
        "legacy": (tmp_path / "legacy.pth").read_bytes(),
        "safetensors": (tmp_path / "weights.safetensors").read_bytes(),
        "small zip": buffer.getvalue(),
        "export": Path(tiny_export[0]).read_bytes(),
    }


def test_damaged_bytes_of_every_format_raise_only_checkpoint_error(tmp_path, tiny_export):
    """Random byte damage (and truncation) of each accepted format: the inspection either
    accepts the file or refuses it with its own CheckpointError, never the safety net's."""
    rng = random.Random(7)
    path = tmp_path / "damaged"
    for kind, data in _samples(tmp_path, tiny_export).items():
        for attempt in range(60):
            path.write_bytes(_flip_bytes(data, rng))
            try:
                inspect_checkpoint(path)
            except CheckpointError as error:
                assert SAFETY_NET not in str(error), (kind, attempt, str(error)[:300])


def test_safetensors_header_of_deep_nesting_or_wrong_types_is_refused(tmp_path):
    for header, message in [
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (json.dumps({"w": [1, 2]}).encode(), "damaged or truncated"),
        (json.dumps({"w": {"dtype": ["F32"], "shape": {}, "data_offsets": 3}}).encode(), "damaged"),
    ]:
        path = tmp_path / "bad.safetensors"
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 16)
        with pytest.raises(CheckpointError, match=message) as refused:
            inspect_checkpoint(path)
        assert SAFETY_NET not in str(refused.value)
