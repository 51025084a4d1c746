"""The end of a competition: final selections (limit, window, ownership, eligibility), the team
page's selection form, the final phase's start at the deadline (once, whoever calls), the
reconciler's round, publishing, and the migration. Over 400 lines: one file per end-of-competition
story, whose tests share its fixtures."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from server.api.deps import clock
from server.cli import main
from server.main import create_app
from server.state import competition_spec, competitions, finals
from server.state.competition_spec import CompetitionSpec
from server.state.config import get_settings
from server.state.db import get_engine, new_session, session_scope
from server.state.leaderboard import published
from server.state.lifecycle import claim_evaluation, finish_evaluation, mark_queued
from server.state.migrate import alembic_config, upgrade
from server.state.tables import Competition, Evaluation, PhaseKind, Status, Submission, Team
from server.state.teams import create_team
from tests.conftest import ADMIN_TOKEN, make_eval_set
from tests.server.rows import add_evaluated
from worker import reconciler
from worker.engine.protocol import SUITES

START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
END = START + timedelta(days=14)
DURING = START + timedelta(days=1)
SLUG = "ml-class-2027"
CLASS = {
    "slug": SLUG,
    "title": "ML class 2027",
    "suite": "smoke",
    "score": "natural:1",
    "final_selections": 2,
    "submissions_per_day": 10,
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


class FakeBroker:
    """Stands for the Celery client: records the evaluation ids sent."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send_task(self, name: str, args: list[Any], task_id: str) -> None:
        self.sent.append(args[0])


@pytest.fixture
def phases(settings_env: dict[str, str]) -> dict[str, int]:
    """The competition ``ml-class-2027`` with a final phase; its phases' ids by kind."""
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


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_team(name: str) -> tuple[int, str]:
    with session_scope() as session:
        team, token = create_team(session=session, name=name)
        return team.id, token


def submission(
    team_id: int, phase_id: int, natural: float | None = 0.5, *, minutes: int = 0, **fields: Any
) -> int:
    """A development submission, finished with ``natural`` accuracy (None: no result)."""
    status = fields.pop("status", Status.FINISHED)
    metrics = None if natural is None else {"suite": {"name": "smoke"}, "natural": {"accuracy": natural}}
    with session_scope() as session:
        added = add_evaluated(
            session, team_id=team_id, suite="smoke", arch="lenet", stored_name="x.pth", sha256="0" * 64,
            size_bytes=1, status=status, metrics=metrics, phase_id=phase_id,
            created_at=START + timedelta(minutes=minutes), **fields,
        )  # fmt: skip
        session.flush()
        return added.id


def load_competition(session) -> Competition:
    found = competitions.get_competition(session, SLUG)
    assert found is not None
    return found


# --- selections -------------------------------------------------------------------------------


def test_a_team_selects_up_to_the_limit_and_only_it_sees_its_selection(phases: dict[str, int]) -> None:
    ada, token = new_team("Ada")
    ids = [submission(ada, phases[PhaseKind.DEVELOPMENT], minutes=i) for i in range(3)]
    client = client_at(DURING)
    first = client.post(f"/api/submissions/{ids[0]}/final", headers=bearer(token))
    assert first.status_code == 200, first.text
    assert first.json() == {"id": ids[0], "final": True, "selected": 1, "allowed": 2}
    again = client.post(f"/api/submissions/{ids[0]}/final", headers=bearer(token))
    assert again.json() == {"id": ids[0], "final": True, "selected": 1, "allowed": 2}
    assert client.post(f"/api/submissions/{ids[1]}/final", headers=bearer(token)).json()["selected"] == 2
    third = client.post(f"/api/submissions/{ids[2]}/final", headers=bearer(token))
    assert third.status_code == 409 and "the limit of 2" in third.json()["detail"]

    assert (
        client.get(f"/api/submissions/{ids[0]}", headers=bearer(token)).json()["selected_for_final"] is True
    )
    assert client.get(f"/api/submissions/{ids[0]}").json()["selected_for_final"] is False  # owner only
    assert [
        s["selected_for_final"]
        for s in client.get("/api/submissions", headers=bearer(token)).json()["submissions"]
    ] == [
        False,
        True,
        True,
    ]

    withdrawn = client.delete(f"/api/submissions/{ids[0]}/final", headers=bearer(token))
    assert withdrawn.json() == {"id": ids[0], "final": False, "selected": 1, "allowed": 2}
    assert client.delete(f"/api/submissions/{ids[0]}/final", headers=bearer(token)).json()["selected"] == 1
    assert client.post(f"/api/submissions/{ids[2]}/final", headers=bearer(token)).json()["selected"] == 2


