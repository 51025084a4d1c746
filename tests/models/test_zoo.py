"""Every zoo entry round-trips a state_dict through a file and ``load_model``, and its keys
follow the public implementation that teams train from."""

import pytest
import torch

from models.architectures.catalog import CATALOG
from models.architectures.lwta import LWTA
from models.architectures.registry import build_model
from models.checkpoints.loading import load_model, probe_model

BIG = {"wrn-28-10", "wrn-34-10", "resnet18", "preact_resnet18", "torchvision-resnet18"}

REFERENCE_KEYS = {
    "lenet": ["conv1.weight", "conv2.bias", "fc1.weight", "fc3.bias"],
    "resnet20": [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer3.2.bn2.num_batches_tracked",
        "linear.weight",
    ],
    "resnet56": ["layer2.8.conv2.weight", "layer3.8.bn2.bias", "linear.bias"],
    "resnet18": [
        "bn1.weight",
        "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.running_mean",
        "layer4.1.bn2.weight",
        "linear.weight",
    ],
    "preact_resnet18": [
        "conv1.weight",
        "layer1.0.bn1.weight",
        "layer3.0.shortcut.0.weight",
        "bn.running_mean",
        "linear.bias",
    ],
    "wrn-34-10": [
        "conv1.weight",
        "block1.layer.0.bn1.weight",
        "block1.layer.0.convShortcut.weight",
        "sub_block1.layer.4.conv2.weight",
        "block3.layer.4.bn2.running_var",
        "bn1.weight",
        "fc.bias",
    ],
    "lwta-wrn-34-1": [
        "conv1.weight",
        "block1.layer.0.lwta1.temp",
        "block1.layer.0.lwta2.temp",
        "sub_block1.layer.4.lwta2.temp",
        "block2.layer.0.convShortcut.weight",
        "bn1.running_mean",
        "lwta.temp",
        "fc.weight",
    ],
    "torchvision-resnet18": ["conv1.weight", "layer2.0.downsample.0.weight", "fc.weight"],
}


@pytest.mark.parametrize("name", list(CATALOG))
def test_state_dict_round_trips_through_load_model(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name).eval()
    original = model.state_dict()
    for key in REFERENCE_KEYS.get(name, []):
        assert key in original, key
    path = tmp_path / f"{name}.pth"
    torch.save(original, path)
    loaded = load_model(path, arch=name)
    assert loaded.arch == name
    assert loaded.stochastic == CATALOG[name].stochastic
    assert (loaded.mean, loaded.std) == (CATALOG[name].mean, CATALOG[name].std)
    restored = loaded.model.net.state_dict()
    assert restored.keys() == original.keys()
    assert all(torch.equal(restored[key], original[key]) for key in original)
    probe_model(loaded, batch_size=1 if name in BIG else 4)


def test_resnet_depths_and_lwta_key_counts_match_the_references():
    sizes = {name: len(build_model(name).state_dict()) for name in ("resnet20", "resnet56")}
    assert sizes == {"resnet20": 116, "resnet56": 332}
    lwta = build_model("lwta-wrn-34-1").state_dict()
    assert len([key for key in lwta if key.endswith(".temp")]) == 2 * 5 * 4 + 1
    assert lwta["lwta.temp"].shape == torch.Size([])


def test_lwta_is_random_at_test_time_and_its_surrogate_shares_the_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "lwta.pth"
    torch.save(build_model("lwta-wrn-34-1").state_dict(), path)
    loaded = load_model(path, arch="auto")
    assert loaded.arch == "lwta-wrn-34-1" and loaded.stochastic
    assert loaded.surrogate is not None
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(loaded.model(x), loaded.model(x))
    model_weights = {p.data_ptr() for p in loaded.model.parameters()}
    assert {p.data_ptr() for p in loaded.surrogate.parameters()} == model_weights


def test_lwta_winner_selection_is_hard_at_test_time_and_soft_in_the_surrogate():
    torch.manual_seed(0)
    activation = LWTA().eval()
    x = torch.randn(64, 8, 4, 4)
    hard = activation(x).reshape(64, 4, 2, 4, 4)
    soft = activation(x, test_temperature=1.0).reshape(64, 4, 2, 4, 4)
    pairs = x.reshape(64, 4, 2, 4, 4)
    # at temperature 0.01 one competitor of (almost) every pair is silenced
    hard_mask = (hard / pairs).min(dim=2).values
    soft_mask = (soft / pairs).min(dim=2).values
    assert (hard_mask < 1e-3).float().mean() > 0.95
    assert (soft_mask > 0.05).float().mean() > 0.3


def test_lwta_width_and_optional_blocks_are_read_from_the_checkpoint(tmp_path):
    path = tmp_path / "lwta2.pth"
    torch.save(build_model("lwta-wrn-34-1", width=2, sub_block1=False).state_dict(), path)
    loaded = load_model(path, arch="auto")
    assert loaded.arch == "lwta-wrn-34-1"
    assert loaded.model.net.width == 2
    assert any("width=2" in note and "sub_block1=False" in note for note in loaded.notes)


def test_kuangliu_preact_without_final_bn_loads(tmp_path):
    path = tmp_path / "preact.pth"
    torch.save(build_model("preact_resnet18", final_bn=False).state_dict(), path)
    loaded = load_model(path, arch="auto")
    assert loaded.arch == "preact_resnet18"
    assert any("final_bn=False" in note for note in loaded.notes)
