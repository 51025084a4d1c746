"""The organiser's moderation: hidden submissions count on no board, disqualified teams are
listed apart with their public reason, and both can be undone."""

import csv
import io

import pytest
from alembic import command
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from server.cli import main
from server.main import create_app
from server.state import moderation
from server.state.db import get_engine, session_scope
from server.state.leaderboard import published
from server.state.migrate import alembic_config, upgrade
from server.state.tables import Submission, Team
from tests.conftest import ADMIN_TOKEN
from tests.server.test_pages import add_submission, board_rows, results, team

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def client(settings_env) -> TestClient:
    return TestClient(create_app())


@pytest.fixture
def teams(settings_env) -> dict[str, object]:
    """Ada (best 0.9, next 0.7), Bob (0.8), with Ada's best two and Bob's one submission ids."""
    with session_scope() as session:
        ada, ada_token = team(session, "Ada")
        bob, bob_token = team(session, "Bob")
        best = add_submission(session, ada, metrics=results(0.9, 0.5, 0.4, 0.5), minutes_ago=30)
        next_best = add_submission(session, ada, metrics=results(0.7, 0.3, 0.2, 0.3), minutes_ago=20)
        bob_best = add_submission(session, bob, metrics=results(0.8, 0.4, 0.3, 0.4), minutes_ago=10)
    return {
        "best": best,
        "next_best": next_best,
        "bob_best": bob_best,
        "ada_token": ada_token,
        "bob_token": bob_token,
    }


def board(client: TestClient) -> dict:
    return client.get("/api/leaderboard").json()


