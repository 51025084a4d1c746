"""Rejudging: a rerun queues a new, uncharged evaluation of every submission whose latest
result in a phase ran an older version of the competition's suite (never twice), boards rank
only the current version's results and say how many submissions are being re-evaluated."""

from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.cli import main
from server.main import create_app
from server.state import finals
from server.state.competition_spec import DEFAULT_SLUG
from server.state.competitions import get_competition
from server.state.db import session_scope
from server.state.leaderboard import published, rejudging_count
from server.state.lifecycle import claim_evaluation, finish_evaluation
from server.state.tables import Evaluation, Result, Status, Submission
from server.state.teams import create_team
from tests.conftest import ADMIN_TOKEN
from tests.server.rows import add_evaluated, add_result, default_target
from worker.engine.protocol import SUITES

CURRENT = SUITES["smoke"].version
OLDER = "1"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class FakeBroker:
    """Stands for the Celery client: records the evaluation ids sent."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send_task(self, name: str, args: list[Any], task_id: str) -> None:
        self.sent.append(args[0])


def evaluated(team: str, natural: float, version: str, **fields: Any) -> int:
    """A submission of a new team in the default competition, finished under ``version``."""
    with session_scope() as session:
        owner, _ = create_team(session=session, name=team)
        added = add_evaluated(
            session, team_id=owner.id, suite="smoke", arch="lenet", stored_name="x.pth", sha256="0" * 64,
            size_bytes=1, status=Status.FINISHED, **fields,
        )  # fmt: skip
        metrics = {"suite": {"name": "smoke"}, "natural": {"accuracy": natural}}
        add_result(session, added.evaluations[0], metrics, suite_version=version)
        return added.id


@pytest.fixture
def rows(settings_env: dict[str, str]) -> dict[str, int]:
    """Ada's result ran an older version; Bob's the current one; Cleo's an older one, with a
    rerun already queued."""
    ids = {
        "Ada": evaluated("Ada", 0.9, OLDER),
        "Bob": evaluated("Bob", 0.5, CURRENT),
        "Cleo": evaluated("Cleo", 0.8, OLDER),
    }
    with session_scope() as session:
        phase_id = default_target(session)["phase_id"]
        session.add(
            Evaluation(submission_id=ids["Cleo"], phase_id=phase_id, suite="smoke", status=Status.QUEUED)
        )
    return ids


def board(session):
    return published(session=session, suite="smoke", weights={"natural": 1}).board


def test_a_rerun_queues_only_older_versions_once_and_uncharged(rows: dict[str, int]) -> None:
    broker = FakeBroker()
    with session_scope() as session:
        charged = {s.id: s.charged for s in session.scalars(select(Submission))}
        assert [row.team for row in board(session).rows] == ["Bob"]  # only the current version ranks
        default = get_competition(session, DEFAULT_SLUG)
        assert finals.rerun(session, default, app=broker) == 1
        assert finals.rerun(session, default, "development", app=broker) == 0  # not twice
        (rerun,) = [session.get(Evaluation, i) for i in broker.sent]
        assert (rerun.submission_id, rerun.status, rerun.suite) == (rows["Ada"], Status.QUEUED, "smoke")
        assert {s.id: s.charged for s in session.scalars(select(Submission))} == charged
        phase_id = default_target(session)["phase_id"]
        assert rejudging_count(session, phase_id, "smoke") == 2  # Ada's and Cleo's
        shown = board(session)
        assert shown.rejudging == 2 and [row.team for row in shown.rows] == ["Bob"]

        assert claim_evaluation(session=session, evaluation_id=rerun.id, owner="w", lease_seconds=60)
        results = {"suite": {"name": "smoke", "version": CURRENT}, "natural": {"accuracy": 0.7}}
        assert finish_evaluation(session=session, evaluation_id=rerun.id, owner="w", results=results)
        after = board(session)
        assert [(row.team, row.score) for row in after.rows] == [("Ada", 0.7), ("Bob", 0.5)]
        assert after.rejudging == 1
        # The old result stays, with its version.
        versions = session.scalars(select(Result.suite_version).where(Result.submission_id == rows["Ada"]))
        assert sorted(versions) == sorted([OLDER, CURRENT])
        assert finals.rerun(session, default, app=broker) == 0


def test_the_rerun_route_and_the_board_say_how_many_are_rejudged(rows: dict[str, int]) -> None:
    client = TestClient(create_app())
    assert client.post(f"/api/competitions/{DEFAULT_SLUG}/rerun").status_code == 401
    assert (
        client.post(
            f"/api/competitions/{DEFAULT_SLUG}/rerun", headers={"Authorization": "Bearer x"}
        ).status_code
        == 403
    )
    assert client.post("/api/competitions/nope/rerun", headers=ADMIN).status_code == 404
    unknown = client.post(f"/api/competitions/{DEFAULT_SLUG}/rerun", headers=ADMIN, json={"phase": "Final"})
    assert unknown.status_code == 404 and "has no phase 'Final'" in unknown.json()["detail"]

    answer = client.post(
        f"/api/competitions/{DEFAULT_SLUG}/rerun", headers=ADMIN, json={"phase": "development"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"slug": DEFAULT_SLUG, "suite": "smoke", "suite_version": CURRENT, "queued": 1}
    again = client.post(f"/api/competitions/{DEFAULT_SLUG}/rerun", headers=ADMIN)
    assert again.json()["queued"] == 0

    assert client.get("/api/leaderboard").json()["rejudging"] == 2
    page = client.get("/").text
    assert f"2 submissions are being re-evaluated under suite version {CURRENT}" in page
    with session_scope() as session:
        active = session.scalar(
            select(func.count(Evaluation.id)).where(Evaluation.status.in_((Status.QUEUED, Status.VALIDATING)))
        )
    assert active == 2


def test_the_rerun_command(rows: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker()
    monkeypatch.setattr("server.state.queue._client", lambda url: broker)
    runner = CliRunner()
    done = runner.invoke(main, ["competition", "rerun", DEFAULT_SLUG, "--phase", "development"])
    assert done.exit_code == 0, done.output
    assert f"1 evaluations queued under suite smoke version {CURRENT}" in done.output
    assert len(broker.sent) == 1
    assert runner.invoke(main, ["competition", "rerun", DEFAULT_SLUG]).output.startswith("0 evaluations")
    assert runner.invoke(main, ["competition", "rerun", DEFAULT_SLUG, "--phase", "nope"]).exit_code != 0
    assert runner.invoke(main, ["competition", "rerun", "nope"]).exit_code != 0


def test_no_board_shows_a_rejudging_line_without_reruns(rows: dict[str, int]) -> None:
    client = TestClient(create_app())
    with session_scope() as session:  # Cleo's queued rerun counts; take it away
        session.execute(Evaluation.__table__.delete().where(Evaluation.status == Status.QUEUED))
    assert client.get("/api/leaderboard").json()["rejudging"] == 0
    assert 'id="rejudging"' not in client.get("/").text
