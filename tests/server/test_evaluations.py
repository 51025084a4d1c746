"""Evaluations: uploads go to a competition's development phase while it is open, quotas are
per competition, and a submission evaluated twice answers about its development evaluation
while each phase's board ranks only its own results."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.api.deps import clock
from server.main import create_app
from server.state import competition_spec, competitions
from server.state.competition_spec import CompetitionSpec
from server.state.config import get_settings
from server.state.db import session_scope
from server.state.leaderboard import published
from server.state.lifecycle import claim_evaluation, finish_evaluation, mark_queued
from server.state.submissions import add_evaluation, development_evaluation
from server.state.tables import Evaluation, PhaseKind, Status, Submission
from server.state.teams import create_team
from tests.conftest import ADMIN_TOKEN, make_checkpoint, make_eval_set
from tests.server.rows import add_evaluated
from worker.engine.protocol import SUITES

#: The version the engine reports for the smoke suite now (boards rank only its results).
SMOKE_VERSION = SUITES["smoke"].version

START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
END = START + timedelta(days=14)
CLASS = {
    "slug": "ml-class-2027",
    "title": "ML class 2027",
    "suite": "smoke",
    "score": "natural:1",
    "submissions_per_day": 1,
    "max_active_per_team": 5,
    "phases": [
        {
            "name": "Development",
            "kind": "development",
            "eval_set": "public.npz",
            "starts_at": START,
            "ends_at": END,
        },
        {"name": "Final", "kind": "final", "eval_set": "private.npz"},
    ],
}


@pytest.fixture
def competition(settings_env: dict[str, str]) -> dict[str, int]:
    """The competition ``ml-class-2027`` (one upload a day), with its sets; its phases' ids."""
    settings = get_settings()
    folder = competition_spec.sets_dir(settings.home)
    folder.mkdir(parents=True, exist_ok=True)
    make_eval_set(folder / "public.npz", seed=1)
    make_eval_set(folder / "private.npz", seed=2)
    with session_scope() as session:
        created = competitions.create_competition(
            session, CompetitionSpec.model_validate(CLASS), settings.home
        )
        return {phase.kind: phase.id for phase in created.phases}


def client_at(now: datetime) -> TestClient:
    app = create_app()
    app.dependency_overrides[clock] = lambda: now
    return TestClient(app)


