"""The static audit's hard bounds, checked by counts (never by the clock): a pickle just inside
each bound passes, one step past it is refused with the bound named, and nothing is read or
allocated for a length the file merely declares."""

import io
import pickle
import zipfile

import pytest
import torch

from models.architectures.lenet import LeNet
from models.checkpoints import limits
from models.checkpoints.errors import CheckpointError
from models.checkpoints.inspection import inspect_checkpoint
from models.checkpoints.limits import MAX_MEMO, MAX_NESTING, MAX_OPCODES, MAX_STACK, Budget
from models.checkpoints.pickle_audit import audit_pickle

PROTO = b"\x80\x04"
NONE, POP, MARK, TUPLE, MEMOIZE, STOP = b"N", b"0", b"(", b"t", b"\x94", b"."


def _opcodes(count: int) -> bytes:
    """A valid pickle of exactly ``count`` opcodes (PROTO, NONE/POP pairs, NONE, STOP)."""
    pairs, odd = divmod(count - 3, 2)
    return PROTO + (NONE + POP) * pairs + NONE * odd + NONE + STOP


def _memo(entries: int) -> bytes:
    return PROTO + NONE + MEMOIZE * entries + STOP


def _stack(values: int) -> bytes:
    return PROTO + MARK + NONE * (values - 1) + TUPLE + STOP


def _nesting(levels: int) -> bytes:
    return PROTO + MARK * levels + TUPLE * levels + STOP


def _count(data: bytes) -> int:
    import pickletools

    return sum(1 for _ in pickletools.genops(data))


@pytest.mark.parametrize(
    ("build", "bound", "message"),
    [
        (_opcodes, MAX_OPCODES, "opcodes"),
        (_memo, MAX_MEMO, "memo entries"),
        (_stack, MAX_STACK, "values on its stack"),
        (_nesting, MAX_NESTING, "levels of nesting"),
    ],
)
def test_each_bound_admits_its_limit_and_refuses_one_more(build, bound, message):
    assert audit_pickle(build(bound)) == []
    with pytest.raises(CheckpointError, match=message):
        audit_pickle(build(bound + 1))


def test_the_builders_count_what_they_say():
    assert _count(_opcodes(1001)) == 1001 and _count(_opcodes(1000)) == 1000
    assert pickle.loads(_nesting(3)) == (((),),)
    assert pickle.loads(_stack(4)) == (None, None, None)


def _torch_zip(data_pkl: bytes, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/version", b"3\n")
    return buffer.getvalue()


def test_memo_bomb_in_a_small_torch_zip_is_refused(tmp_path):
    """The shape of the attack that kept the audit busy for minutes: a small zip whose data.pkl
    memoises one value over and over (here just past the bound)."""
    path = tmp_path / "memo.pth"
    path.write_bytes(_torch_zip(_memo(MAX_MEMO + 1)))
    assert path.stat().st_size < 10_000
    with pytest.raises(CheckpointError, match="memo entries"):
        inspect_checkpoint(path)


def test_declared_50_gib_object_is_refused_before_anything_is_allocated(tmp_path):
    """117 bytes whose first object claims 50 GiB: refused from the declared length alone."""
    huge = b"\x8e" + (50 * 2**30).to_bytes(8, "little")  # BINBYTES8
    data = PROTO + huge
    data += b"\x00" * (117 - len(data))
    for name, content in {"bytes.pth": data, "zip.pth": _torch_zip(data)}.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match="declares an object of 53,687,091,200 bytes"):
            inspect_checkpoint(path)


def test_huge_object_after_the_legacy_magic_number_is_refused(tmp_path):
    state = LeNet().state_dict()
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "legacy.pth").read_bytes()
    magic_end = data.index(b".") + 1  # the first pickle holds only the magic number
    bomb = PROTO + b"\x8e" + (2**40).to_bytes(8, "little")
    (tmp_path / "bomb.pth").write_bytes(data[:magic_end] + bomb)
    with pytest.raises(CheckpointError, match="declares an object of"):
        inspect_checkpoint(tmp_path / "bomb.pth")


def test_oversized_pickle_member_is_refused_from_the_directory(tmp_path):
    data = _torch_zip(PROTO + NONE + STOP + b"\x00" * (limits.MAX_PICKLE_BYTES + 1), zipfile.ZIP_STORED)
    (tmp_path / "long.pth").write_bytes(data)
    with pytest.raises(CheckpointError, match="data.pkl"):
        inspect_checkpoint(tmp_path / "long.pth")


def test_archive_declaring_more_than_the_absolute_bound_is_refused(tmp_path):
    """Stored entries each within the per-entry bound add up past MAX_UNPACKED_BYTES (no
    ratio applies to stored entries): refused from the directory, nothing read."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in ("data.pkl", "version", "data/0", "data/1"):
            archive.writestr(f"archive/{name}", _opcodes(10))
    data = bytearray(buffer.getvalue())
    offset = 0
    while (offset := data.find(b"PK\x01\x02", offset)) >= 0:  # each central directory entry
        data[offset + 24 : offset + 28] = limits.MAX_ENTRY_BYTES.to_bytes(4, "little")
        offset += 4
    path = tmp_path / "declared.pth"
    path.write_bytes(bytes(data))
    assert 4 * limits.MAX_ENTRY_BYTES > limits.MAX_UNPACKED_BYTES
    with pytest.raises(CheckpointError, match="above the limit of"):
        inspect_checkpoint(path)


def test_time_budget_is_checked_as_the_audit_goes():
    """A spent budget stops the walk at the next look at the clock (every CHECK_EVERY
    opcodes), so a slow host cannot turn a bounded audit into a long one."""
    data = _opcodes(limits.CHECK_EVERY + 10)
    with pytest.raises(CheckpointError, match="took longer than 0 s"):
        audit_pickle(data, Budget(0))
    assert audit_pickle(_opcodes(limits.CHECK_EVERY - 1), Budget(0)) == []


def test_real_checkpoints_stay_far_inside_the_bounds(tmp_path):
    import pickletools

    torch.save({"epoch": 9, "state_dict": LeNet().state_dict()}, tmp_path / "model.pth")
    with zipfile.ZipFile(tmp_path / "model.pth") as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert _count(data) < MAX_OPCODES // 100
    assert (
        sum(op.name in ("MEMOIZE", "BINPUT", "LONG_BINPUT") for op, _, _ in pickletools.genops(data))
        < MAX_MEMO // 100
    )
    assert inspect_checkpoint(tmp_path / "model.pth") == "torch-zip"


def test_opcode_bound_holds_for_the_whole_legacy_stream(tmp_path):
    """The legacy format is several pickles in a row: their opcodes count together."""
    from models.checkpoints.inspection import LEGACY_MAGIC

    head = pickle.dumps(LEGACY_MAGIC, 2) + pickle.dumps(1001, 2) + pickle.dumps({}, 2)
    part = _opcodes(MAX_OPCODES * 6 // 10)
    assert audit_pickle(part) == []
    (tmp_path / "legacy.pth").write_bytes(head + part + part)
    with pytest.raises(CheckpointError, match="opcodes"):
        inspect_checkpoint(tmp_path / "legacy.pth")
