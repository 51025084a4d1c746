"""A corpus of hostile and broken requests: each gets a clear 4xx, never a 5xx, and nothing
is executed or written outside the upload folder. Over 400 lines: a corpus grows by one case per
attack found, and reads best in one place."""

import io
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from server.main import create_app
from tests.conftest import ADMIN_TOKEN, make_checkpoint

MARKER = Path("/tmp/arena-pwned-marker")


class CreatesFile:
    """A pickle payload whose unpickling would create MARKER (it must never run)."""

    def __reduce__(self):
        return (open, (str(MARKER), "w"))


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {MARKER}",))


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _lenet_state() -> dict:
    from models.architectures.registry import build_model

    torch.manual_seed(0)
    return build_model("lenet").state_dict()


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (300 * 2**20))
    return buffer.getvalue()


def _nan_weights() -> bytes:
    state = _lenet_state()
    for value in state.values():
        value.fill_(float("nan"))
    return _torch_bytes(state)


def _wrong_shapes() -> bytes:
    state = _lenet_state()
    state["fc1.weight" if "fc1.weight" in state else next(iter(state))] = torch.zeros(7, 7)
    return _torch_bytes(state)


FILES = {
    "empty": lambda: b"",
    "text": lambda: b"epoch 10: loss 0.31 accuracy 0.91\n",
    "truncated-zip": lambda: _torch_bytes(_lenet_state())[:2000],
    "zip-bomb": _zip_bomb,
    "malicious-pickle": lambda: pickle.dumps({"state_dict": CreatesFile()}),
    "malicious-torch-save": lambda: _torch_bytes({"w": Exploit()}),
    "pickled-module": lambda: _torch_bytes(torch.nn.Linear(3, 10)),
    "wrong-keys": lambda: _torch_bytes({"encoder.weight": torch.zeros(3, 3)}),
    "wrong-shapes": _wrong_shapes,
    "nan-weights": _nan_weights,
    "random-bytes": lambda: bytes(range(256)) * 64,
    "bad-safetensors": lambda: struct.pack("<Q", 40) + b'{"w": {"dtype": "F32", "shape": [9]}}xxx',
    "png-image": lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
}


@pytest.fixture
def client(settings_env: dict[str, str]) -> TestClient:
    MARKER.unlink(missing_ok=True)
    return TestClient(create_app())


@pytest.fixture
def token(client: TestClient) -> str:
    response = client.post(
        "/api/teams", json={"name": "Mallory"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    return response.json()["token"]


def _upload(client: TestClient, token: str, content: bytes, name: str = "model.pth", **data: str):
    return client.post(
        "/api/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"arch": "lenet", **data},
        files={"checkpoint": (name, content)},
    )


def _home_files(home: Path) -> set[Path]:
    return {p for p in home.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", sorted(FILES))
def test_bad_file_is_refused_with_a_reason(client, token, settings_env, case):
    uploads = Path(settings_env["ARENA_HOME"]) / "uploads"
    response = _upload(client, token, FILES[case]())
    assert 400 <= response.status_code < 500, (case, response.text)
    body = response.json()
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    assert body.get("field") == "checkpoint"
    assert not MARKER.exists(), "uploaded code ran"
    assert not list(uploads.glob("*")), "a refused upload was kept"


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"arch": "alexnet"}, "arch", "Unknown architecture"),
        ({"arch": ""}, "arch", "Choose an architecture"),
        ({"sigma": "0"}, "sigma", "positive"),
        ({"sigma": "-1"}, "sigma", "positive"),
        ({"sigma": "abc"}, "sigma", "number"),
        ({"sigma": "nan"}, "sigma", "positive"),
        ({"sigma": "inf"}, "sigma", "positive"),
        ({"mean": "0.5,0.5"}, "mean", "three"),
        ({"std": "0,1,1"}, "std", "positive"),
        ({"description": "x" * 5000}, "description", "at most"),
        ({"description": "nul\x00byte"}, "description", "control characters"),
    ],
)
def test_bad_form_field(client, token, tmp_path, fields, field, fragment):
    response = _upload(client, token, make_checkpoint(tmp_path / "m.pth").read_bytes(), **fields)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert fragment in response.json()["detail"]


def test_oversized_file_is_refused_while_streaming(client, token, monkeypatch):
    monkeypatch.setenv("ARENA_MAX_UPLOAD_MB", "1")
    from server.state.config import get_settings

    get_settings.cache_clear()
    response = _upload(client, token, b"\0" * (3 * 2**20))
    assert response.status_code == 413
    assert "larger than the limit of 1 MiB" in response.json()["detail"]


