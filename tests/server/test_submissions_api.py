"""The upload API: what is accepted, and every rejection with its status and message."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from tests.conftest import ADMIN_TOKEN, make_checkpoint


@pytest.fixture
def client(settings_env: dict[str, str]) -> TestClient:
    return TestClient(create_app())


@pytest.fixture
def token(client: TestClient) -> str:
    response = client.post(
        "/api/teams", json={"name": "Team Turing"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 201
    return response.json()["token"]


def upload(client: TestClient, token: str | None, path: Path | None, **data: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    files = {"checkpoint": (path.name, path.read_bytes())} if path else None
    return client.post("/api/submissions", headers=headers, data={"arch": "lenet", **data}, files=files)


def test_team_creation_needs_the_admin_token(client: TestClient):
    missing = client.post("/api/teams", json={"name": "x"})
    assert missing.status_code == 401
    assert "admin token" in missing.json()["detail"] and "team token" not in missing.json()["detail"]
    response = client.post("/api/teams", json={"name": "x"}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 403
    assert "admin" in response.json()["detail"].lower()


def test_duplicate_team_name_is_a_conflict(client: TestClient, token: str):
    response = client.post(
        "/api/teams", json={"name": "Team Turing"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


def test_valid_upload_is_queued_and_listed(client: TestClient, token: str, tmp_path: Path):
    response = upload(client, token, make_checkpoint(tmp_path / "m.pth", epoch=3), sigma="0.25")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["sigma"] == 0.25 and body["queue_position"] == 1
    listed = client.get("/api/submissions", headers={"Authorization": f"Bearer {token}"}).json()
    assert [s["id"] for s in listed["submissions"]] == [body["id"]]
    assert listed["quota"]["remaining_today"] == listed["quota"]["per_day"] - 1


@pytest.mark.parametrize(
    ("token_value", "status", "fragment"),
    [(None, 401, "Missing token"), ("wrong", 401, "Invalid or revoked")],
)
def test_missing_or_wrong_token(client, tmp_path, token_value, status, fragment):
    response = upload(client, token_value, make_checkpoint(tmp_path / "m.pth"))
    assert response.status_code == status
    assert fragment in response.json()["detail"]


def test_unknown_architecture(client, token, tmp_path):
    response = upload(client, token, make_checkpoint(tmp_path / "m.pth"), arch="vgg99")
    assert response.status_code == 422
    assert response.json()["field"] == "arch"
    assert "Unknown architecture 'vgg99'" in response.json()["detail"]


def test_missing_file(client, token):
    response = upload(client, token, None)
    assert response.status_code == 422
    assert response.json()["field"] == "checkpoint"
    assert "No checkpoint file" in response.json()["detail"]


def test_file_that_is_not_a_checkpoint(client, token, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("these are my training notes, not weights\n")
    response = upload(client, token, text)
    assert response.status_code == 422
    assert response.json()["field"] == "checkpoint"
    assert response.json()["detail"]
    assert not list((tmp_path / "home" / "uploads").glob("*"))


def test_wrong_architecture_for_the_weights(client, token, tmp_path):
    response = upload(client, token, make_checkpoint(tmp_path / "m.pth"), arch="resnet20")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "lenet" in detail  # names the closest matching architecture


@pytest.mark.parametrize(("sigma", "fragment"), [("0", "positive"), ("-1", "positive"), ("abc", "number")])
def test_bad_sigma(client, token, tmp_path, sigma, fragment):
    response = upload(client, token, make_checkpoint(tmp_path / "m.pth"), sigma=sigma)
    assert response.status_code == 422
    assert response.json()["field"] == "sigma"
    assert fragment in response.json()["detail"]


def test_one_active_submission_per_team(client, token, tmp_path):
    first = upload(client, token, make_checkpoint(tmp_path / "a.pth"))
    assert first.status_code == 202
    second = upload(client, token, make_checkpoint(tmp_path / "b.pth", seed=1))
    assert second.status_code == 429
    assert "queued or running" in second.json()["detail"]


def test_other_teams_cannot_see_errors_or_files(client, token, tmp_path):
    created = upload(client, token, make_checkpoint(tmp_path / "secret-name.pth")).json()
    other = client.post(
        "/api/teams", json={"name": "Rivals"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["token"]
    seen = client.get(f"/api/submissions/{created['id']}", headers={"Authorization": f"Bearer {other}"})
    assert seen.status_code == 200
    assert seen.json()["filename"] == "" and seen.json()["sha256"] == ""
    mine = client.get(f"/api/submissions/{created['id']}", headers={"Authorization": f"Bearer {token}"})
    assert mine.json()["filename"] == "secret-name.pth"
    cancel = client.post(
        f"/api/submissions/{created['id']}/cancel", headers={"Authorization": f"Bearer {other}"}
    )
    assert cancel.status_code == 404


def test_unknown_submission_is_404(client):
    response = client.get("/api/submissions/424242")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_normalisation_defaults_to_auto_accepts_as_declared_and_refuses_others(client, token, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "m.pth")
    response = upload(client, token, checkpoint, normalisation="sometimes")
    assert response.status_code == 422
    assert response.json()["field"] == "normalisation"
    assert "'auto'" in response.json()["detail"] and "'as-declared'" in response.json()["detail"]
    response = upload(client, token, checkpoint, mean="0,0,0", std="1,1,1", normalisation="as-declared")
    assert response.status_code == 202, response.text
    assert response.json()["normalisation"] == "as-declared"
    assert response.json()["normalisation_inferred"] is None
    client.post(
        f"/api/submissions/{response.json()['id']}/cancel", headers={"Authorization": f"Bearer {token}"}
    )
    response = upload(client, token, checkpoint)
    assert response.status_code == 202 and response.json()["normalisation"] == "auto"
