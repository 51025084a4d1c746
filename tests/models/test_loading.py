"""Checkpoints as found in the wild load as they are, and every refusal says why."""

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from models.architectures.lenet import LeNet
from models.architectures.registry import build_model, build_on_meta
from models.checkpoints.errors import CheckpointError
from models.checkpoints.loading import LoadedModel, load_model, probe_model


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    return LeNet().eval()


def _expected(net: nn.Module, x: torch.Tensor, mean, std) -> torch.Tensor:
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return net((x - mean) / std)


def _same_outputs(loaded: LoadedModel, net: nn.Module, atol: float = 1e-6) -> bool:
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = loaded.model(x)
    return torch.allclose(got, _expected(net, x, loaded.mean, loaded.std), atol=atol)


WRAPPERS = {
    "bare": lambda sd: sd,
    "state_dict": lambda sd: {"epoch": 30, "best_prec1": 71.3, "state_dict": sd},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"lr": 0.1}},
    "model": lambda sd: {"model": sd, "acc": np.float64(0.71), "epoch": np.int64(12)},
    "net": lambda sd: {"net": sd, "acc": 71.3, "epoch": 12},
    "nested": lambda sd: {"model": {"state_dict": sd, "arch": "lenet"}, "epoch": 1},
    "weights": lambda sd: {"weights": sd, "epoch": 3},
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_wrappers_are_unwrapped(tmp_path, lenet, wrapper):
    path = tmp_path / "ckpt.pth"
    torch.save(WRAPPERS[wrapper](lenet.state_dict()), path)
    loaded = load_model(path, arch="lenet")
    assert _same_outputs(loaded, lenet)
    if wrapper != "bare":
        first = "model" if wrapper == "nested" else wrapper
        assert any(f"'{first}' entry" in note for note in loaded.notes)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_prefixes_are_stripped(tmp_path, lenet, prefix):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in lenet.state_dict().items()}}, path)
    loaded = load_model(path, arch="auto")
    assert loaded.arch == "lenet" and _same_outputs(loaded, lenet)
    for part in prefix.rstrip(".").split("."):
        assert any(f"'{part}.' prefix" in note for note in loaded.notes)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_precisions_become_float32(tmp_path, lenet, dtype):
    path = tmp_path / "ckpt.pth"
    torch.save({k: v.to(dtype) for k, v in lenet.state_dict().items()}, path)
    loaded = load_model(path, arch="lenet")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert any(str(dtype).removeprefix("torch.") in note for note in loaded.notes)
    assert _same_outputs(loaded, lenet.to(dtype).float(), atol=1e-5)