def test_path_traversal_file_name_is_only_display_text(client, token, settings_env, tmp_path):
    home = Path(settings_env["ARENA_HOME"])
    content = make_checkpoint(tmp_path / "m.pth").read_bytes()
    before = _home_files(home.parent)
    response = _upload(client, token, content, name="../../../../tmp/evil.pth")
    assert response.status_code == 202
    created = set(_home_files(home.parent)) - before
    assert all((home / "uploads") in path.parents for path in created if path.suffix == ".pth")
    assert not Path("/tmp/evil.pth").exists()
    mine = client.get(
        f"/api/submissions/{response.json()['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert mine.json()["filename"] == "evil.pth"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz", "arena_token_without_scheme"],
)
def test_bad_or_missing_token(client, tmp_path, header):
    headers = {"Authorization": header} if header else {}
    response = client.post(
        "/api/submissions",
        headers=headers,
        data={"arch": "lenet"},
        files={"checkpoint": ("m.pth", make_checkpoint(tmp_path / "m.pth").read_bytes())},
    )
    assert response.status_code == 401
    assert "token" in response.json()["detail"].lower()


@pytest.mark.parametrize("name", ["Équipe Ångström 机器学习 🚀", "Robert'); DROP TABLE teams;--"])
def test_unusual_team_names_are_stored_verbatim(client, name):
    response = client.post(
        "/api/teams", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 201
    again = client.post("/api/teams", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert again.status_code == 409  # the table still exists and holds the name
    assert name in again.json()["detail"]


@pytest.mark.parametrize("name", ["", "   ", "a" * 101, "tab\tname", "nul\x00name"])
def test_invalid_team_names(client, name):
    response = client.post(
        "/api/teams", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 422
    assert response.json()["detail"]


def test_another_teams_submission_cannot_be_cancelled(client, token, tmp_path):
    created = _upload(client, token, make_checkpoint(tmp_path / "m.pth").read_bytes()).json()
    other = client.post(
        "/api/teams", json={"name": "Eve"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["token"]
    response = client.post(
        f"/api/submissions/{created['id']}/cancel", headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_checkpoint_sent_as_text_field(client, token):
    response = client.post(
        "/api/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"arch": "lenet", "checkpoint": "not a file"},
    )
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/leaderboard?suite=%00", "/export/leaderboard.csv?suite=a%00b", "/?suite=%01"],
)
def test_control_characters_in_the_suite_are_refused(client, path):
    response = client.get(path)
    assert response.status_code == 422
    assert response.json()["field"] == "suite"


def test_team_page_of_an_impossible_name_is_not_found(client):
    assert client.get("/teams/a%00b").status_code == 404


# --- hostile uploads aimed at the static audit: bounded, refused with a reason ------------


def _memo_bomb() -> bytes:
    """A small deflated torch zip whose data.pkl memoises one value past the memo bound."""
    from models.checkpoints.limits import MAX_MEMO

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x04N" + b"\x94" * (MAX_MEMO + 1) + b".")
        archive.writestr("archive/version", b"3\n")
    return buffer.getvalue()


def _declared_50_gib() -> bytes:
    data = b"\x80\x04\x8e" + (50 * 2**30).to_bytes(8, "little")
    return data + b"\x00" * (117 - len(data))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from tests.models.helpers import TinyNet, export_to

    torch.manual_seed(0)
    return export_to(TinyNet(), tmp_path_factory.mktemp("export") / "tiny.pt2")


def _edited_program(source: Path, edit) -> bytes:
    import json

    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    name = next(name for name in entries if name.endswith("models/model.json"))
    edited = edit(json.loads(entries[name]))
    entries[name] = edited if isinstance(edited, bytes) else json.dumps(edited).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return buffer.getvalue()


def _sizes_as_ints(program: dict) -> dict:
    program["graph_module"]["graph"]["tensor_values"]["x"]["sizes"] = [2, 3, 32, 32]
    return program


def _writes_marker(program: dict) -> dict:
    node = program["graph_module"]["graph"]["nodes"][0]
    node["target"] = "torch.ops.aten.from_file.default"
    node["inputs"] = [
        {"name": "filename", "arg": {"as_string": str(MARKER)}, "kind": 1},
        {"name": "shared", "arg": {"as_bool": True}, "kind": 1},
        {"name": "size", "arg": {"as_int": 4}, "kind": 1},
    ]
    return program


def _prints(program: dict) -> dict:
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.ops.aten._print.default"
    return program


AUDIT_CASES = {
    "memo bomb": (lambda exported: _memo_bomb(), "memo entries"),
    "declared 50 GiB object": (lambda exported: _declared_50_gib(), "53,687,091,200 bytes"),
    "model.json is a list": (
        lambda exported: _edited_program(exported, lambda program: [program]),
        "is a list",
    ),
    "sizes are plain ints": (
        lambda exported: _edited_program(exported, _sizes_as_ints),
        "where a size object",
    ),
    "200 000 levels of nesting": (
        lambda exported: _edited_program(exported, lambda _: b"[" * 200_000 + b"]" * 200_000),
        "nested too deeply",
    ),
    "graph writes a file": (
        lambda exported: _edited_program(exported, _writes_marker),
        "aten.from_file",
    ),
    "graph prints": (lambda exported: _edited_program(exported, _prints), "aten._print"),
}


@pytest.mark.parametrize("case", list(AUDIT_CASES))
def test_hostile_upload_is_refused_by_the_audit_with_a_reason(client, token, settings_env, exported, case):
    build, fragment = AUDIT_CASES[case]
    uploads = Path(settings_env["ARENA_HOME"]) / "uploads"
    response = _upload(client, token, build(exported), name="model.pt2", arch="auto")
    assert response.status_code == 422, (case, response.text)
    assert fragment in response.json()["detail"]
    assert response.json().get("field") == "checkpoint"
    assert not MARKER.exists(), "uploaded code ran"
    assert not list(uploads.glob("*")), "a refused upload was kept"


# --- crafted files whose checks used to raise something other than a refusal -------------


def _pt2(model_json: bytes) -> bytes:
    """A torch.export-shaped archive around a hand-written ``model.json``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("m/archive_format", "pt2")
        archive.writestr("m/models/model.json", model_json)
    return buffer.getvalue()


def _program(input_spec: object, sizes: object) -> bytes:
    import json

    return json.dumps(
        {
            "graph_module": {
                "signature": {"input_specs": [input_spec]},
                "graph": {"tensor_values": {"x": {"sizes": sizes}}, "nodes": []},
            }
        }
    ).encode()


CRAFTED = {
    # BINBYTES8 announcing 50 GiB in a 117-byte file (MemoryError when read naively).
    "binbytes8-50GiB": lambda: (b"\x80\x04\x8e" + struct.pack("<Q", 50 * 2**30) + b"\0" * 100 + b".")[:117],
    # model.json with a list where an object belongs, plain ints where size objects belong
    # (AttributeError), and 200 000 levels of nesting (RecursionError).
    "pt2-list-for-dict": lambda: _pt2(_program({"user_input": []}, [])),
    "pt2-int-sizes": lambda: _pt2(
        _program({"user_input": {"arg": {"as_tensor": {"name": "x"}}}}, [1, 3, 32, 32])
    ),
    "pt2-deep-nesting": lambda: _pt2(b"[" * 200_000 + b"]" * 200_000),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_file_is_refused_and_not_kept(client, token, settings_env, case):
    home = Path(settings_env["ARENA_HOME"])
    name = "model.pt2" if case.startswith("pt2") else "model.pth"
    response = _upload(client, token, CRAFTED[case](), name=name, arch="auto")
    assert 400 <= response.status_code < 500, (case, response.text)
    assert response.json().get("field") == "checkpoint"
    assert len(response.json()["detail"]) > 10
    assert not list((home / "uploads").glob("*")), "a refused upload was kept"
    quota = client.get("/api/teams/me/quota", headers={"Authorization": f"Bearer {token}"})
    assert quota.json()["used_today"] == 0 and quota.json()["active"] == 0


def test_oversized_chunked_upload_is_413(client, token, monkeypatch):
    """No Content-Length: the limit is found while the body streams in."""
    monkeypatch.setenv("ARENA_MAX_UPLOAD_MB", "1")
    from server.state.config import get_settings

    get_settings.cache_clear()
    boundary = "arena-boundary"

    def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="arch"\r\n\r\nlenet\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="checkpoint"; '
            'filename="big.pth"\r\n\r\n'
        ).encode()
        for _ in range(3 * 16):
            yield b"\0" * 2**16
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/submissions",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        content=body(),
    )
    assert response.status_code == 413, response.text
    assert "larger than the limit of 1 MiB" in response.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/", "/submit", "/api/leaderboard", "/export/leaderboard.csv", "/api/architectures"]
)
def test_head_is_answered_like_get(client, path):
    head, get = client.head(path), client.get(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_of_a_missing_page_is_404(client):
    assert client.head("/teams/nobody").status_code == 404