@pytest.mark.parametrize("moment", [START - timedelta(seconds=1), END, END + timedelta(days=1)])
def test_selections_change_only_while_the_development_phase_is_open(
    phases: dict[str, int], moment: datetime
) -> None:
    ada, token = new_team("Ada")
    sid = submission(ada, phases[PhaseKind.DEVELOPMENT])
    for method in ("post", "delete"):
        answer = getattr(client_at(moment), method)(f"/api/submissions/{sid}/final", headers=bearer(token))
        assert answer.status_code == 409
        detail = answer.json()["detail"]
        assert "only while the Development phase is open" in detail
        assert "2027-01-10T09:00:00Z" in detail and "2027-01-24T09:00:00Z" in detail


def test_a_competition_without_a_final_phase_has_nothing_to_select(settings_env: dict[str, str]) -> None:
    ada, token = new_team("Ada")
    with session_scope() as session:
        added = add_evaluated(
            session, team_id=ada, suite="smoke", arch="lenet", stored_name="x.pth", sha256="0" * 64,
            size_bytes=1, status=Status.FINISHED,
        )  # fmt: skip
        session.flush()
        sid = added.id
    answer = client_at(DURING).post(f"/api/submissions/{sid}/final", headers=bearer(token))
    assert answer.status_code == 409 and "has no final phase" in answer.json()["detail"]


def test_another_teams_submission_is_not_found_and_a_token_is_required(phases: dict[str, int]) -> None:
    ada, _ = new_team("Ada")
    _, grace = new_team("Grace")
    sid = submission(ada, phases[PhaseKind.DEVELOPMENT])
    client = client_at(DURING)
    for method in ("post", "delete"):
        other = getattr(client, method)(f"/api/submissions/{sid}/final", headers=bearer(grace))
        assert other.status_code == 404 and other.json()["detail"] == f"Submission {sid} not found."
        assert getattr(client, method)(f"/api/submissions/{sid}/final").status_code == 401
    missing = client.post("/api/submissions/99999/final", headers=bearer(grace))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"hidden_reason": "Trained on the test set."}, "hidden by the organiser"),
        ({"status": Status.FAILED, "natural": None}, "is failed"),
        ({"status": Status.CANCELLED, "natural": None}, "is cancelled"),
    ],
)
def test_hidden_failed_and_cancelled_submissions_cannot_be_selected(
    phases: dict[str, int], fields: dict[str, Any], expected: str
) -> None:
    ada, token = new_team("Ada")
    fields = dict(fields)
    natural = fields.pop("natural", 0.5)
    sid = submission(ada, phases[PhaseKind.DEVELOPMENT], natural, **fields)
    answer = client_at(DURING).post(f"/api/submissions/{sid}/final", headers=bearer(token))
    assert answer.status_code == 409 and expected in answer.json()["detail"]


# --- the team page's form ---------------------------------------------------------------------