def test_legacy_format_and_safetensors_load(tmp_path, lenet):
    torch.save(lenet.state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    save_file(lenet.state_dict(), tmp_path / "weights.safetensors")
    legacy = load_model(tmp_path / "old.pth", arch="auto")
    assert _same_outputs(legacy, lenet) and any("legacy" in note for note in legacy.notes)
    assert _same_outputs(load_model(tmp_path / "weights.safetensors", arch="lenet"), lenet)


@contextmanager
def _saving_as_cuda():
    """Make torch.save tag CPU storages as 'cuda:0', as a checkpoint saved on a GPU is."""
    entry = (
        1,
        lambda storage: "cuda:0" if storage.device.type == "cpu" else None,
        lambda storage, location: None,
    )
    registry = torch.serialization._package_registry
    registry.append(entry)
    registry.sort(key=lambda item: item[0])
    try:
        yield
    finally:
        registry.remove(entry)


@pytest.mark.parametrize("legacy", [False, True])
def test_tensors_saved_on_cuda_load_on_the_cpu(tmp_path, lenet, legacy):
    path = tmp_path / "cuda.pth"
    with _saving_as_cuda():
        torch.save(lenet.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    loaded = load_model(path, arch="lenet")
    assert any("cuda:0" in note for note in loaded.notes)
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    assert _same_outputs(loaded, lenet)


def test_old_checkpoints_without_num_batches_tracked_load(tmp_path):
    torch.manual_seed(0)
    net = build_model("resnet20").eval()
    state = OrderedDict((k, v) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked"))
    torch.save(state, tmp_path / "old.pth")
    loaded = load_model(tmp_path / "old.pth", arch="auto")
    assert loaded.arch == "resnet20" and _same_outputs(loaded, net, atol=1e-5)


def test_declared_normalisation_overrides_the_catalog_default(tmp_path, lenet):
    torch.save(lenet.state_dict(), tmp_path / "ckpt.pth")
    default = load_model(tmp_path / "ckpt.pth", arch="lenet")
    assert (default.mean, default.std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    declared = load_model(
        tmp_path / "ckpt.pth", arch="lenet", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    assert declared.mean == (0.485, 0.456, 0.406) and declared.std == (0.229, 0.224, 0.225)
    assert _same_outputs(declared, lenet) and _same_outputs(default, lenet)
    assert any("declared by the upload" in note for note in declared.notes)
    assert set(declared.model.state_dict()) >= {"mean", "std"}
    with pytest.raises(CheckpointError, match="above zero"):
        load_model(tmp_path / "ckpt.pth", arch="lenet", std=(0.2, 0.0, 0.2))


def test_arch_auto_names_the_matching_architecture(tmp_path):
    for name in ("resnet44", "lenet", "preact_resnet18"):
        shapes = build_on_meta(name).state_dict()
        torch.save(
            {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()},
            tmp_path / f"{name}.pth",
        )
        loaded = load_model(tmp_path / f"{name}.pth", arch="auto")
        assert loaded.arch == name
        assert f"arch=auto: the keys and shapes match {name}" in loaded.notes


def test_mismatch_names_missing_unexpected_misshaped_and_the_closest(tmp_path):
    torch.manual_seed(0)
    state = build_model("resnet20").state_dict()
    torch.save(state, tmp_path / "resnet20.pth")
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "resnet20.pth", arch="resnet32")
    message = str(error.value)
    assert "does not fit resnet32" in message and "'layer1.3.conv1.weight'" in message
    assert "closest zoo architecture is resnet20" in message

    state["linear.weight"] = torch.zeros(100, 64)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "edited.pth")
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "edited.pth", arch="resnet20")
    message = str(error.value)
    assert "1 unexpected key(s), first 'extra.weight'" in message
    assert "'linear.weight': (100, 64) in the checkpoint, (10, 64) expected" in message
    with pytest.raises(CheckpointError, match="No zoo architecture matches.*closest is resnet20"):
        load_model(tmp_path / "edited.pth", arch="auto")


def test_unknown_arch_and_non_state_dicts_are_refused(tmp_path, lenet):
    torch.save(lenet.state_dict(), tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError, match="Unknown architecture 'vgg16'.*lenet"):
        load_model(tmp_path / "ckpt.pth", arch="vgg16")
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match=r"dict \('epoch', 'optimizer'\) but no state_dict"):
        load_model(tmp_path / "empty.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_model(tmp_path / "list.pth")


def test_probe_accepts_a_good_model_and_names_what_is_wrong_otherwise(tmp_path, lenet):
    torch.save(lenet.state_dict(), tmp_path / "ckpt.pth")
    probe_model(load_model(tmp_path / "ckpt.pth"))
    broken = {
        k: torch.full_like(v, float("nan")) if k == "fc3.bias" else v for k, v in lenet.state_dict().items()
    }
    torch.save(broken, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN"):
        probe_model(load_model(tmp_path / "nan.pth"))
    with pytest.raises(CheckpointError, match=r"shape \(4, 5\)"):
        probe_model(LoadedModel(nn.Sequential(nn.Flatten(), nn.Linear(3072, 5)), None, "x"))
    with pytest.raises(CheckpointError, match="failed on a batch"):
        probe_model(LoadedModel(nn.Linear(7, 10), None, "x"))
