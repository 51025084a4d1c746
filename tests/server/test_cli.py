"""The ``arena`` command line: teams and tokens, local evaluation, data, first start."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from server.cli import main
from server.main import create_app
from tests.conftest import make_checkpoint
from tests.models.test_class_project import project  # noqa: F401 - fixture


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_team_create_prints_a_working_token_once(settings_env):
    created = json.loads(run_cli("team", "create", "Team CLI", "--json"))
    assert created["name"] == "Team CLI" and created["token"].startswith("arena_")
    client = TestClient(create_app())
    auth = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/submissions", headers=auth).status_code == 200
    assert "Team CLI\tactive" in run_cli("team", "list")

    run_cli("team", "revoke", "Team CLI")
    assert client.get("/api/submissions", headers=auth).status_code == 401
    new_token = run_cli("team", "revoke", "Team CLI", "--new-token").strip()
    assert client.get("/api/submissions", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200


def test_duplicate_team_is_refused(settings_env):
    run_cli("team", "create", "Twice")
    result = CliRunner().invoke(main, ["team", "create", "Twice"])
    assert result.exit_code != 0 and "already exists" in result.output


def test_evaluate_prints_the_api_results_object(settings_env, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "m.pth", epoch=7)
    results = json.loads(run_cli("evaluate", str(checkpoint), "--arch", "lenet", "--json"))
    assert results["suite"]["name"] == "smoke"
    assert {"natural", "fgsm", "pgd_linf", "pgd_l2", "flags", "model"} <= set(results)
    assert results["model"]["arch"] == "lenet"
    again = json.loads(run_cli("evaluate", str(checkpoint), "--arch", "auto", "--json"))
    assert again["natural"] == results["natural"] and again["pgd_l2"] == results["pgd_l2"]
    text = run_cli("evaluate", str(checkpoint), "--arch", "lenet", "--limit", "8")
    assert "natural:" in text and "n=8" in text


def test_evaluate_runs_a_class_format_project_locally(settings_env, project):  # noqa: F811
    folder, _ = project
    results = json.loads(run_cli("evaluate", str(folder), "--json", "--limit", "8"))
    assert results["model"]["arch"] == "class-project"
    assert results["natural"]["n"] == 8


def test_evaluate_explains_a_bad_checkpoint(settings_env, tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not weights")
    result = CliRunner().invoke(main, ["evaluate", str(bad), "--arch", "lenet"])
    assert result.exit_code != 0
    assert "text file" in result.output


def test_evaluate_refuses_a_mean_or_std_that_is_not_three_numbers(settings_env, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "m.pth")
    for option, text, message in (
        ("--mean", "0.5,0.5", "expected three comma-separated finite numbers, got '0.5,0.5'"),
        ("--std", "a,b,c", "expected three comma-separated numbers, got 'a,b,c'"),
    ):
        result = CliRunner().invoke(main, ["evaluate", str(checkpoint), option, text])
        assert result.exit_code == 2 and message in result.output, result.output


def test_data_import_accepts_the_official_row_layout(settings_env, tmp_path):
    import numpy as np

    from worker.data import load_eval_set

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, size=(12, 3072), dtype=np.uint8)
    source = tmp_path / "batch.npz"
    np.savez(source, data=rows, labels=np.arange(12) % 10)
    out = tmp_path / "set.npz"
    run_cli("data", "import", str(source), "--images-key", "data", "--count", "10", "--out", str(out))
    images, labels = load_eval_set(out)
    assert images.shape == (10, 3, 32, 32) and labels.tolist() == list(range(10))
    # Planar R|G|B rows: the first 1024 bytes are the red plane.
    assert images[3, 0].flatten().mul(255).round().to(int).tolist() == rows[3, :1024].tolist()


def test_serve_without_data_or_internet_says_what_to_do(tmp_path):
    env = {
        **os.environ,
        "ARENA_HOME": str(tmp_path / "home"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    env.pop("ARENA_EVAL_SET", None)
    completed = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode != 0
    # The exact command that works from a clone, as the README gives it.
    assert (
        ".venv/bin/arena data import cifar10_arrays.npz --images-key train_data "
        "--labels-key train_labels --count 1024" in completed.stderr
    )
    assert "ARENA_EVAL_SET" in completed.stderr


def test_worker_without_its_configured_set_says_what_is_missing(tmp_path):
    missing = tmp_path / "cifar10-class.npz"
    env = {**os.environ, "ARENA_HOME": str(tmp_path / "home"), "ARENA_EVAL_SET": str(missing)}
    completed = subprocess.run(
        [sys.executable, "-m", "server.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode != 0
    assert f"ARENA_EVAL_SET={missing} does not exist" in completed.stderr
    assert f"arena data import FILE.npz --count 1024 --out {missing}" in completed.stderr


def test_data_import_writes_where_the_server_reads(settings_env, tmp_path, monkeypatch):
    from server.state.config import get_settings
    from tests.conftest import make_eval_set

    target = tmp_path / "configured.npz"
    monkeypatch.setenv("ARENA_EVAL_SET", str(target))
    get_settings.cache_clear()
    run_cli("data", "import", str(make_eval_set(tmp_path / "source.npz")), "--count", "8")
    assert target.is_file()


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    import torch

    from tests.models.helpers import TinyNet, export_to

    torch.manual_seed(0)
    return export_to(TinyNet(), tmp_path / "custom.pt2")


def test_torch_export_archive_uploads_with_arch_auto(settings_env, exported):
    from tests.conftest import ADMIN_TOKEN

    client = TestClient(create_app())
    token = client.post(
        "/api/teams", json={"name": "Exporters"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["token"]
    response = client.post(
        "/api/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"arch": "auto"},
        files={"checkpoint": ("custom.pt2", exported.read_bytes())},
    )
    assert response.status_code == 202, response.text
    assert response.json()["arch"] == "torch-export"


def test_teams_from_a_csv_get_working_tokens(settings_env, tmp_path):
    import csv
    import io

    roster = tmp_path / "teams.csv"
    roster.write_text("name,members\nTeam Ada,Ada; Grace\nBob's Lab,Bob\n\nÉquipe Noether,Emmy\n")
    printed = list(csv.DictReader(io.StringIO(run_cli("team", "create", "--from-csv", str(roster)))))
    assert [row["name"] for row in printed] == ["Team Ada", "Bob's Lab", "Équipe Noether"]
    client = TestClient(create_app())
    for row in printed:
        mine = client.get("/api/submissions", headers={"Authorization": f"Bearer {row['token']}"})
        assert mine.status_code == 200

    more = tmp_path / "more.csv"
    more.write_text("Team Turing\nTeam Hopper\n")
    out = tmp_path / "tokens.csv"
    result = CliRunner().invoke(main, ["team", "create", "--from-csv", str(more), "--out", str(out)])
    assert result.exit_code == 0 and "tokens (shown once) are in" in result.output
    assert "arena_" not in result.output  # written to the file, not the terminal
    written = list(csv.DictReader(out.open()))
    assert [row["name"] for row in written] == ["Team Turing", "Team Hopper"]
    assert out.stat().st_mode & 0o077 == 0

    # A batch naming an existing team creates none of its teams.
    clash = tmp_path / "clash.csv"
    clash.write_text("Team Lovelace\nTeam Ada\n")
    refused = CliRunner().invoke(main, ["team", "create", "--from-csv", str(clash)])
    assert refused.exit_code != 0 and "'Team Ada'" in refused.output
    assert "Team Lovelace" not in run_cli("team", "list")
    # '-' reads the CSV from stdin (as `docker compose exec -T api ... < teams.csv` sends it).
    piped = CliRunner().invoke(main, ["team", "create", "--from-csv", "-"], input="Team Stdin\n")
    assert piped.exit_code == 0 and piped.output.startswith("name,token\nTeam Stdin,arena_")
    twice = tmp_path / "twice.csv"
    twice.write_text("X\nX\n")
    assert "repeated" in CliRunner().invoke(main, ["team", "create", "--from-csv", str(twice)]).output


def test_queue_lists_what_runs_and_waits(settings_env):
    from server.state.db import session_scope
    from server.state.tables import Status
    from tests.server.test_pages import add_submission, team

    assert "Nothing running or queued." in run_cli("queue")
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        add_submission(session, bob, status=Status.QUEUED, sigma=0.25)
        add_submission(session, ada, status=Status.FINISHED)
        add_submission(
            session,
            ada,
            status=Status.RUNNING,
            arch="resnet20",
            progress={"stage": "fgsm", "done": 64, "total": 1024},
        )
    lines = run_cli("queue").splitlines()
    assert [line.split("\t")[1:3] for line in lines] == [["Ada", "resnet20"], ["Bob", "lenet σ=0.25"]]
    assert "running fgsm 64/1024" in lines[0] and lines[1].endswith("queued #1")