def test_the_team_page_offers_a_selection_form_that_works_without_javascript(phases: dict[str, int]) -> None:
    ada, token = new_team("Ada")
    _, grace = new_team("Grace")
    sid = submission(ada, phases[PhaseKind.DEVELOPMENT])
    hidden = submission(ada, phases[PhaseKind.DEVELOPMENT], hidden_reason="Copied.")
    client = client_at(DURING)
    page = client.get("/teams/Ada").text
    assert f'action="/submissions/{sid}/final"' in page and 'name="token" type="password"' in page
    assert f'action="/submissions/{hidden}/final"' not in page
    assert '<script src="/static/team.js" defer></script>' in page
    assert client.get("/static/team.js").status_code == 200

    posted = client.post(
        f"/submissions/{sid}/final", data={"token": token, "final": "select"}, follow_redirects=False
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/teams/Ada?final={sid}&selected=true"
    assert token not in posted.headers["location"]
    assert "is now selected for the final phase" in client.get(posted.headers["location"]).text
    assert client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()["selected_for_final"] is True

    refused = {
        "wrong token": ({"token": "nope", "final": "select"}, 403),
        "no token": ({"final": "select"}, 403),
        "another team": ({"token": grace, "final": "select"}, 404),
        "no choice": ({"token": token}, 422),
        "hidden": ({"token": token, "final": "select"}, 409),
    }
    for case, (data, status) in refused.items():
        target = hidden if case == "hidden" else sid
        answer = client.post(f"/submissions/{target}/final", data=data, follow_redirects=False)
        assert answer.status_code == status, case
        assert answer.headers["content-type"].startswith("text/html"), case

    unselected = client.post(
        f"/submissions/{sid}/final", data={"token": token, "final": "unselect"}, follow_redirects=False
    )
    assert unselected.headers["location"] == f"/teams/Ada?final={sid}&selected=false"
    closed = client_at(END).get("/teams/Ada").text
    assert "/final" not in closed and "static/team.js" not in closed


# --- the deadline -----------------------------------------------------------------------------


def test_the_final_phase_starts_once_at_the_deadline(phases: dict[str, int]) -> None:
    development, final = phases[PhaseKind.DEVELOPMENT], phases[PhaseKind.FINAL]
    ada, _ = new_team("Ada")  # selects two of three
    chosen = [submission(ada, development, 0.3, minutes=1), submission(ada, development, 0.4, minutes=2)]
    submission(ada, development, 0.9, minutes=3)
    bob, _ = new_team("Bob")  # selects none: its best, the earlier of two equal ones
    bob_best = submission(bob, development, 0.7, minutes=4)
    submission(bob, development, 0.7, minutes=5)
    submission(bob, development, 0.2, minutes=6)
    cleo, _ = new_team("Cleo")  # its best is hidden: its next best goes
    submission(cleo, development, 0.95, minutes=7, hidden_reason="Copied.")
    cleo_best = submission(cleo, development, 0.6, minutes=8)
    dan, _ = new_team("Dan")  # disqualified: nothing
    submission(dan, development, 0.99, minutes=9)
    with session_scope() as session:
        for sid in chosen:
            session.get(Submission, sid).final_selected_at = DURING
        session.get(Team, dan).disqualified_reason = "Cheated."
        charged = {s.id: s.charged for s in session.scalars(select(Submission))}

    broker = FakeBroker()
    with session_scope() as session:
        assert (
            finals.start_final_phase(
                session, load_competition(session), END - timedelta(seconds=1), app=broker
            )
            == []
        )
        assert finals.competitions_due(session, END - timedelta(seconds=1)) == []
        assert [c.slug for c in finals.competitions_due(session, END)] == [SLUG]
        created = finals.start_final_phase(session, load_competition(session), END, app=broker)
    assert sorted(created) == broker.sent == sorted(created)
    with session_scope() as session:
        evaluations = [session.get(Evaluation, i) for i in created]
        assert sorted(e.submission_id for e in evaluations) == sorted([*chosen, bob_best, cleo_best])
        assert {(e.phase_id, e.suite, e.status) for e in evaluations} == {(final, "smoke", Status.QUEUED)}
        assert {s.id: s.charged for s in session.scalars(select(Submission))} == charged
        assert load_competition(session).finals_started_at == END
        assert finals.start_final_phase(session, load_competition(session), END + timedelta(hours=1)) == []
        assert finals.competitions_due(session, END + timedelta(hours=1)) == []


def test_of_two_workers_starting_the_final_phase_one_wins(phases: dict[str, int]) -> None:
    ada, _ = new_team("Ada")
    submission(ada, phases[PhaseKind.DEVELOPMENT], 0.5)
    broker = FakeBroker()
    seen = []
    for _ in range(2):  # each worker read the competition, not started, before either starts it
        with new_session(write=False) as reader:
            seen.append(load_competition(reader))
            reader.expunge_all()
    assert [each.finals_started_at for each in seen] == [None, None]
    with new_session() as first:
        won = finals.start_final_phase(first, seen[0], END, app=broker)
    with new_session() as second:
        lost = finals.start_final_phase(second, seen[1], END, app=broker)
    assert len(won) == 1 and lost == [] and broker.sent == won
    with session_scope() as session:
        assert (
            session.scalar(select(Evaluation).where(Evaluation.phase_id == phases[PhaseKind.FINAL])).id
            == won[0]
        )


def test_the_reconcilers_round_starts_a_due_final_phase(
    phases: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, _ = new_team("Ada")
    sid = submission(ada, phases[PhaseKind.DEVELOPMENT], 0.5)
    broker = FakeBroker()
    monkeypatch.setattr(reconciler, "utcnow", lambda: END - timedelta(seconds=1))
    reconciler.reconcile_once(broker, get_settings())
    assert broker.sent == []
    monkeypatch.setattr(reconciler, "utcnow", lambda: END)
    reconciler.reconcile_once(broker, get_settings())
    reconciler.reconcile_once(broker, get_settings())
    assert len(broker.sent) == 1
    with session_scope() as session:
        started = session.get(Evaluation, broker.sent[0])
        assert (started.submission_id, started.phase_id) == (sid, phases[PhaseKind.FINAL])


def test_development_evaluations_queued_before_the_deadline_still_count(phases: dict[str, int]) -> None:
    development = phases[PhaseKind.DEVELOPMENT]
    ada, _ = new_team("Ada")
    sid = submission(ada, development, None, status=Status.QUEUED)
    with session_scope() as session:
        assert finals.start_final_phase(session, load_competition(session), END, app=FakeBroker()) == []
        evaluation = session.scalar(select(Evaluation).where(Evaluation.submission_id == sid))
        mark_queued(session=session, evaluation_id=evaluation.id, task_id="t")
        assert claim_evaluation(session=session, evaluation_id=evaluation.id, owner="w", lease_seconds=60)
        results = {
            "suite": {"name": "smoke", "version": SUITES["smoke"].version},
            "natural": {"accuracy": 0.8},
        }
        assert finish_evaluation(session=session, evaluation_id=evaluation.id, owner="w", results=results)
        board = published(session=session, suite="smoke", weights={"natural": 1}, phase_id=development).board
    assert [(row.team, row.submission_id, row.score) for row in board.rows] == [("Ada", sid, 0.8)]


def test_the_organiser_sees_the_final_evaluations(phases: dict[str, int]) -> None:
    ada, _ = new_team("Ada")
    submission(ada, phases[PhaseKind.DEVELOPMENT], 0.5)
    before = CliRunner().invoke(main, ["competition", "finals", SLUG])
    assert before.exit_code == 0 and "has not started" in before.output
    with session_scope() as session:
        (created,) = finals.start_final_phase(session, load_competition(session), END, app=FakeBroker())
    shown = CliRunner().invoke(main, ["competition", "finals", SLUG])
    assert shown.exit_code == 0, shown.output
    assert f"{created}\t#" in shown.output and "Ada\tqueued" in shown.output
    assert CliRunner().invoke(main, ["competition", "finals", "nope"]).exit_code != 0
    assert CliRunner().invoke(main, ["competition", "finals", "default"]).exit_code != 0


# --- publishing -------------------------------------------------------------------------------


def test_publishing_waits_for_the_development_end_and_happens_once(phases: dict[str, int]) -> None:
    admin = bearer(ADMIN_TOKEN)
    early = client_at(END - timedelta(seconds=1)).post(f"/api/competitions/{SLUG}/publish", headers=admin)
    assert early.status_code == 409 and "2027-01-24T09:00:00Z" in early.json()["detail"]
    done = client_at(END).post(f"/api/competitions/{SLUG}/publish", headers=admin)
    assert done.status_code == 200 and done.json()["published_at"].startswith("2027-01-24T09:00:00")
    again = client_at(END + timedelta(days=1)).post(f"/api/competitions/{SLUG}/publish", headers=admin)
    assert again.json()["published_at"] == done.json()["published_at"]
    client = client_at(END)
    assert client.post("/api/competitions/nope/publish", headers=admin).status_code == 404
    assert client.post(f"/api/competitions/{SLUG}/publish").status_code == 401
    assert client.post(f"/api/competitions/{SLUG}/publish", headers=bearer("wrong")).status_code == 403


def test_the_publish_command(phases: dict[str, int]) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["competition", "publish", "nope"]).exit_code != 0
    with session_scope() as session:  # the real clock is before 2027: too early
        assert load_competition(session).published_at is None
    early = runner.invoke(main, ["competition", "publish", SLUG])
    assert early.exit_code != 0 and "cannot be published before" in early.output
    with session_scope() as session:
        finals.publish(session, load_competition(session), END)
    again = runner.invoke(main, ["competition", "publish", SLUG])
    assert again.exit_code == 0 and "was already published at 2027-01-24T09:00:00Z" in again.output


# --- the migration ----------------------------------------------------------------------------


def test_the_migration_goes_down_and_up_again(phases: dict[str, int]) -> None:
    def columns(table: str) -> set[str]:
        return {column["name"] for column in inspect(get_engine()).get_columns(table)}

    ada, _ = new_team("Ada")
    submission(ada, phases[PhaseKind.DEVELOPMENT])
    assert "final_selected_at" in columns("submissions") and "finals_started_at" in columns("competitions")
    command.downgrade(alembic_config(), "0009")
    assert "final_selected_at" not in columns("submissions")
    assert "finals_started_at" not in columns("competitions")
    upgrade()
    with session_scope() as session:
        found = session.scalars(select(Submission)).one()
        assert found.final_selected_at is None and load_competition(session).finals_started_at is None