def new_token(client: TestClient, name: str) -> str:
    response = client.post(
        "/api/teams", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def upload(client: TestClient, token: str, checkpoint: Path, **data: str):
    return client.post(
        "/api/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"arch": "lenet", **data},
        files={"checkpoint": ("m.pth", checkpoint.read_bytes())},
    )


@pytest.mark.parametrize(
    ("now", "opening"),
    [
        (START - timedelta(days=1), "Uploads open at 2027-01-10T09:00:00Z"),
        (END, "Uploads closed at 2027-01-24"),
    ],
)
def test_an_upload_outside_the_development_phase_is_a_409_with_its_dates(
    competition: dict[str, int], tmp_path: Path, now: datetime, opening: str
) -> None:
    client = client_at(now)
    token = new_token(client, "Ada")
    response = upload(client, token, make_checkpoint(tmp_path / "m.pth"), competition="ml-class-2027")
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["detail"].startswith(opening) and body["field"] == "competition"
    assert (body["starts_at"], body["ends_at"]) == ("2027-01-10T09:00:00Z", "2027-01-24T09:00:00Z")
    assert body["phase"] == "Development"
    with session_scope() as session:
        assert session.query(Submission).count() == 0
    # The default competition is always open, at any time.
    assert upload(client, token, make_checkpoint(tmp_path / "m.pth")).status_code == 202


def test_an_unknown_competition_is_a_422_naming_the_field(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    client = client_at(START)
    response = upload(
        client, new_token(client, "Ada"), make_checkpoint(tmp_path / "m.pth"), competition="nope"
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "Unknown competition 'nope'.", "field": "competition"}


def test_an_upload_in_the_window_goes_to_that_development_phase_under_its_quota(
    competition: dict[str, int], tmp_path: Path
) -> None:
    client = client_at(START + timedelta(days=1))
    token = new_token(client, "Ada")
    checkpoint = make_checkpoint(tmp_path / "m.pth")
    first = upload(client, token, checkpoint, competition="ml-class-2027")
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "queued" and first.json()["suite"] == "smoke"
    with session_scope() as session:
        evaluation = development_evaluation(session=session, submission_id=first.json()["id"])
        assert evaluation is not None and evaluation.phase_id == competition[PhaseKind.DEVELOPMENT]
        assert evaluation.submission.competition.slug == "ml-class-2027"

    second = upload(client, token, checkpoint, competition="ml-class-2027")
    assert second.status_code == 429 and "1 of 1 submissions used today" in second.json()["detail"]
    # Another competition's quotas are its own (the default: one queued or running at most).
    assert upload(client, token, checkpoint).status_code == 202


def _finish(session, evaluation_id: int, natural: float) -> None:
    mark_queued(session=session, evaluation_id=evaluation_id, task_id=f"t{evaluation_id}")
    assert claim_evaluation(session=session, evaluation_id=evaluation_id, owner="w", lease_seconds=60)
    results = {"suite": {"name": "smoke", "version": SMOKE_VERSION}, "natural": {"accuracy": natural}}
    assert finish_evaluation(session=session, evaluation_id=evaluation_id, owner="w", results=results)


def test_a_second_evaluation_leaves_the_answers_alone_and_each_board_ranks_its_phase(
    competition: dict[str, int],
) -> None:
    development, final = competition[PhaseKind.DEVELOPMENT], competition[PhaseKind.FINAL]
    with session_scope() as session:
        ada, _ = create_team(session=session, name="Ada")
        metrics = {"suite": {"name": "smoke"}, "natural": {"accuracy": 0.6}}
        submission = add_evaluated(
            session, team_id=ada.id, arch="lenet", stored_name="x.pth", sha256="0" * 64, size_bytes=1,
            suite="smoke", status=Status.FINISHED, metrics=metrics, phase_id=development,
        )  # fmt: skip
        session.commit()
        sid = submission.id
        again = add_evaluation(session=session, submission_id=sid, phase_id=final, suite="smoke")
        mark_queued(session=session, evaluation_id=again.id, task_id="t-final")
        assert claim_evaluation(session=session, evaluation_id=again.id, owner="w", lease_seconds=60)

    client = TestClient(create_app())
    while_running = client.get(f"/api/submissions/{sid}").json()
    assert while_running["status"] == "finished" and while_running["results"]["natural"]["accuracy"] == 0.6

    with session_scope() as session:
        results = {"suite": {"name": "smoke", "version": SMOKE_VERSION}, "natural": {"accuracy": 0.9}}
        assert finish_evaluation(session=session, evaluation_id=again.id, owner="w", results=results)
        assert session.get(Evaluation, again.id).suite_version == SMOKE_VERSION
        assert len(session.get(Submission, sid).evaluations) == 2
        boards = {
            phase: published(session=session, suite="smoke", weights={"natural": 1}, phase_id=phase).board
            for phase in (development, final, None)  # None: the default competition's
        }
    answer = client.get(f"/api/submissions/{sid}").json()
    assert answer["results"]["natural"]["accuracy"] == 0.6 and answer["attempts"] == 0
    ranked = {
        phase: [(r.team, r.submission_id, r.score, r.submissions) for r in b.rows]
        for phase, b in boards.items()
    }
    assert ranked == {development: [("Ada", sid, 0.6, 1)], final: [("Ada", sid, 0.9, 1)], None: []}
    assert client.get("/api/leaderboard").json()["rows"] == []


def test_the_upload_form_says_a_competition_is_closed_before_any_upload(competition: dict[str, int]) -> None:
    before = client_at(START - timedelta(days=1))
    closed = before.get("/submit?competition=ml-class-2027")
    assert closed.status_code == 200
    assert 'id="closed-message"' in closed.text and "Uploads open at 2027-01-10T09:00:00Z" in closed.text
    assert 'name="competition" value="ml-class-2027"' in closed.text
    assert 'id="submit-button" disabled' in closed.text
    during = client_at(START + timedelta(days=1)).get("/submit?competition=ml-class-2027").text
    assert 'id="closed-message"' not in during and 'name="competition" value="ml-class-2027"' in during
    default = before.get("/submit").text  # the default competition: always open, the same form
    assert 'id="closed-message"' not in default and 'name="competition"' not in default
    assert before.get("/submit?competition=nope").status_code == 404
