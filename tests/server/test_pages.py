"""The pages and downloads, in process: what a visitor reads on each page, and the exports.
Over 400 lines: one test block per page, sharing the fixtures that fill the board."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from server.state.db import session_scope
from server.state.leaderboard import published
from server.state.tables import Status, utcnow
from server.state.teams import create_team
from server.web import charts, pages
from tests.server.rows import add_evaluated
from worker.engine.protocol import COLUMN_METRICS, METRICS, clopper_pearson

RADII = ("0.0", "0.25", "0.5", "0.75", "1.0", "1.25", "1.5")
WEIGHTS = {"natural": 1, "pgd_linf": 1, "pgd_l2": 1}


def metric(accuracy: float, n: int, **extra) -> dict:
    return {
        "accuracy": accuracy,
        "ci95": list(clopper_pearson(round(accuracy * n), n)),
        "n": n,
        "params": {"eps": 8 / 255, "steps": 20},
        **extra,
    }


def results(natural, fgsm, linf, l2, *, n=1000, certified=None, sigma=0.25, flags=(), suite="smoke"):
    """A result shaped like the engine's, with intervals matching ``n`` images."""
    out = {
        "suite": {"name": suite, "version": "1", "params": {}},
        "natural": metric(natural, n),
        "fgsm": metric(fgsm, n),
        "pgd_linf": metric(linf, n, attacks={"fgsm": fgsm, "pgd_ce": linf + 0.01, "pgd_margin": linf}),
        "pgd_l2": {
            **metric(l2, n, attacks={"pgd_ce": l2, "noise": min(1.0, l2 + 0.2)}),
            "params": {"threat": "l2", "eps": 0.5, "step_size": 0.2, "steps": 20},
        },
        "flags": [{"code": code, "message": f"measured {code}"} for code in flags],
        "model": {
            "stochastic": "stochastic" in flags,
            "outputs": "logits",
            "draws": {"gradient": 1, "accuracy": 1},
            "notes": [],
        },
    }
    if certified is not None:
        curve = dict(zip(RADII, certified, strict=True))
        out["smoothing"] = {
            **metric(curve["0.5"], n // 2, params={"sigma": sigma, "n0": 100, "n": 100000}),
            "radius": 0.5,
            "certified": curve,
            "average_radius": sum(certified) / 7,
            "predict": {"accuracy": natural, "abstain_rate": 0.05, "n": n // 2},
        }
    return out


def add_submission(
    session,
    team,
    status=Status.FINISHED,
    metrics=None,
    minutes_ago=5,
    sigma=None,
    suite="smoke",
    arch="lenet",
    **fields,
) -> int:
    submission = add_evaluated(
        session,
        team_id=team.id,
        arch=arch,
        stored_name="x.pth",
        sha256="0" * 64,
        size_bytes=1,
        suite=suite,
        status=status,
        sigma=sigma,
        created_at=utcnow() - timedelta(minutes=minutes_ago),
        metrics=metrics,
        **fields,
    )
    session.commit()
    return submission.id


def team(session, name, baseline=False):
    created, token = create_team(session=session, name=name, baseline=baseline)
    return created, token


@pytest.fixture
def client(settings_env) -> TestClient:
    return TestClient(create_app())


def board_rows(html: str) -> list[str]:
    """Team names of the leaderboard's rows, top to bottom."""
    return re.findall(r'<tr data-team="([^"]+)"', html)


def test_leaderboard_shows_every_column_with_intervals_and_flags(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        add_submission(session, ada, metrics=results(0.9, 0.5, 0.4, 0.5), minutes_ago=30)
        add_submission(session, ada, metrics=results(0.8, 0.3, 0.2, 0.3), minutes_ago=20)
        add_submission(
            session,
            bob,
            metrics=results(0.7, 0.2, 0.1, 0.2, certified=[0.6] * 7, flags=("noise_beats_gradient_attack",)),
        )
    html = client.get("/").text
    assert board_rows(html) == ["Ada", "Bob"]
    for header in (
        "Rank",
        "Team",
        "Score",
        "Natural",
        "FGSM",
        "PGD ℓ∞",
        "PGD ℓ2",
        "Certified r = 0.5",
        "Submissions",
        "Best submitted (UTC)",
    ):
        assert f">{header}<span" in html
    assert "Score = mean of natural accuracy, PGD ℓ∞ robust accuracy, PGD ℓ2 robust accuracy" in html
    low, high = clopper_pearson(900, 1000)
    assert f'data-tip="95% interval {100 * low:.1f}–{100 * high:.1f}%">90.0%' in html
    ada_row = html.split('data-team="Ada"')[1].split("</tr>")[0]
    assert '<td class="num" data-sort="2">2</td>' in ada_row  # two submissions
    bob_row = html.split('data-team="Bob"')[1].split("</tr>")[0]
    assert "gradient masking suspected" in bob_row and "Random noise of the same size" in bob_row
    assert "measured noise_beats_gradient_attack" in bob_row
    assert 'data-metric="smoothing" data-sort="0.6"' in bob_row


def test_columns_are_keyboard_sortable_buttons_with_sort_values(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        add_submission(session, ada, metrics=results(0.9, 0.5, 0.4, 0.5))
    html = client.get("/").text
    heads = re.findall(
        r'<th scope="col" data-key="(\w+)" data-type="(\w+)" aria-sort="(\w+)">'
        r'<button type="button" class="sort">',
        html,
    )
    assert [h[0] for h in heads] == [
        "rank",
        "team",
        "score",
        "natural",
        "fgsm",
        "pgd_linf",
        "pgd_l2",
        "smoothing",
        "submissions",
        "submitted",
    ]
    assert heads[0][2] == "ascending" and all(h[2] == "none" for h in heads[1:])
    row = html.split('data-team="Ada"')[1].split("</tr>")[0]
    assert 'data-metric="natural" data-sort="0.9"' in row
    assert 'data-metric="smoothing" data-sort=""' in row  # missing figures sort last
    assert '<script src="/static/leaderboard.js" defer></script>' in html
    assert client.get("/static/leaderboard.js").status_code == 200


def test_baseline_is_marked_and_ranked_among_teams_without_taking_a_rank(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        ref, _ = team(session, "Reference ResNet", baseline=True)
        bob, _ = team(session, "Bob")
        add_submission(session, ada, metrics=results(0.9, 0.6, 0.6, 0.6))
        add_submission(session, ref, metrics=results(0.8, 0.5, 0.5, 0.5))
        add_submission(session, bob, metrics=results(0.5, 0.2, 0.2, 0.2))
    body = client.get("/api/leaderboard").json()
    assert [(r["team"], r["rank"], r["baseline"]) for r in body["rows"]] == [
        ("Ada", 1, False),
        ("Reference ResNet", None, True),
        ("Bob", 2, False),
    ]
    assert body["teams"] == 2
    html = client.get("/").text
    assert board_rows(html) == ["Ada", "Reference ResNet", "Bob"]
    ref_row = html.split('data-team="Reference ResNet"')[1].split("</tr>")[0]
    assert 'class="baseline"' in ref_row and '<span class="badge baseline">baseline</span>' in ref_row
    assert "2 teams ranked" in html


def test_ties_the_intervals_cannot_separate_are_marked(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        cyd, _ = team(session, "Cyd")
        add_submission(session, ada, metrics=results(0.90, 0.5, 0.50, 0.50, n=20), minutes_ago=9)
        add_submission(session, bob, metrics=results(0.85, 0.5, 0.45, 0.50, n=20), minutes_ago=8)
        add_submission(session, cyd, metrics=results(0.20, 0.0, 0.02, 0.02, n=1000), minutes_ago=7)
        board = published(session=session, suite="smoke", weights=WEIGHTS).board
    assert [(r.team, r.tied) for r in board.rows] == [("Ada", False), ("Bob", True), ("Cyd", False)]
    low, high = board.rows[1].score_ci95
    assert low < board.rows[1].score < high
    html = client.get("/").text
    bob_row = html.split('data-team="Bob"')[1].split("</tr>")[0]
    assert 'class="tie"' in bob_row and "their 95% intervals overlap" in bob_row
    assert 'class="tie"' not in html.split('data-team="Cyd"')[1].split("</tr>")[0]


def test_certified_track_ranks_by_certified_accuracy_at_the_chosen_radius(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        cyd, _ = team(session, "Cyd")
        add_submission(
            session,
            ada,
            sigma=0.25,
            metrics=results(0.8, 0.1, 0.1, 0.1, certified=[0.8, 0.7, 0.5, 0.3, 0.1, 0.0, 0.0]),
        )
        add_submission(
            session,
            bob,
            sigma=1.0,
            metrics=results(0.5, 0.1, 0.1, 0.1, certified=[0.5, 0.45, 0.4, 0.38, 0.35, 0.3, 0.2]),
        )
        add_submission(session, cyd, metrics=results(0.99, 0.9, 0.9, 0.9))  # no σ: empirical only
    small = client.get("/?track=certified&radius=0.25").text
    large = client.get("/?track=certified&radius=1").text
    assert board_rows(small) == ["Ada", "Bob"] and board_rows(large) == ["Bob", "Ada"]
    assert "Certified at r = 1<span" in large and ">σ<span" in large
    assert "certified accuracy at ℓ2 radius 1:" in large
    assert board_rows(client.get("/").text) == ["Cyd", "Ada", "Bob"]
    body = client.get("/export/leaderboard.json?track=certified&radius=1.0").json()
    assert body["track"] == "certified" and body["radius"] == 1.0
    assert body["rows"][0]["score"] == pytest.approx(0.35)
    assert client.get("/?track=certified&radius=0.3").status_code == 422
    assert client.get("/?track=guessing").status_code == 422


def test_suite_choice_lists_suites_with_results_and_filters(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        add_submission(session, ada, metrics=results(0.9, 0.5, 0.4, 0.5, suite="smoke"))
        add_submission(session, bob, metrics=results(0.9, 0.5, 0.4, 0.5, suite="class"), suite="class")
    html = client.get("/").text
    options = re.findall(r'<option value="(\w+)"( selected)?>\1</option>', html)
    assert [o[0] for o in options if o[0] in ("class", "robustbench", "smoke")] == [
        "class",
        "robustbench",
        "smoke",
    ]
    assert ("smoke", " selected") in options  # the server's suite by default
    assert board_rows(html) == ["Ada"]
    assert board_rows(client.get("/?suite=class").text) == ["Bob"]
    assert "No finished submissions in suite robustbench yet." in client.get("/?suite=robustbench").text


def test_csv_and_json_exports(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        ref, _ = team(session, "Baseline", baseline=True)
        add_submission(session, ada, metrics=results(0.9, 0.5, 0.4, 0.5, flags=("stochastic",)))
        add_submission(session, ref, metrics=results(0.5, 0.1, 0.1, 0.1, certified=[0.4] * 7))
    response = client.get("/export/leaderboard.csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="leaderboard-smoke-empirical.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0])[:8] == [
        "rank",
        "team",
        "baseline",
        "submission_id",
        "score",
        "score_ci95_low",
        "score_ci95_high",
        "tied_with_above",
    ]
    assert {
        "natural",
        "natural_ci95_low",
        "natural_ci95_high",
        "smoothing",
        "sigma",
        "submissions",
        "submitted_at",
        "flags",
    } <= set(rows[0])
    assert [(r["rank"], r["team"], r["baseline"]) for r in rows] == [
        ("1", "Ada", "false"),
        ("", "Baseline", "true"),
    ]
    assert float(rows[0]["score"]) == pytest.approx(0.6)
    assert float(rows[0]["natural_ci95_low"]) < 0.9 < float(rows[0]["natural_ci95_high"])
    assert rows[0]["flags"] == "stochastic" and rows[0]["smoothing"] == ""
    assert float(rows[1]["smoothing"]) == pytest.approx(0.4)

    empty = client.get("/export/leaderboard.csv", params={"suite": "robustbench"})
    assert 'filename="leaderboard-robustbench-empirical.csv"' in empty.headers["content-disposition"]
    assert empty.text.splitlines()[1:] == []  # no entries in that suite, header only
    bogus = client.get("/export/leaderboard.csv", params={"suite": "bogus"})
    assert bogus.status_code == 404 and "known suites: class, robustbench, smoke" in bogus.json()["detail"]
    odd = client.get("/export/leaderboard.csv", params={"suite": "Ā suite"})
    assert odd.status_code == 422 and odd.json()["field"] == "suite"

    exported = client.get("/export/leaderboard.json")
    assert "attachment" in exported.headers["content-disposition"]
    assert exported.json() == client.get("/api/leaderboard").json()
    html = client.get("/").text
    assert 'href="/export/leaderboard.csv?suite=smoke&amp;track=empirical"' in html
    assert 'href="/export/leaderboard.json?suite=smoke&amp;track=empirical"' in html


def test_leaderboard_follows_new_results_and_submissions(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        add_submission(session, ada, metrics=results(0.5, 0.2, 0.2, 0.2))
    assert board_rows(client.get("/").text) == ["Ada"]
    with session_scope() as session:
        add_submission(session, bob, metrics=results(0.9, 0.5, 0.5, 0.5))
    assert board_rows(client.get("/").text) == ["Bob", "Ada"]
    with session_scope() as session:
        add_submission(session, ada, status=Status.QUEUED)
    row = client.get("/api/leaderboard").json()["rows"][1]
    assert (row["team"], row["submissions"]) == ("Ada", 2)


def test_finished_submission_page_has_results_charts_flags_and_download(client):
    """Long because it reads one page top to bottom, one assertion block per part a team sees."""
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        earlier = add_submission(
            session,
            ada,
            sigma=0.5,
            minutes_ago=60,
            metrics=results(0.6, 0.3, 0.3, 0.3, certified=[0.6, 0.55, 0.5, 0.45, 0.4, 0.3, 0.2], sigma=0.5),
        )
        sid = add_submission(
            session,
            ada,
            sigma=0.25,
            metrics=results(
                0.8,
                0.4,
                0.3,
                0.35,
                certified=[0.8, 0.7, 0.5, 0.3, 0.1, 0.0, 0.0],
                flags=("stochastic", "iterative_weaker_than_single_step"),
            ),
        )
    html = client.get(f"/submissions/{sid}").text
    assert 'data-status="finished"' in html and 'data-outcome="finished"' in html
    table = html.split('id="results-table"')[1].split("</table>")[0]
    assert re.findall(r'<tr data-metric="(\w+)">', table) == [
        "natural",
        "fgsm",
        "pgd_linf",
        "pgd_l2",
        "smoothing",
    ]
    natural = table.split('data-metric="natural"')[1].split("</tr>")[0]
    low, high = clopper_pearson(800, 1000)
    assert "80.0%" in natural and f"{100 * low:.1f}–{100 * high:.1f}%" in natural
    assert "ε = 8/255" in table and "σ = 0.25" in table
    pgd_l2 = table.split('data-metric="pgd_l2"')[1].split("</tr>")[0]
    assert 'ε = 0.5</span>, <span class="param">step = 0.2</span>' in pgd_l2

    bars = html.split('<svg id="attack-chart"')[1].split("</svg>")[0]
    assert 'role="img"' in bars
    for label in ("PGD, cross-entropy", "PGD, margin loss", "random noise", "worst case"):
        assert f">{label}</text>" in bars
    assert bars.count("<rect") == 10  # 1 + 1 + (3 + 1) + (2 + 1) + 1 certified
    curves = html.split('<svg id="radius-chart"')[1].split("</svg>")[0]
    assert curves.count('<g class="curve') == 2
    assert f"σ = 0.25, this submission (#{sid})" in curves
    assert f"σ = 0.5, submission #{earlier}" in curves
    certified = html.split('id="certified-table"')[1].split("</table>")[0]
    assert certified.count("<tr>") == 3 and "r = 1.5" in certified

    flags = html.split('id="flags"')[1].split("</dl>")[0]
    assert re.findall(r'data-flag="(\w+)"', flags) == [
        "stochastic",
        "iterative_weaker_than_single_step",
    ]
    assert "Many-step PGD did worse than one FGSM step" in flags
    assert "measured iterative_weaker_than_single_step" in flags

    assert f'href="/export/submissions/{sid}.json"' in html
    download = client.get(f"/export/submissions/{sid}.json")
    assert f'filename="submission-{sid}.json"' in download.headers["content-disposition"]
    body = download.json()
    assert body["results"]["smoothing"]["certified"]["0.25"] == 0.7 and body["id"] == sid


def test_running_and_queued_submissions_show_live_progress(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        running = add_submission(
            session,
            ada,
            status=Status.RUNNING,
            sigma=0.25,
            progress={
                "stage": "pgd_linf",
                "done": 256,
                "total": 1024,
                "eta_seconds": 42.0,
                "stages": ["natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing"],
            },
        )
        queued = add_submission(session, bob, status=Status.QUEUED)
    html = client.get(f"/submissions/{running}").text
    assert 'data-status="running"' in html and 'data-stage="pgd_linf"' in html
    stages = re.findall(r'<li class="stage" data-stage="(\w+)" data-state="(\w+)">', html)
    assert stages == [
        ("natural", "done"),
        ("fgsm", "done"),
        ("pgd_linf", "active"),
        ("pgd_l2", "waiting"),
        ("smoothing", "waiting"),
    ]
    assert '<progress id="stage-pgd_linf" max="1024" value="256">' in html
    assert "256 / 1024 images" in html and '<label for="stage-smoothing">Certification</label>' in html
    assert '<script src="/static/submission.js" defer></script>' in html
    assert "position 1 in the queue" in client.get(f"/submissions/{queued}").text
    api = client.get(f"/api/submissions/{running}").json()
    assert api["progress"]["eta_seconds"] == 42.0


def test_a_cancelled_submission_does_not_read_finished(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        cancelled = add_submission(session, ada, status=Status.CANCELLED, finished_at=utcnow())
    html = client.get(f"/submissions/{cancelled}").text
    assert '<dt id="finished-label">Cancelled</dt>' in html
    assert ">Finished<" not in html


def test_failure_reason_is_shown_to_the_owning_team_only(client):
    with session_scope() as session:
        ada, token = team(session, "Ada")
        sid = add_submission(
            session,
            ada,
            status=Status.FAILED,
            error="conv1.weight has shape [6, 1, 5, 5]; lenet expects [6, 3, 5, 5].",
        )
    public = client.get(f"/submissions/{sid}").text
    assert 'data-outcome="failed"' in public and "conv1.weight" not in public
    assert "the submitting team sees the reason" in public and 'id="owner-hint"' in public
    owner = client.get(f"/submissions/{sid}/outcome", headers={"Authorization": f"Bearer {token}"}).text
    assert "conv1.weight has shape [6, 1, 5, 5]" in owner and 'id="owner-hint"' not in owner
    other = client.get(f"/submissions/{sid}/outcome", headers={"Authorization": "Bearer nope"}).text
    assert "conv1.weight" not in other
    assert client.get("/submissions/999999").status_code == 404


def test_team_page_lists_submissions_with_status_score_links_and_quota(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada Lovelace")
        done = add_submission(
            session,
            ada,
            metrics=results(0.9, 0.5, 0.3, 0.6, certified=[0.5] * 7),
            sigma=0.25,
            minutes_ago=20,
        )
        failed = add_submission(session, ada, status=Status.FAILED, error="boom", minutes_ago=10)
        queued = add_submission(session, ada, status=Status.QUEUED, minutes_ago=1)
    html = client.get("/teams/Ada%20Lovelace").text
    assert re.findall(r'<tr data-submission="(\d+)" data-status="(\w+)">', html) == [
        (str(queued), "queued"),
        (str(failed), "failed"),
        (str(done), "finished"),
    ]
    row = html.split(f'<tr data-submission="{done}"')[1].split("</tr>")[0]
    assert "60.00%" in row and "50.0%" in row
    assert f'href="/submissions/{done}"' in row and f'href="/export/submissions/{done}.json"' in row
    assert "boom" not in html
    # The quota counts the UTC day: just after midnight the older ones were yesterday's.
    today = utcnow().date()
    counted = sum((utcnow() - timedelta(minutes=m)).date() == today for m in (20, 10, 1))
    assert f"<strong>{50 - counted}</strong> of 50 submissions left today" in html
    assert client.get("/teams/Nobody").status_code == 404


def test_upload_form_labels_every_field_and_has_a_place_for_each_error(client):
    html = client.get("/submit").text
    for field in ("token", "arch", "checkpoint", "sigma", "mean", "std", "description"):
        assert f'<label for="{field}">' in html
        assert f'id="{field}-error" role="alert"' in html
    assert 'id="upload-progress"' in html and 'data-max-mb="20.0"' in html
    assert '<option value="lenet">' in html and '<option value="auto">' in html
    assert client.get("/static/submit.js").status_code == 200


@pytest.mark.parametrize("path", ["/", "/submit", "/teams/Ada", "/submissions/1"])
def test_pages_load_nothing_from_other_sites(client, path):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        add_submission(session, ada, sigma=0.25, metrics=results(0.9, 0.5, 0.4, 0.5, certified=[0.5] * 7))
    html = client.get(path).text
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith(("/", "#")), url
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url
    assert "@import" not in client.get("/static/arena.css").text


def test_export_json_round_trips_through_the_schema(client):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        add_submission(session, ada, metrics=results(0.9, 0.5, 0.4, 0.5, flags=("stochastic",)))
    body = client.get("/export/leaderboard.json").json()
    (row,) = body["rows"]
    assert row["flags"] == [{"code": "stochastic", "message": "measured stochastic"}]
    assert set(row["ci95"]) == {"natural", "fgsm", "pgd_linf", "pgd_l2"}
    assert json.loads(json.dumps(body)) == body


HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/submissions/999999", 404, "Submission 999999 not found."),
        ("/teams/Nobody", 404, "Team &#39;Nobody&#39; not found."),
        ("/no-such-page", 404, "Not Found"),
        ("/?suite=%01", 422, "suite must be letters"),
        ("/?suite=bogus", 404, "Unknown suite &#39;bogus&#39;; known suites: class, robustbench, smoke."),
        ("/submissions/0", 422, "greater than or equal to 1"),
    ],
)
def test_a_browser_gets_refused_pages_as_html_in_the_site_layout(client, path, status, message):
    page = client.get(path, headers=HTML)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert message in page.text
    assert 'href="/submit"' in page.text  # the site's navigation, a way on


@pytest.mark.parametrize(
    "path",
    [
        "/submissions/999999",
        "/api/submissions/999999",
        "/api/leaderboard?suite=%01",
        "/api/leaderboard?suite=bogus",
        "/export/leaderboard.csv?suite=bogus",
        "/export/leaderboard.json?suite=bogus",
    ],
)
def test_scripts_and_the_api_still_get_json_errors(client, path):
    for headers in ({}, HTML if path.startswith("/api/") else {"Accept": "*/*"}):
        response = client.get(path, headers=headers)
        assert response.status_code in (404, 422)
        assert response.json()["detail"]


def test_the_submission_shows_the_normalisation_evidence_and_the_api_its_flag(client):
    summary = "No normalisation was declared and no normalisation (...) is 99.6% accurate."

    def candidate(name, label, accuracy, p_value=None, beats=False):
        return {
            "name": name,
            "label": label,
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "accuracy": accuracy,
            "correct": round(accuracy * 512),
            "gained": 3,
            "lost": 1,
            "p_value": p_value,
            "beats": beats,
        }

    record = {
        "mode": "auto",
        "verdict": "switched",
        "inferred": True,
        "in_force": "default",
        "chosen": "none",
        "mean": [0, 0, 0],
        "std": [1, 1, 1],
        "n": 512,
        "test": {"name": "exact McNemar", "alpha": 0.001, "min_gain": 0.05},
        "candidates": [
            candidate("none", "no normalisation", 0.996, 1.7e-139, True),
            candidate("default", "lenet's reference default", 0.094),
        ],
        "summary": summary,
    }
    metrics = results(0.99, 0.2, 0.1, 0.1, flags=("normalisation_inferred",))
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        sid = add_submission(session, ada, metrics={**metrics, "normalisation": record})
        plain = add_submission(session, ada, metrics=results(0.5, 0.2, 0.1, 0.1))
    html = client.get(f"/submissions/{sid}").text
    table = html.split('id="normalisation-table"')[1].split("</table>")[0]
    assert re.findall(r'<tr data-candidate="([\w-]+)"', table) == ["none", "default"]
    assert "99.6%" in table and "1.7e-139" in table and "+3 / −1" in table
    assert "in force" in table.split('data-candidate="default"')[1]
    assert 'class="chosen"' in table.split('data-candidate="default"')[0]
    assert summary in html and "inferred from natural accuracy" in html
    assert 'data-flag="normalisation_inferred"' in html
    assert client.get(f"/api/submissions/{sid}").json()["normalisation_inferred"] is True
    assert client.get(f"/api/submissions/{plain}").json()["normalisation_inferred"] is None
    assert 'id="normalisation-table"' not in client.get(f"/submissions/{plain}").text


def test_candidates_measured_until_out_of_reach_say_so(client):
    def candidate(name, accuracy, correct, measured):
        return {
            "name": name,
            "label": f"{name} label",
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "accuracy": accuracy,
            "correct": correct,
            "measured": measured,
            "gained": None,
            "lost": None,
            "p_value": None,
            "beats": False,
        }

    record = {
        "mode": "auto",
        "verdict": "kept",
        "inferred": False,
        "in_force": "default",
        "chosen": "default",
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "n": 1024,
        "test": {"name": "exact McNemar", "alpha": 0.001, "min_gain": 0.05},
        "candidates": [
            candidate("default", 0.8, 819, 1024),
            candidate("none", 0.125, 32, 256),
            candidate("imagenet", None, 0, 0),
        ],
        "summary": "Evaluated with the default: no candidate was better.",
    }
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        sid = add_submission(session, ada, metrics={**results(0.8, 0.2, 0.1, 0.1), "normalisation": record})
    table = client.get(f"/submissions/{sid}").text.split('id="normalisation-table"')[1].split("</table>")[0]
    rows = dict(re.findall(r'<tr data-candidate="([\w-]+)"(.*?)</tr>', table, flags=re.S))
    assert "80.0%" in rows["default"] and "first" not in rows["default"] and "in force" in rows["default"]
    assert "12.5%" in rows["none"] and "(first 256)" in rows["none"] and "out of reach" in rows["none"]
    assert "not measured" in rows["imagenet"] and "out of reach" in rows["imagenet"]


def test_upload_form_offers_the_normalisation_choices_and_explains_the_rule(client):
    html = client.get("/submit").text
    choice = html.split('id="norm-choice"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([\w-]+)"', choice) == [
        "auto",
        "none",
        "cifar10",
        "cifar10-kuangliu",
        "imagenet",
        "custom",
    ]
    assert 'data-mean="0.4914,0.4822,0.4465" data-std="0.247,0.2435,0.2616"' in choice
    assert 'data-std="0.2023,0.1994,0.201"' in choice
    assert "exact McNemar test rejects at α = 0.001" in html and "at least 5 points" in html
    assert 'value="as-declared"' in html and 'id="normalisation-error" role="alert"' in html


def test_every_metric_of_the_protocol_has_its_labels_on_the_pages():
    assert set(pages.METRIC_ROWS) == set(METRICS)
    assert set(charts.METRIC_GROUPS) == set(METRICS)
    assert list(pages.BOARD_COLUMNS) == list(COLUMN_METRICS)