def hide(client: TestClient, submission_id: int, reason: str = "Trained on the test set") -> dict:
    response = client.post(f"/api/submissions/{submission_id}/hide", json={"reason": reason}, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def disqualify(client: TestClient, name: str, reason: str = "Shared accounts") -> dict:
    response = client.post(f"/api/teams/{name}/disqualify", json={"reason": reason}, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


# --- hiding ----------------------------------------------------------------------------------


def test_hiding_the_best_submission_makes_the_next_best_count(client, teams):
    assert [(r["team"], r["submission_id"]) for r in board(client)["rows"]] == [
        ("Ada", teams["best"]),
        ("Bob", teams["bob_best"]),
    ]
    answer = hide(client, teams["best"])
    assert answer["hidden_reason"] == "Trained on the test set" and answer["changed"] is True
    assert answer["team"] == "Ada" and answer["moderated_at"]
    rows = board(client)["rows"]
    assert [(r["rank"], r["team"], r["submission_id"]) for r in rows] == [
        (1, "Bob", teams["bob_best"]),
        (2, "Ada", teams["next_best"]),
    ]
    # The submission stays readable, with the reason, by its team and by anyone.
    own = client.get("/api/submissions", headers={"Authorization": f"Bearer {teams['ada_token']}"})
    reasons = {s["id"]: s["hidden_reason"] for s in own.json()["submissions"]}
    assert reasons == {teams["best"]: "Trained on the test set", teams["next_best"]: None}
    one = client.get(f"/api/submissions/{teams['best']}").json()
    assert one["hidden_reason"] == "Trained on the test set" and one["status"] == "finished"


def test_unhiding_restores_the_ranking(client, teams):
    hide(client, teams["best"])
    again = hide(client, teams["best"])  # the same reason: nothing changes
    assert again["changed"] is False
    response = client.delete(f"/api/submissions/{teams['best']}/hide", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["hidden_reason"] is None and response.json()["changed"] is True
    assert client.delete(f"/api/submissions/{teams['best']}/hide", headers=ADMIN).json()["changed"] is False
    assert [r["submission_id"] for r in board(client)["rows"]] == [teams["best"], teams["bob_best"]]
    assert client.get(f"/api/submissions/{teams['best']}").json()["hidden_reason"] is None


def test_a_team_with_every_submission_hidden_leaves_the_board(client, teams):
    hide(client, teams["best"])
    hide(client, teams["next_best"], "Copied from another team")
    body = board(client)
    assert [r["team"] for r in body["rows"]] == ["Bob"]
    assert body["teams"] == 1 and body["disqualified"] == []
    assert board_rows(client.get("/").text) == ["Bob"]


def test_the_submission_and_team_pages_say_why_it_is_hidden(client, teams):
    hide(client, teams["best"], HOSTILE)
    for page in (f"/submissions/{teams['best']}", "/teams/Ada"):
        html = client.get(page).text
        assert "Hidden by the organiser" in html
        assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Hidden by the organiser" not in client.get(f"/submissions/{teams['next_best']}").text


# --- disqualifying ---------------------------------------------------------------------------


def test_a_disqualified_team_is_listed_apart_with_its_reason(client, teams):
    answer = disqualify(client, "Ada")
    assert answer == {
        "id": answer["id"],
        "name": "Ada",
        "disqualified_reason": "Shared accounts",
        "moderated_at": answer["moderated_at"],
        "changed": True,
    }
    body = board(client)
    assert [(r["rank"], r["team"]) for r in body["rows"]] == [(1, "Bob")]
    assert body["teams"] == 1
    assert [(d["team"], d["reason"]) for d in body["disqualified"]] == [("Ada", "Shared accounts")]
    assert body["disqualified"][0]["disqualified_at"]

    html = client.get("/").text
    assert board_rows(html) == ["Bob"]
    section = html.split('id="disqualified"', 1)[1]
    assert "Ada" in section and "Shared accounts" in section
    assert "Disqualified by the organiser" in client.get("/teams/Ada").text

    rows = list(csv.DictReader(io.StringIO(client.get("/export/leaderboard.csv").text)))
    assert [(r["rank"], r["team"], r["disqualified_reason"]) for r in rows] == [
        ("1", "Bob", ""),
        ("", "Ada", "Shared accounts"),
    ]
    assert rows[1]["score"] == "" and rows[1]["submission_id"] == ""
    exported = client.get("/export/leaderboard.json").json()
    assert exported["disqualified"][0]["team"] == "Ada"


def test_reinstating_ranks_the_team_again(client, teams):
    disqualify(client, "Ada")
    assert disqualify(client, "Ada", "Another reason")["changed"] is True  # the reason replaced
    assert board(client)["disqualified"][0]["reason"] == "Another reason"
    response = client.delete("/api/teams/Ada/disqualify", headers=ADMIN)
    assert response.status_code == 200 and response.json()["disqualified_reason"] is None
    body = board(client)
    assert [r["team"] for r in body["rows"]] == ["Ada", "Bob"] and body["disqualified"] == []
    assert 'id="disqualified"' not in client.get("/").text
    assert "Disqualified by the organiser" not in client.get("/teams/Ada").text


def test_a_disqualified_team_without_results_on_a_board_is_not_listed_there(client, teams):
    with session_scope() as session:
        team(session, "Idle")
    disqualify(client, "Idle")
    assert board(client)["disqualified"] == []
    # Nor one whose every result on this board is hidden.
    hide(client, teams["best"])
    hide(client, teams["next_best"])
    disqualify(client, "Ada")
    assert board(client)["disqualified"] == []


def test_a_hostile_reason_is_escaped_on_the_board_and_neutralised_in_csv(client, teams):
    disqualify(client, "Ada", HOSTILE)
    html = client.get("/").text
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in client.get("/teams/Ada").text

    disqualify(client, "Ada", '=HYPERLINK("http://evil","x")')
    rows = list(csv.DictReader(io.StringIO(client.get("/export/leaderboard.csv").text)))
    assert rows[-1]["disqualified_reason"] == '\'=HYPERLINK("http://evil","x")'


def test_team_names_that_are_paths_can_be_disqualified(client):
    with session_scope() as session:
        odd, _ = team(session, "a/b")
        add_submission(session, odd, metrics=results(0.9, 0.5, 0.4, 0.5))
    disqualify(client, "a/b")
    assert board(client)["disqualified"][0]["team"] == "a/b"
    assert client.delete("/api/teams/a/b/disqualify", headers=ADMIN).json()["name"] == "a/b"


# --- the cache -------------------------------------------------------------------------------


def test_cached_boards_follow_each_moderation(teams):
    def ranked() -> list[tuple[str, int]]:
        with session_scope() as session:
            found = published(session=session, suite="smoke", weights={"natural": 1}).board
            return [(row.team, row.submission_id) for row in found.rows]

    assert ranked() == [("Ada", teams["best"]), ("Bob", teams["bob_best"])]
    with session_scope() as session:
        moderation.hide_submission(
            session=session, submission=session.get(Submission, teams["best"]), reason="x"
        )
    assert ranked() == [("Bob", teams["bob_best"]), ("Ada", teams["next_best"])]
    with session_scope() as session:
        bob = session.query(Team).filter_by(name="Bob").one()
        moderation.disqualify_team(session=session, team=bob, reason="y")
    assert ranked() == [("Ada", teams["next_best"])]
    with session_scope() as session:
        moderation.unhide_submission(session=session, submission=session.get(Submission, teams["best"]))
        moderation.reinstate_team(session=session, team=session.query(Team).filter_by(name="Bob").one())
    assert ranked() == [("Ada", teams["best"]), ("Bob", teams["bob_best"])]


# --- who may, and what --------------------------------------------------------------------------


def test_only_the_admin_token_moderates(client, teams):
    routes = [
        ("POST", f"/api/submissions/{teams['best']}/hide"),
        ("DELETE", f"/api/submissions/{teams['best']}/hide"),
        ("POST", "/api/teams/Ada/disqualify"),
        ("DELETE", "/api/teams/Ada/disqualify"),
    ]
    body = {"reason": "Because"}
    for method, path in routes:
        anonymous = client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
        assert "admin token" in anonymous.json()["detail"]
        as_team = client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {teams['ada_token']}"}
        )
        assert as_team.status_code == 403, (method, path)
        assert as_team.json() == {"detail": "Invalid admin token."}
    assert [r["submission_id"] for r in board(client)["rows"]] == [teams["best"], teams["bob_best"]]
    with session_scope() as session:
        assert session.get(Submission, teams["best"]).hidden_reason is None


def test_unknown_submissions_and_teams_are_json_404s(client, teams):
    body = {"reason": "Because"}
    for method in ("POST", "DELETE"):
        response = client.request(method, "/api/submissions/999999/hide", json=body, headers=ADMIN)
        assert response.status_code == 404
        assert response.json() == {"detail": "Submission 999999 not found."}
        response = client.request(method, "/api/teams/Nobody/disqualify", json=body, headers=ADMIN)
        assert response.status_code == 404
        assert response.json() == {"detail": "Team 'Nobody' not found."}
        response = client.request(method, "/api/teams/a%00b/disqualify", json=body, headers=ADMIN)
        assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"reason": ""}, "A reason is required"),
        ({"reason": "   "}, "A reason is required"),
        ({"reason": "x" * 501}, "at most 500 characters"),
        ({"reason": "two\nlines"}, "printable"),
        ({"reason": "nul\x00"}, "printable"),
        ({}, "reason"),
        ({"reason": 5}, "reason"),
    ],
)
def test_reasons_are_required_short_and_printable(client, teams, body, message):
    for path in (f"/api/submissions/{teams['best']}/hide", "/api/teams/Ada/disqualify"):
        response = client.post(path, json=body, headers=ADMIN)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["field"] == "reason"
        assert message in response.json()["detail"]
    assert board(client)["disqualified"] == []
    assert client.get(f"/api/submissions/{teams['best']}").json()["hidden_reason"] is None


