"""Static inspection refuses unsafe or broken files before anything is unpickled."""

import io
import json
import pickle
import struct
import zipfile
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from models.architectures.lenet import LeNet
from models.checkpoints.errors import CheckpointError
from models.checkpoints.inspection import inspect_checkpoint
from models.checkpoints.loading import load_model
from models.checkpoints.pickle_audit import ALLOWED_GLOBALS, audit_pickle
from tests.models.helpers import FileCreator

HOW_TO = 'torch.save(model.state_dict(), "model.pth")'


@pytest.fixture
def state_dict():
    torch.manual_seed(0)
    return LeNet().state_dict()


def test_detects_each_accepted_format(tmp_path, state_dict, tiny_export):
    torch.save(state_dict, tmp_path / "zip.pth")
    torch.save(state_dict, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    save_file(state_dict, tmp_path / "weights.safetensors")
    assert inspect_checkpoint(tmp_path / "zip.pth") == "torch-zip"
    assert inspect_checkpoint(tmp_path / "legacy.pth") == "torch-legacy"
    assert inspect_checkpoint(tmp_path / "weights.safetensors") == "safetensors"
    assert inspect_checkpoint(tiny_export[0]) == "torch-export"


def test_accepts_wrapped_checkpoints_with_numbers_and_numpy_scalars(tmp_path, state_dict):
    import numpy as np

    checkpoint = {
        "epoch": 3,
        "acc": np.float64(0.9),
        "best": 91.2,
        "tags": {"a", "b"},
        "state_dict": OrderedDict(state_dict),
        "param": nn.Parameter(torch.ones(2)),
    }
    torch.save(checkpoint, tmp_path / "wrapped.pth")
    assert inspect_checkpoint(tmp_path / "wrapped.pth") == "torch-zip"


def _malicious_files(tmp_path, target, state_dict):
    payload = FileCreator(target)
    files = {}
    torch.save(payload, tmp_path / "zip.pth")
    files["torch.save"] = tmp_path / "zip.pth"
    torch.save({"state_dict": state_dict, "extra": payload}, tmp_path / "wrapped.pth")
    files["next to a state_dict"] = tmp_path / "wrapped.pth"
    torch.save(payload, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    files["legacy format"] = tmp_path / "legacy.pth"
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(payload, protocol=4))
    files["plain pickle, protocol 4"] = tmp_path / "plain.pkl"
    return files


def test_malicious_reduce_is_refused_and_never_runs(tmp_path, state_dict):
    target = tmp_path / "pwned"
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(FileCreator(control)))
    assert control.exists(), "the payload must be live for this test to mean anything"
    for what, path in _malicious_files(tmp_path, target, state_dict).items():
        with pytest.raises(CheckpointError, match="Refused") as refused:
            inspect_checkpoint(path)
        assert HOW_TO in str(refused.value), what
        with pytest.raises(CheckpointError, match="Refused"):
            load_model(path)
        assert not target.exists(), what


def test_pickled_whole_module_gets_the_state_dict_how_to(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(LeNet(), path)
    for check in (inspect_checkpoint, load_model):
        with pytest.raises(CheckpointError, match="whole model") as refused:
            check(path)
        message = str(refused.value)
        assert HOW_TO in message and "models.architectures.lenet.LeNet" in message


def _op(code: str, text: str | None = None) -> bytes:
    if text is None:
        return code.encode("latin-1")
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data + code.encode("latin-1")


def test_stack_global_names_are_resolved_through_pops_and_memo():
    # pushes "posix", "system", then decoys that are popped; memoised strings are re-read
    decoy = (
        b"\x80\x04"
        + _op("\x94", "posix")
        + _op("\x94", "system")
        + _op("", "collections")
        + _op("", "OrderedDict")
        + b"00"
        + b"h\x00h\x01\x93"
        + _op("", "echo")
        + b"\x85R."
    )
    with pytest.raises(CheckpointError, match="posix.system"):
        audit_pickle(decoy)
    computed = b"\x80\x04" + _op("", "collections") + b"]\x93)R."  # name is a list, not a str
    with pytest.raises(CheckpointError, match="computes the name"):
        audit_pickle(computed)


def test_the_allowlist_is_within_what_torch_loads_weights_only():
    """Every name the audit lets a pickle import is one torch's weights-only unpickler loads
    too (numpy's through the loader's safe_globals), so the audit never widens torch's own
    allowlist."""
    from torch._weights_only_unpickler import _get_allowed_globals

    from models.checkpoints.loading import _numpy_scalars

    numpy_names = {
        entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
        for entry in _numpy_scalars()
    }
    torch_names = set(_get_allowed_globals())
    assert ALLOWED_GLOBALS - torch_names <= numpy_names
    assert ALLOWED_GLOBALS - numpy_names <= torch_names
    assert len(ALLOWED_GLOBALS & torch_names) > 40


def _deflate_bomb(path, size=64 * 2**20):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x00" * size)
        archive.writestr("archive/version", b"3")


def _declared_size_bomb(path, state_dict):
    """A stored archive whose directory claims gigabytes per entry."""
    data = bytearray(torch_zip_bytes(state_dict))
    offset = 0
    while (offset := data.find(b"PK\x01\x02", offset)) >= 0:
        data[offset + 24 : offset + 28] = struct.pack("<I", 0xFFFFFF00)
        offset += 4
    path.write_bytes(bytes(data))


def torch_zip_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_zip_bombs_are_refused_from_the_directory(tmp_path, state_dict):
    _deflate_bomb(tmp_path / "ratio.pth")
    _declared_size_bomb(tmp_path / "declared.pth", state_dict)
    for name in ("ratio.pth", "declared.pth"):
        with pytest.raises(CheckpointError, match="zip bomb"):
            inspect_checkpoint(tmp_path / name)
        with pytest.raises(CheckpointError, match="zip bomb"):
            load_model(tmp_path / name)


def test_truncated_zip_is_reported_as_truncated(tmp_path, state_dict):
    data = torch_zip_bytes(state_dict)
    path = tmp_path / "half.pth"
    path.write_bytes(data[: len(data) // 2])
    for check in (inspect_checkpoint, load_model):
        with pytest.raises(CheckpointError, match="truncated"):
            check(path)


def test_truncated_legacy_file_is_refused(tmp_path, state_dict):
    torch.save(state_dict, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "legacy.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:300])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path / "cut.pth")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"epoch,accuracy\n1,0.53\n2,0.61\n", "text file"),
        (bytes(range(256)) * 4, "Not a recognised checkpoint"),
        (b"PK\x05\x06" + b"\x00" * 18, "not a PyTorch checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints_are_refused_with_a_reason(tmp_path, content, message):
    path = tmp_path / "upload.pth"
    path.write_bytes(content)
    for check in (inspect_checkpoint, load_model):
        with pytest.raises(CheckpointError, match=message):
            check(path)


def test_plain_pickle_of_tensors_is_not_a_torch_file(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="plain Python pickle"):
        inspect_checkpoint(path)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
    with pytest.raises(CheckpointError, match="TorchScript"):
        inspect_checkpoint(path)


def test_damaged_safetensors_header_is_refused(tmp_path, state_dict):
    path = tmp_path / "weights.safetensors"
    save_file(state_dict, path)
    data = path.read_bytes()
    header_size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + header_size])
    first = next(key for key in header if key != "__metadata__")
    header[first]["data_offsets"] = [0, 10**9]
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + header_size :])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        inspect_checkpoint(path)
