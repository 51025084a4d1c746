"""Intake holds no database lock while it handles a file, and leaves no file behind.

Real SQLite, real probe child: one upload is held mid-stream by a thread (a slow client)
while other teams use the platform.
"""

import os
import threading
import time
from functools import partial
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from server.api.intake import Upload, take_in
from server.main import create_app
from server.state.config import get_settings
from server.state.db import session_scope
from server.state.lifecycle import fail_evaluation
from server.state.submissions import development_evaluation, stored_names
from server.state.tables import Status, Submission
from server.state.teams import quota_usage
from tests.conftest import ADMIN_TOKEN, make_checkpoint
from worker.reconciler import sweep_uploads

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class HeldStream:
    """A file object that hands over its first half, then waits until released."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.position = 0
        self.paused = threading.Event()
        self.release = threading.Event()

    def read(self, size: int = -1) -> bytes:
        half = len(self.content) // 2
        if self.position >= half and not self.release.is_set():
            self.paused.set()
            self.release.wait()
        end = len(self.content) if size < 0 else self.position + size
        if self.position < half:
            end = min(end, half)
        chunk = self.content[self.position : end]
        self.position += len(chunk)
        return chunk


@pytest.fixture
def client(settings_env: dict[str, str]) -> TestClient:
    return TestClient(create_app())


def _team(client: TestClient, name: str) -> tuple[int, str]:
    response = client.post("/api/teams", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def test_an_upload_held_mid_stream_blocks_no_other_team(client, tmp_path):
    team_id, _ = _team(client, "Slow")
    checkpoint = make_checkpoint(tmp_path / "m.pth").read_bytes()
    held = HeldStream(checkpoint)
    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            outcome["id"] = anyio.run(
                partial(
                    take_in,
                    Upload(file=held, filename="m.pth", arch="lenet"),  # type: ignore[arg-type]
                    team_id=team_id,
                    settings=get_settings(),
                )
            )
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert held.paused.wait(60), outcome
        # Meanwhile: a new team, and that team's whole upload, probe included.
        _, token = _team(client, "Quick")
        response = client.post(
            "/api/submissions",
            headers={"Authorization": f"Bearer {token}"},
            data={"arch": "lenet"},
            files={"checkpoint": ("q.pth", checkpoint)},
        )
        assert response.status_code == 202, response.text
    finally:
        held.release.set()
        thread.join()
    assert "error" not in outcome, outcome
    with session_scope() as session:
        slow = development_evaluation(session=session, submission_id=outcome["id"])
        assert slow is not None and slow.status == Status.QUEUED


def test_a_quota_refusal_after_storing_keeps_nothing(client, tmp_path, monkeypatch):
    """Two uploads of one team pass the early check together; the reservation refuses the
    second, whose stored file is deleted and whose quota is not charged."""
    team_id, token = _team(client, "Twice")
    checkpoint = make_checkpoint(tmp_path / "m.pth").read_bytes()
    held = HeldStream(checkpoint)
    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            anyio.run(
                partial(
                    take_in,
                    Upload(file=held, filename="m.pth", arch="lenet"),  # type: ignore[arg-type]
                    team_id=team_id,
                    settings=get_settings(),
                )
            )
        except BaseException as error:  # noqa: BLE001 - asserted below
            outcome["error"] = error

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert held.paused.wait(60)
        first = client.post(
            "/api/submissions",
            headers={"Authorization": f"Bearer {token}"},
            data={"arch": "lenet"},
            files={"checkpoint": ("a.pth", checkpoint)},
        )
        assert first.status_code == 202, first.text
    finally:
        held.release.set()
        thread.join()
    error = outcome["error"]
    assert getattr(error, "status_code", None) == 429, error
    uploads = get_settings().upload_dir
    with session_scope() as session:
        kept = stored_names(session=session)
        used, active = quota_usage(session=session, team_id=team_id)
    assert {p.name for p in uploads.iterdir()} == kept and len(kept) == 1
    assert (used, active) == (1, 1)


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_sweep_deletes_old_orphans_only(client, tmp_path):
    _, token = _team(client, "Keeper")
    checkpoint = make_checkpoint(tmp_path / "m.pth").read_bytes()
    accepted = client.post(
        "/api/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"arch": "lenet"},
        files={"checkpoint": ("m.pth", checkpoint)},
    )
    assert accepted.status_code == 202, accepted.text
    settings = get_settings()
    with session_scope() as session:
        submission = session.get(Submission, accepted.json()["id"])
        assert submission is not None
        kept = settings.upload_dir / submission.stored_name
        # A finished or failed submission's file is read again (final runs, rejudging).
        evaluation = development_evaluation(session=session, submission_id=submission.id)
        fail_evaluation(session=session, evaluation_id=evaluation.id, owner=None, error="x", charged=False)
    orphan = settings.upload_dir / "0123456789abcdef0123456789abcdef.pth"
    in_progress = settings.upload_dir / "fedcba9876543210fedcba9876543210.pt2"
    orphan.write_bytes(b"left by a killed API process")
    in_progress.write_bytes(b"being checked right now")
    _age(orphan, settings.upload_grace_seconds + 60)
    _age(kept, settings.upload_grace_seconds + 60)

    assert sweep_uploads(settings) == [orphan]
    assert not orphan.exists()
    assert kept.exists() and in_progress.exists()
    assert sweep_uploads(settings) == []
