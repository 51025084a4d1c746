"""Final results stay with the organiser until revealed: every route, as the owning team,
another team and anonymously, shows nothing of the final-phase evaluations (results, error,
status, progress, timing) before the organiser publishes or the reveal time passes; then the
final board and each submission's ``final`` object appear. And the final board's shake-up.
Over 400 lines: every test reads the one scene its fixture builds."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from server.api.deps import clock
from server.main import create_app
from server.state import competitions
from server.state.competition_spec import CompetitionSpec
from server.state.competitions import get_competition
from server.state.config import get_settings
from server.state.db import session_scope
from server.state.leaderboard import published, shake_up
from server.state.submissions import recent_runs, running_now
from server.state.tables import Evaluation, PhaseKind, Status, WorkerHeartbeat, utcnow
from server.state.teams import create_team
from server.state.views import Leaderboard, LeaderboardRow
from server.state.visibility import final_revealed
from tests.conftest import ADMIN_TOKEN
from tests.server.rows import add_evaluated, add_result
from tests.server.test_competitions import bundle, sets  # noqa: F401 (a fixture)
from worker.engine.protocol import SUITES

SLUG = "ml-class-2027"
START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
END = datetime(2027, 1, 24, 9, 0, tzinfo=UTC)
AFTER_END = END + timedelta(days=1)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NOT_PUBLISHED = {"detail": f"The final results of {SLUG!r} are not published yet."}

# The final evaluations' distinctive traces: none may show before the reveal.
FINAL_STARTED = datetime(2027, 1, 25, 3, 17, 29, tzinfo=UTC)
FINAL_SECONDS = 4321  # "72 min"
FINAL_FINISHED = FINAL_STARTED + timedelta(seconds=FINAL_SECONDS)
FINAL_ERROR = "Private-set failure XYZZY-42"
LEAKS = [
    "0.123456",
    "0.234567",
    "0.179011",  # the finished final evaluation's score
    "12.35",
    "23.46",
    "17.90",
    "XYZZY-42",
    "4321",
    "72 min",
    "2460",  # the median of a visible 600 s run and the hidden 4321 s one
    "03:17",
    "04:29",
    "7777",
    "9973",
]

CURRENT = SUITES["smoke"].version  # boards rank only results of the current version


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def metrics(natural: float, linf: float) -> dict[str, Any]:
    values = {"natural": natural, "fgsm": linf, "pgd_linf": linf, "pgd_l2": linf}
    return {"suite": {"name": "smoke"}} | {
        name: {"accuracy": value, "ci95": [value - 0.01, value + 0.01]} for name, value in values.items()
    }


@dataclass
class Arena:
    client: TestClient
    clock: Clock
    tokens: dict[str, str]
    ada_finished: int  # its final evaluation finished (the distinctive accuracies)
    ada_failed: int  # its final evaluation failed (the distinctive error)
    bob_running: int  # its final evaluation runs (the distinctive progress)
    bob_queued: int  # its final evaluation is queued
    carol_queued: int  # a development evaluation queued behind them (its estimate)


def upload(session, team_id: int, phase_id: int, **fields: Any) -> int:
    submission = add_evaluated(
        session,
        team_id=team_id,
        phase_id=phase_id,
        arch="lenet",
        stored_name="x.pth",
        sha256="0" * 64,
        size_bytes=1,
        suite="smoke",
        **fields,
    )
    return submission.id


def final_evaluation(session, submission_id: int, phase_id: int, **fields: Any) -> Evaluation:
    evaluation = Evaluation(submission_id=submission_id, phase_id=phase_id, suite="smoke", **fields)
    session.add(evaluation)
    session.flush()
    return evaluation


@pytest.fixture
def arena(settings_env: dict[str, str], sets) -> Arena:  # noqa: F811
    """Long because it builds the whole scene every leak test reads: a competition, four
    teams, their development results and one final evaluation in each state."""
    now = Clock(AFTER_END)
    app = create_app()
    app.dependency_overrides[clock] = now
    with session_scope() as session:
        competitions.create_competition(
            session, CompetitionSpec.model_validate(bundle()), get_settings().home
        )
        competition = get_competition(session, SLUG)
        development = next(p for p in competition.phases if p.kind == PhaseKind.DEVELOPMENT)
        final = next(p for p in competition.phases if p.kind == PhaseKind.FINAL)
        tokens, ids = {}, {}
        for name in ("Ada", "Bob", "Carol", "Dave"):
            team, tokens[name] = create_team(session=session, name=name)
            ids[name] = team.id
        done = {"status": Status.FINISHED}
        ada_finished = upload(session, ids["Ada"], development.id, metrics=metrics(0.5, 0.3), **done)
        ada_failed = upload(session, ids["Ada"], development.id, metrics=metrics(0.4, 0.2), **done)
        bob_running = upload(session, ids["Bob"], development.id, metrics=metrics(0.6, 0.4), **done)
        bob_queued = upload(session, ids["Bob"], development.id, metrics=metrics(0.3, 0.1), **done)
        # A visible run of 600 s: the only history an estimate may use.
        real = utcnow()
        upload(
            session,
            ids["Dave"],
            development.id,
            status=Status.FINISHED,
            started_at=real - timedelta(hours=2, seconds=600),
            finished_at=real - timedelta(hours=2),
        )
        finished = final_evaluation(
            session,
            ada_finished,
            final.id,
            status=Status.FINISHED,
            suite_version=CURRENT,
            started_at=FINAL_STARTED,
            finished_at=FINAL_FINISHED,
        )
        add_result(session, finished, metrics(0.123456, 0.234567))
        final_evaluation(
            session,
            ada_failed,
            final.id,
            status=Status.FAILED,
            error=FINAL_ERROR,
            started_at=FINAL_STARTED,
            finished_at=FINAL_FINISHED,
        )
        final_evaluation(
            session,
            bob_running,
            final.id,
            status=Status.RUNNING,
            started_at=real - timedelta(seconds=FINAL_SECONDS),
            lease_owner="worker-1",
            lease_expires=real + timedelta(hours=1),
            progress={"stage": "pgd_linf", "done": 7777, "total": 9973, "stages": ["natural", "pgd_linf"]},
        )
        final_evaluation(session, bob_queued, final.id, status=Status.QUEUED, queued_at=FINAL_STARTED)
        carol_queued = upload(session, ids["Carol"], development.id, status=Status.QUEUED)
        session.add(WorkerHeartbeat(worker_id="worker-1", hostname="gpu", pid=1))
    return Arena(
        TestClient(app),
        now,
        tokens,
        ada_finished,
        ada_failed,
        bob_running,
        bob_queued,
        carol_queued,
    )


def set_competition(**values: Any) -> None:
    with session_scope() as session:
        competition = get_competition(session, SLUG)
        for key, value in values.items():
            setattr(competition, key, value)


# --- every route ------------------------------------------------------------------------------

#: Routes that cannot concern results, and why they are not requested.
SKIPPED = {"/static": "the stylesheet and scripts: files from the repository"}
QUERIES = ["", f"?competition={SLUG}", f"?competition={SLUG}&phase=final", f"?competition={SLUG}&phase=Final"]


def all_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, included routers unfolded."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, Mount):
                assert route.path in SKIPPED, f"{route.path}: say why it cannot concern results"
            elif isinstance(route, APIRoute | Route):
                found.extend(
                    (method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"
                )
            elif hasattr(route, "original_router"):  # an included router
                walk(route.original_router.routes)
            else:
                raise AssertionError(f"unknown route {route!r}: add it to the walk")

    walk(app.routes)
    return found


def addresses(arena: Arena, path: str) -> list[str]:
    fills = {
        "submission_id": [
            str(arena.ada_finished),
            str(arena.ada_failed),
            str(arena.bob_running),
            str(arena.bob_queued),
            str(arena.carol_queued),
        ],
        "name": ["Ada", "Bob"],
        "slug": [SLUG, "default"],
    }
    out = [path]
    for name in re.findall(r"{(\w+)(?::\w+)?}", path):
        assert name in fills, f"{path}: say what {name} to request it with"
        out = [re.sub(r"{" + name + r"(?::\w+)?}", value, each) for each in out for value in fills[name]]
    return out


def responses(arena: Arena, headers: dict[str, str], *, reads_only: bool = False):
    routes = all_routes(arena.client.app)
    assert ("GET", "/api/submissions/{submission_id}") in routes
    for method, path in routes:
        if reads_only and method != "GET":
            continue
        for address in addresses(arena, path):
            for query in QUERIES if method == "GET" else [""]:
                response = arena.client.request(method, address + query, headers=headers)
                yield f"{method} {address}{query}", response


def viewers(arena: Arena) -> dict[str, dict[str, str]]:
    return {
        "owner": {"Authorization": f"Bearer {arena.tokens['Ada']}"},
        "owner of the running and queued": {"Authorization": f"Bearer {arena.tokens['Bob']}"},
        "another team": {"Authorization": f"Bearer {arena.tokens['Carol']}"},
        "anonymous": {},
    }


#: The days of the fixture's own times; a timestamp of another day is a row's real creation time.
FIXTURE_DAYS = {
    moment.date().isoformat() for moment in (START, END, AFTER_END, FINAL_STARTED, FINAL_FINISHED)
}
TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d)[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?")


def without_real_times(body: str) -> str:
    """The body with the real clock's timestamps blanked: their digits are whatever the time was
    (``…:36.432148Z`` holds 4321), and none of them belongs to the final evaluations."""
    return TIMESTAMP.sub(lambda m: m[0] if m[1] in FIXTURE_DAYS else "<real time>", body)


def shows(marker: str, body: str) -> bool:
    """Whether the marker appears as a number of its own, not inside a longer run of digits
    (an id, a token or a fraction of a second)."""
    return re.search(rf"(?<!\d){re.escape(marker)}(?!\d)", body) is not None


def assert_no_leak(where: str, body: str, arena: Arena) -> None:
    text = without_real_times(body)
    for marker in LEAKS:
        assert not shows(marker, text), f"{where} shows {marker!r}"
    assert '"final":{"phase"' not in body.replace(" ", ""), where
    for submission in (arena.bob_running, arena.bob_queued):
        if re.search(rf"/{submission}(?:$|[?./])", where):
            for word in ('"running"', '"queued"', "status-running", "status-queued", "Running", "Queued"):
                assert word not in body, f"{where} shows {word}"


def test_the_leak_check_sees_traces_and_not_the_real_clock() -> None:
    real = '{"created_at":"2026-12-02T15:33:36.432148Z","id":14321,"done":77770}'
    assert not any(shows(marker, without_real_times(real)) for marker in LEAKS)
    for trace in (
        '"duration_seconds":4321.0',
        "took 72 min",
        '"started_at":"2027-01-25T03:17:29Z"',
        "12.35 %",
    ):
        assert any(shows(marker, without_real_times(trace)) for marker in LEAKS), trace


def test_nothing_of_the_final_phase_shows_before_the_reveal(arena: Arena) -> None:
    seen = 0
    for viewer, headers in viewers(arena).items():
        for where, response in responses(arena, headers):
            assert_no_leak(f"{viewer}: {where}", response.text, arena)
            seen += 1
    assert seen > 100
    final_board = arena.client.get(f"/api/leaderboard?competition={SLUG}&phase=final")
    assert final_board.status_code == 404 and final_board.json() == NOT_PUBLISHED
    for export in ("csv", "json"):
        refused = arena.client.get(f"/export/leaderboard.{export}?competition={SLUG}&phase=final")
        assert refused.status_code == 404 and refused.json() == NOT_PUBLISHED
    page = arena.client.get(f"/?competition={SLUG}&phase=final", headers={"Accept": "text/html"})
    assert page.status_code == 404
    # By default the development board, which stays public.
    development = arena.client.get(f"/api/leaderboard?competition={SLUG}").json()
    assert not development["final"] and [row["team"] for row in development["rows"]] == ["Bob", "Ada"]
    assert arena.client.get(f"/api/submissions/{arena.ada_finished}").json()["final"] is None


def test_the_organiser_sees_everything_before(arena: Arena) -> None:
    board = arena.client.get(f"/api/leaderboard?competition={SLUG}&phase=final", headers=ADMIN)
    assert board.status_code == 200 and board.json()["final"]
    assert [row["team"] for row in board.json()["rows"]] == ["Ada"]
    assert (
        "0.123456"
        in arena.client.get(f"/export/leaderboard.csv?competition={SLUG}&phase=final", headers=ADMIN).text
    )
    final = arena.client.get(f"/api/submissions/{arena.ada_finished}", headers=ADMIN).json()["final"]
    assert final["phase"] == "Final" and final["status"] == "finished" and final["suite_version"] == CURRENT
    assert final["results"]["natural"]["accuracy"] == 0.123456
    failed = arena.client.get(f"/api/submissions/{arena.ada_failed}", headers=ADMIN).json()["final"]
    assert failed["status"] == "failed" and failed["error"] == FINAL_ERROR
    running = arena.client.get(f"/api/submissions/{arena.bob_running}", headers=ADMIN).json()["final"]
    assert running["status"] == "running" and running["results"] is None
    # Still nothing for anyone else.
    assert arena.client.get(f"/api/submissions/{arena.ada_finished}").json()["final"] is None


def assert_revealed(arena: Arena) -> None:
    board = arena.client.get(f"/api/leaderboard?competition={SLUG}&phase=final")
    assert board.status_code == 200, board.text
    (row,) = board.json()["rows"]
    assert row["team"] == "Ada" and row["natural"] == 0.123456
    assert row["public_rank"] == 2 and row["rank_change"] == 1
    # The default board of the competition is now the final one.
    assert arena.client.get(f"/api/leaderboard?competition={SLUG}").json()["final"]
    final = arena.client.get(f"/api/submissions/{arena.ada_finished}").json()["final"]
    assert final["status"] == "finished" and final["results"]["natural"]["accuracy"] == 0.123456
    failed = arena.client.get(f"/api/submissions/{arena.ada_failed}").json()["final"]
    assert failed["status"] == "failed" and FINAL_ERROR not in str(failed)  # the reason: the team's
    assert "0.123456" in arena.client.get(f"/export/submissions/{arena.ada_finished}.json").text
    csv = arena.client.get(f"/export/leaderboard.csv?competition={SLUG}&phase=final").text.splitlines()
    assert csv[0].startswith("rank,public_rank,rank_change,team,") and csv[1].startswith("1,2,1,Ada,")
    development_csv = arena.client.get(f"/export/leaderboard.csv?competition={SLUG}&phase=development").text
    assert development_csv.startswith("rank,team,")
    page = arena.client.get(f"/competitions/{SLUG}").text
    assert 'id="final-board"' in page and "↑1" in page
    board_page = arena.client.get(f"/?competition={SLUG}&phase=final").text
    assert "↑1" in board_page and "Final results" in board_page
    assert "Final phase: Final" in arena.client.get(f"/submissions/{arena.ada_finished}").text
    team_page = arena.client.get("/teams/Ada").text
    assert 'class="final-note">Final: <span class="status status-finished">' in team_page
    assert "17.90%" in team_page
    mine = arena.client.get("/api/submissions", headers={"Authorization": f"Bearer {arena.tokens['Ada']}"})
    finals = [each["final"] for each in mine.json()["submissions"]]
    assert sorted(f["status"] for f in finals) == ["failed", "finished"]
    assert FINAL_ERROR in str(finals)  # the owning team reads its own failure's reason


def test_publishing_reveals_the_final_board_and_evaluations(arena: Arena) -> None:
    set_competition(published_at=AFTER_END)
    assert_revealed(arena)


def test_the_reveal_time_reveals_without_publishing(arena: Arena) -> None:
    set_competition(reveal_at=AFTER_END + timedelta(days=1))
    assert arena.client.get(f"/api/leaderboard?competition={SLUG}&phase=final").status_code == 404
    arena.clock.now = AFTER_END + timedelta(days=1)  # the reveal time itself: revealed
    assert_revealed(arena)


def test_estimates_use_no_unrevealed_duration(arena: Arena) -> None:
    with session_scope() as session:
        assert [seconds for *_, seconds in recent_runs(session=session, suite="smoke", limit=10)] == [600]
        assert [seconds for *_, seconds in running_now(session=session)] == [0.0]
    estimate = arena.client.get(f"/api/submissions/{arena.carol_queued}").json()["estimate"]
    assert estimate["typical_seconds"] == 600
    assert arena.client.get(f"/api/submissions/{arena.carol_queued}").json()["queue_position"] == 2
    set_competition(published_at=AFTER_END)
    with session_scope() as session:
        runs = sorted(seconds for *_, seconds in recent_runs(session=session, suite="smoke", limit=10))
        assert runs == [600, FINAL_SECONDS]
        ((*_, elapsed),) = running_now(session=session)
        assert elapsed >= FINAL_SECONDS


def test_the_visibility_rule() -> None:
    class Contest:
        published_at: datetime | None = None
        reveal_at: datetime | None = None

    contest = Contest()
    assert not final_revealed(contest, AFTER_END)  # type: ignore[arg-type]
    contest.reveal_at = AFTER_END
    assert not final_revealed(contest, AFTER_END - timedelta(seconds=1))  # type: ignore[arg-type]
    assert final_revealed(contest, AFTER_END)  # type: ignore[arg-type]
    contest.reveal_at, contest.published_at = None, AFTER_END
    assert final_revealed(contest, START)  # type: ignore[arg-type]


def test_unknown_competition_or_phase_is_a_404(arena: Arena) -> None:
    unknown = arena.client.get("/api/leaderboard?competition=nope")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "Unknown competition 'nope'."
    phase = arena.client.get(f"/api/leaderboard?competition={SLUG}&phase=nope")
    assert phase.status_code == 404 and phase.json()["detail"] == f"No phase 'nope' in competition {SLUG!r}."
    suite = arena.client.get(f"/api/leaderboard?competition={SLUG}&suite=class")
    assert suite.status_code == 422


# --- the shake-up -----------------------------------------------------------------------------


def row(team: str, rank: int | None, score: float, *, baseline: bool = False) -> LeaderboardRow:
    return LeaderboardRow(
        rank=rank,
        position=1,
        team=team,
        baseline=baseline,
        submission_id=1,
        score=score,
        natural=score,
        fgsm=None,
        pgd_linf=None,
        pgd_l2=None,
        smoothing=None,
        submissions=1,
        submitted_at=START,
    )


def board(*rows: LeaderboardRow) -> Leaderboard:
    return Leaderboard(suite="smoke", score_rule="", rows=list(rows))


def test_the_shake_up_compares_each_team_with_its_public_rank() -> None:
    public = board(
        row("Ada", 1, 0.9), row("Ref", None, 0.85, baseline=True), row("Bob", 2, 0.8), row("Cy", 3, 0.7)
    )
    final = board(
        row("Cy", 1, 0.8),
        row("Ada", 2, 0.7),
        row("Ref", None, 0.65, baseline=True),
        row("Bob", 3, 0.6),
        row("Dee", 4, 0.5),
    )
    shaken = shake_up(final, public)
    assert shaken.final
    changes = {r.team: (r.rank, r.public_rank, r.rank_change) for r in shaken.rows}
    assert changes == {
        "Cy": (1, 3, 2),
        "Ada": (2, 1, -1),
        "Ref": (None, None, None),  # a baseline has no rank
        "Bob": (3, 2, -1),
        "Dee": (4, None, None),  # no public rank
    }
    assert board(row("Ada", 1, 0.9)).rows[0].public_rank is None  # development boards: none


def test_the_final_board_ranks_best_selections_with_ties_and_shake_up(settings_env, sets) -> None:  # noqa: F811
    with session_scope() as session:
        competitions.create_competition(
            session, CompetitionSpec.model_validate(bundle()), get_settings().home
        )
        competition = get_competition(session, SLUG)
        development = next(p for p in competition.phases if p.kind == PhaseKind.DEVELOPMENT)
        final = next(p for p in competition.phases if p.kind == PhaseKind.FINAL)
        teams = {name: create_team(session=session, name=name)[0].id for name in ("Ada", "Bob", "Cy")}
        done = {"status": Status.FINISHED}
        # Public: Ada 1st, Bob 2nd; Cy never finished on the public set.
        ada = [upload(session, teams["Ada"], development.id, metrics=metrics(0.9, 0.9), **done)]
        ada.append(upload(session, teams["Ada"], development.id, metrics=metrics(0.8, 0.8), **done))
        bob = upload(session, teams["Bob"], development.id, metrics=metrics(0.7, 0.7), **done)
        cy = upload(session, teams["Cy"], development.id, status=Status.FAILED)
        # Private: Ada's best selection 0.50, Bob 0.505 (tied: intervals overlap), Cy 0.6.
        for submission, value in ((ada[0], 0.3), (ada[1], 0.5), (bob, 0.505), (cy, 0.6)):
            evaluation = final_evaluation(session, submission, final.id, **done)
            add_result(session, evaluation, metrics(value, value))
        session.commit()
        shown = published(
            session=session,
            suite="smoke",
            weights={"natural": 1, "pgd_linf": 1},
            phase_id=final.id,
            public_phase_id=development.id,
        ).board
    rows = [(r.team, r.rank, r.public_rank, r.rank_change, r.tied, r.submission_id) for r in shown.rows]
    assert rows == [
        ("Cy", 1, None, None, False, cy),
        ("Bob", 2, 2, 0, False, bob),
        ("Ada", 3, 1, -2, True, ada[1]),  # its best selection counts, not its public best
    ]