def test_reasons_are_stored_stripped_and_up_to_500_characters(client, teams):
    assert hide(client, teams["best"], "  padded  ")["hidden_reason"] == "padded"
    assert disqualify(client, "Ada", "é" * 500)["disqualified_reason"] == "é" * 500


# --- the command line ------------------------------------------------------------------------


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code != 0
    return result.output


def test_cli_hides_unhides_disqualifies_and_reinstates(client, teams):
    best = str(teams["best"])
    out = run_cli("competition", "hide", best, "--reason", "Trained on the test set")
    assert out == f"Submission {best} of 'Ada' hidden: Trained on the test set\n"
    assert "was already hidden" in run_cli("competition", "hide", best, "--reason", "Trained on the test set")
    assert board(client)["rows"][0]["team"] == "Bob"
    assert run_cli("competition", "unhide", best) == f"Submission {best} of 'Ada' counts again.\n"
    assert "was not hidden" in run_cli("competition", "unhide", best)

    assert run_cli("competition", "disqualify", "Bob", "--reason", "Shared accounts") == (
        "Team 'Bob' disqualified: Shared accounts\n"
    )
    body = board(client)
    assert [r["team"] for r in body["rows"]] == ["Ada"] and body["disqualified"][0]["team"] == "Bob"
    assert run_cli("competition", "reinstate", "Bob") == "Team 'Bob' reinstated.\n"
    assert "was not disqualified" in run_cli("competition", "reinstate", "Bob")
    assert [r["team"] for r in board(client)["rows"]] == ["Ada", "Bob"]


def test_cli_explains_what_it_refuses(teams):
    assert "No submission 999999." in fails("competition", "hide", "999999", "--reason", "x")
    assert "No submission 999999." in fails("competition", "unhide", "999999")
    assert "No team named 'Nobody'." in fails("competition", "disqualify", "Nobody", "--reason", "x")
    assert "No team named 'Nobody'." in fails("competition", "reinstate", "Nobody")
    assert "--reason" in fails("competition", "hide", str(teams["best"]))
    assert "at most 500 characters" in fails("competition", "disqualify", "Ada", "--reason", "x" * 501)
    assert "A reason is required" in fails("competition", "hide", str(teams["best"]), "--reason", " ")


# --- the migration ---------------------------------------------------------------------------


def test_the_migration_goes_down_and_up_again(settings_env):
    def columns(table: str) -> set[str]:
        return {column["name"] for column in inspect(get_engine()).get_columns(table)}

    with session_scope() as session:
        ada, _ = team(session, "Ada")
        add_submission(session, ada, metrics=results(0.9, 0.5, 0.4, 0.5))
    assert {"hidden_reason", "moderated_at"} <= columns("submissions")
    assert {"disqualified_reason", "moderated_at"} <= columns("teams")
    command.downgrade(alembic_config(), "0008")  # the revision before this one
    assert not {"hidden_reason", "moderated_at"} & columns("submissions")
    assert not {"disqualified_reason", "moderated_at"} & columns("teams")
    upgrade()
    with session_scope() as session:
        found = session.query(Team).filter_by(name="Ada").one()
        assert found.disqualified_reason is None and found.submissions[0].hidden_reason is None
