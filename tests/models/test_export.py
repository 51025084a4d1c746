"""torch.export archives: custom networks load (randomness and gradients kept); archives that
would run code while loading are refused before torch sees them, and nothing runs."""

import contextlib
import json
import pickle
import re
import zipfile

import pytest
import torch
from torch import nn

from models.architectures.lwta import LWTA
from models.checkpoints.errors import CheckpointError
from models.checkpoints.exported import weights_only_loading
from models.checkpoints.inspection import inspect_checkpoint
from models.checkpoints.loading import load_model, probe_model
from tests.models.helpers import FileCreator, export_to, rewrite_zip, torch_bytes


def test_custom_network_loads_with_a_dynamic_batch_and_gradients(tiny_export):
    path, original = tiny_export
    loaded = load_model(path)
    assert loaded.arch == "torch-export" and not loaded.stochastic and loaded.surrogate is None
    probe_model(loaded)
    for batch in (1, 5):
        x = torch.rand(batch, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(loaded.model(x), original.eval()(x), atol=1e-5)
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    loaded.model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_declared_normalisation_wraps_an_exported_network(tiny_export):
    path, original = tiny_export
    loaded = load_model(path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), original.eval()((x - 0.5) / 0.25), atol=1e-5)


class StochasticNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.lwta = LWTA()
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lwta(self.conv(x)).mean(dim=(2, 3)))


def test_stochastic_network_keeps_its_randomness_and_gradients(tmp_path):
    torch.manual_seed(0)
    loaded = load_model(export_to(StochasticNet(), tmp_path / "lwta.pt2"))
    assert loaded.stochastic
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    first, second = loaded.model(x), loaded.model(x)
    assert not torch.equal(first, second)
    first.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_fixed_batch_export_is_refused(tmp_path):
    program = torch.export.export(
        nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)).eval(), (torch.rand(2, 3, 32, 32),)
    )
    torch.export.save(program, str(tmp_path / "fixed.pt2"))
    with pytest.raises(CheckpointError, match="batch dimension is fixed to 2"):
        load_model(tmp_path / "fixed.pt2")


def test_export_archive_does_not_take_a_zoo_arch(tiny_export):
    with pytest.raises(CheckpointError, match="brings its own architecture"):
        load_model(tiny_export[0], arch="resnet20")


# --- malicious archives -------------------------------------------------------------------


def _root(entries: dict[str, bytes]) -> str:
    return next(iter(entries)).split("/", 1)[0] + "/"


def _program(entries: dict[str, bytes]) -> dict:
    return json.loads(entries[_root(entries) + "models/model.json"])


def _opaque_constant(entries, target):
    root = _root(entries)
    entries[root + "data/constants/opaque_obj_0"] = pickle.dumps(FileCreator(target))
    config = {
        "config": {
            "evil": {
                "path_name": "opaque_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }
        }
    }
    entries[root + "data/constants/model_constants_config.json"] = json.dumps(config).encode()


def _shape_expression(entries, target):
    name = _root(entries) + "models/model.json"
    code = f"__import__('builtins').open('{target}', 'w') and s77"
    entries[name] = re.sub(
        r'"expr_str": "[^"]*"', lambda _: f'"expr_str": "{code}"', entries[name].decode(), count=1
    ).encode()


def _guards_code(entries, target):
    program = _program(entries)
    program["guards_code"] = [f"open('{target}', 'w') is not None"]
    entries[_root(entries) + "models/model.json"] = json.dumps(program).encode()


def _pickled_weight(entries, target):
    name = _root(entries) + "data/weights/model_weights_config.json"
    config = json.loads(entries[name])
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    entries[_root(entries) + "data/weights/" + first["path_name"]] = torch_bytes(FileCreator(target))
    entries[name] = json.dumps(config).encode()


def _sample_inputs(entries, target):
    entries[_root(entries) + "data/sample_inputs/model.pt"] = torch_bytes(FileCreator(target))


def _legacy_weights(entries, target):
    entries[_root(entries) + "data/weights/model.pt"] = torch_bytes(FileCreator(target))


def _operator_from_torch_namespace(entries, target):
    program = _program(entries)
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
    entries[_root(entries) + "models/model.json"] = json.dumps(program).encode()


def _compiled_code(entries, target):
    entries[_root(entries) + "data/aotinductor/model/model.so"] = b"\x7fELF" + b"\x00" * 60


MALICIOUS = {
    "opaque constant": _opaque_constant,
    "shape expression": _shape_expression,
    "guards code": _guards_code,
    "pickled weight": _pickled_weight,
    "pickled sample inputs": _sample_inputs,
    "legacy pickled weights": _legacy_weights,
    "operator from torch's namespace": _operator_from_torch_namespace,
    "compiled code": _compiled_code,
}


@pytest.mark.parametrize("attack", list(MALICIOUS))
def test_malicious_archive_is_refused_and_nothing_runs(tiny_export, tmp_path, attack):
    target = tmp_path / "pwned"
    path = rewrite_zip(
        tiny_export[0], tmp_path / "evil.pt2", lambda entries: MALICIOUS[attack](entries, target)
    )
    with pytest.raises(CheckpointError, match="Refused torch.export archive"):
        inspect_checkpoint(path)
    with pytest.raises(CheckpointError, match="Refused torch.export archive"):
        load_model(path)
    assert not target.exists()


@pytest.mark.parametrize("attack", ["opaque constant", "shape expression", "guards code"])
def test_plain_torch_export_load_would_run_these_payloads(tiny_export, tmp_path, attack):
    """Why the audit exists: even weights-only, torch.export.load (or the first call of the
    loaded module) runs these payloads."""
    target = tmp_path / "pwned"
    path = rewrite_zip(
        tiny_export[0], tmp_path / "evil.pt2", lambda entries: MALICIOUS[attack](entries, target)
    )
    # Some payloads break the program after they ran.
    with weights_only_loading(), contextlib.suppress(Exception):
        torch.export.load(str(path)).module()(torch.rand(2, 3, 32, 32))
    assert target.exists()


def test_well_formed_archive_passes_the_audit_unchanged(tiny_export, tmp_path):
    path = rewrite_zip(tiny_export[0], tmp_path / "copy.pt2", lambda entries: None)
    assert inspect_checkpoint(path) == "torch-export"
    with zipfile.ZipFile(path) as archive:
        assert any(name.endswith("models/model.json") for name in archive.namelist())
