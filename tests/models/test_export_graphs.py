""".pt2 graphs run only allowlisted pure tensor operators: every zoo network exported by the
recipe passes, and graphs that write files, print, mutate their inputs or weights, or pass
unexpected strings or devices are refused naming the operator, before anything runs."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.architectures.registry import ZOO, build_model
from models.checkpoints.errors import CheckpointError
from models.checkpoints.exported import weights_only_loading
from models.checkpoints.inspection import inspect_checkpoint
from models.checkpoints.loading import load_model
from tests.models.helpers import export_to, rewrite_zip


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_network_exported_by_the_recipe_passes(tmp_path, name):
    torch.manual_seed(0)
    path = export_to(build_model(name), tmp_path / f"{name}.pt2")
    try:
        assert inspect_checkpoint(path) == "torch-export"
    finally:
        path.unlink()


class Template(nn.Module):
    """A network whose export has the shape of the write primitive: a new tensor (to become
    ``aten.from_file``) overwritten in place by another (to become ``aten.copy_``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3072, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target = torch.full((4,), 0, dtype=torch.uint8)
        target.add_(torch.full((4,), 65, dtype=torch.uint8))
        return self.fc(x.flatten(1)) + target.sum() * 0


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return export_to(Template(), tmp_path_factory.mktemp("template") / "template.pt2")


def _edit_program(source: Path, destination: Path, edit) -> Path:
    def rewrite(entries: dict[str, bytes]) -> None:
        name = next(name for name in entries if name.endswith("models/model.json"))
        program = json.loads(entries[name])
        edit(program["graph_module"]["graph"]["nodes"])
        entries[name] = json.dumps(program).encode()

    return rewrite_zip(source, destination, rewrite)


def _write_file(marker: Path):
    def edit(nodes: list[dict]) -> None:
        new = next(node for node in nodes if node["target"].endswith("full.default"))
        dtype = next(entry for entry in new["inputs"] if entry["name"] == "dtype")
        new["target"] = "torch.ops.aten.from_file.default"
        new["inputs"] = [
            {"name": "filename", "arg": {"as_string": str(marker)}, "kind": 1},
            {"name": "shared", "arg": {"as_bool": True}, "kind": 1},
            {"name": "size", "arg": {"as_int": 4}, "kind": 1},
            dtype,
        ]
        write = next(node for node in nodes if node["target"].endswith("add_.Tensor"))
        write["target"] = "torch.ops.aten.copy_.default"
        destination, source = write["inputs"][:2]
        write["inputs"] = [dict(destination, name="self"), dict(source, name="src")]

    return edit


def _print(nodes: list[dict]) -> None:
    nodes.insert(
        0,
        {
            "target": "torch.ops.aten._print.default",
            "inputs": [{"name": "s", "arg": {"as_string": '{"forged": 1}'}, "kind": 1}],
            "outputs": [],
            "metadata": {},
            "is_hop_single_tensor_return": None,
        },
    )


def test_unaudited_loading_would_run_the_write_primitive(template, tmp_path):
    """Why operators are allowlisted: torch.export.load runs this graph and writes the file."""
    marker = tmp_path / "argparse.py"
    path = _edit_program(template, tmp_path / "evil.pt2", _write_file(marker))
    with weights_only_loading():
        torch.export.load(str(path)).module()(torch.rand(2, 3, 32, 32))
    assert marker.read_bytes() == b"AAAA"


def test_graph_writing_a_file_is_refused_naming_the_operator(template, tmp_path):
    marker = tmp_path / "argparse.py"
    path = _edit_program(template, tmp_path / "evil.pt2", _write_file(marker))
    for check in (inspect_checkpoint, load_model):
        with pytest.raises(CheckpointError, match=r"calls 'torch\.ops\.aten\.from_file\.default'"):
            check(path)
    assert not marker.exists()


def test_graph_printing_is_refused_naming_the_operator(template, tmp_path, capfd):
    path = _edit_program(template, tmp_path / "print.pt2", _print)
    for check in (inspect_checkpoint, load_model):
        with pytest.raises(CheckpointError, match=r"calls 'torch\.ops\.aten\._print\.default'"):
            check(path)
    assert "forged" not in capfd.readouterr().out


class Mutating(nn.Module):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.fc = nn.Linear(3072, 10)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.what == "input":
            x.mul_(0.5)
        elif self.what == "view of the input":
            x.flatten(1).mul_(0.5)
        elif self.what == "input through dropout":
            F.dropout(x, 0.5, training=False).mul_(0.5)
        elif self.what == "buffer":
            self.calls.add_(1)
        return self.fc(x.flatten(1)) + self.calls


@pytest.mark.parametrize("what", ["input", "view of the input", "input through dropout", "buffer"])
def test_in_place_operator_on_an_input_or_weight_is_refused(tmp_path, what):
    path = export_to(Mutating(what), tmp_path / "mutating.pt2")
    with pytest.raises(CheckpointError, match="aten.mul_.Tensor|aten.add_.Tensor"):
        inspect_checkpoint(path)


class Modes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3072, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(x, approximate="tanh") + torch.div(x, 2.0, rounding_mode="floor")
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")[:, :, 1:-1, 1:-1]
        x = F.relu(x.clone()).add_(torch.zeros(1, device=x.device))
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def modes(tmp_path_factory) -> Path:
    return export_to(Modes(), tmp_path_factory.mktemp("modes") / "modes.pt2")


def _set_argument(operator: str, name: str, argument: dict):
    def edit(nodes: list[dict]) -> None:
        node = next(node for node in nodes if node["target"] == f"torch.ops.{operator}")
        entry = next(entry for entry in node["inputs"] if entry["name"] == name)
        entry["arg"] = argument

    return edit


def test_enumerated_modes_and_in_place_operators_on_computed_tensors_pass(modes):
    assert inspect_checkpoint(modes) == "torch-export"


@pytest.mark.parametrize(
    ("operator", "name", "argument", "message"),
    [
        ("aten.gelu.default", "approximate", {"as_string": "tanh; import os"}, "approximate"),
        ("aten.div.Tensor_mode", "rounding_mode", {"as_string": "/etc/passwd"}, "rounding_mode"),
        ("aten.pad.default", "pad", {"as_string": "constant"}, "strings are accepted only"),
        ("aten.zeros.default", "device", {"as_device": {"type": "lazy", "index": 0}}, "lazy"),
        ("aten.zeros.default", "size", {"as_strings": ["a"]}, "strings"),
        ("aten.zeros.default", "size", {"as_graph": {}}, "graph"),
    ],
)
def test_unexpected_strings_and_devices_are_refused(modes, tmp_path, operator, name, argument, message):
    path = _edit_program(modes, tmp_path / "edited.pt2", _set_argument(operator, name, argument))
    with pytest.raises(CheckpointError, match=message) as refused:
        inspect_checkpoint(path)
    assert "Refused torch.export archive" in str(refused.value)


class TrainingBatchNorm(nn.Module):
    """Batch norm in training mode updates its running statistics on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("var", torch.ones(3))
        self.fc = nn.Linear(3072, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.batch_norm(x, self.mean, self.var, training=True).flatten(1))


def test_batch_norm_exported_in_training_mode_is_refused(tmp_path):
    path = export_to(TrainingBatchNorm(), tmp_path / "train.pt2")
    with pytest.raises(CheckpointError, match="aten.batch_norm.default in training mode"):
        inspect_checkpoint(path)
