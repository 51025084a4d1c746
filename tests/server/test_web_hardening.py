"""Web details a hostile team could use: formula cells in CSV, look-alike team names, team
names that are paths, and the look-alikes an older database already holds."""

import csv
import io
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from server.state.db import session_scope
from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_platform import database_url
from tests.server.test_pages import add_submission, results, team

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FORMULAS = ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]


@pytest.fixture
def client(settings_env) -> TestClient:
    return TestClient(create_app())


def test_csv_cells_that_spreadsheets_would_evaluate_are_quoted(client):
    with session_scope() as session:
        for index, name in enumerate(FORMULAS):
            created, _ = team(session, name)
            add_submission(session, created, metrics=results(0.9 - index / 100, 0.5, 0.4, 0.5))
    rows = list(csv.DictReader(io.StringIO(client.get("/export/leaderboard.csv").text)))
    assert sorted(row["team"] for row in rows) == sorted("'" + name for name in FORMULAS)
    for row in rows:  # numbers stay numbers
        assert float(row["score"]) > 0 and int(row["rank"]) >= 1
        assert not row["natural"].startswith("'")


@pytest.mark.parametrize(
    ("first", "second"),
    [("ALPHA", "alpha"), ("Team Ada", "team ada"), ("ａｌｐｈａ", "Alpha"), ("Straße", "STRASSE")],
)
def test_team_names_are_unique_whatever_the_case_or_form(client, first, second):
    assert client.post("/api/teams", json={"name": first}, headers=ADMIN).status_code == 201
    again = client.post("/api/teams", json={"name": second}, headers=ADMIN)
    assert again.status_code == 409, again.text
    assert again.json()["field"] == "name"


def test_new_team_names_are_stored_nfkc_normalised(client):
    created = client.post("/api/teams", json={"name": "ＴｅａｍＸ ﬁ"}, headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["name"] == "TeamX fi"


@pytest.mark.parametrize("name", [".", "..", "．．"])
def test_dot_names_are_refused(client, name):
    response = client.post("/api/teams", json={"name": name}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["field"] == "name"


@pytest.mark.parametrize("name", ["../export/leaderboard.csv", "a/b", "x?y#z", "100% sure"])
def test_links_to_a_team_page_encode_the_whole_name(client, name):
    with session_scope() as session:
        created, _ = team(session, name)
        submission_id = add_submission(session, created, metrics=results(0.9, 0.5, 0.4, 0.5))
    encoded = "/teams/" + "".join(
        ch if ch.isalnum() or ch in "_.-~" else "".join(f"%{b:02X}" for b in ch.encode()) for ch in name
    )
    for page in ("/", f"/submissions/{submission_id}"):
        links = re.findall(r'href="(/teams/[^"]*)"', client.get(page).text)
        assert links == [encoded], (page, links)
    page = client.get(encoded)
    assert page.status_code == 200
    assert name.replace("&", "&amp;") in page.text


def test_upgrade_lists_existing_look_alikes_without_renaming_them(arena_env):
    """A database from before the unique key, holding 'ALPHA' and 'alpha', upgrades; both
    stay, the later one is listed, and a third spelling is refused."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from server.state.migrate import alembic_config

    Path(arena_env["ARENA_HOME"]).mkdir(parents=True, exist_ok=True)
    url = database_url(arena_env)
    command.upgrade(alembic_config(url), "0002")
    engine = create_engine(url)
    with engine.begin() as connection:
        for number, name in enumerate(["ALPHA", "alpha", "Beta"]):
            connection.execute(
                text(
                    "INSERT INTO teams (name, token_hash, is_baseline, revoked, created_at, "
                    "submission_counter) VALUES (:name, :hash, false, false, :at, 0)"
                ),
                {"name": name, "hash": f"{number:064d}", "at": datetime(2026, 12, 1)},
            )
    arena = [sys.executable, "-m", "server.cli"]
    out = subprocess.run(
        [*arena, "db", "upgrade"], env=arena_env, capture_output=True, text=True, check=True
    ).stdout
    assert "'alpha' (like 'ALPHA')" in out and "Beta" not in out
    with engine.connect() as connection:
        names = list(connection.scalars(text("SELECT name FROM teams ORDER BY id")))
    engine.dispose()
    assert names == ["ALPHA", "alpha", "Beta"]
    refused = subprocess.run(
        [*arena, "team", "create", "Alpha"], env=arena_env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "already exists" in refused.stderr
