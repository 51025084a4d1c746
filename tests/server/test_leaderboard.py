"""Ranking rules: best submission per team, score rule from settings, ties to the earlier."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from server.state.db import session_scope
from server.state.leaderboard import published
from server.state.scoring import describe_rule
from server.state.submissions import discard_submission, reserve_submission
from server.state.tables import Status, utcnow
from server.state.teams import create_team
from tests.server.rows import add_evaluated, default_target


def add_finished(session, team_id: int, natural: float, linf: float, l2: float, minutes_ago: int):
    created = utcnow() - timedelta(minutes=minutes_ago)
    metrics = {"natural": natural, "fgsm": linf, "pgd_linf": linf, "pgd_l2": l2}
    submission = add_evaluated(
        session,
        team_id=team_id,
        arch="lenet",
        stored_name="x.pth",
        sha256="0" * 64,
        size_bytes=1,
        suite="smoke",
        status=Status.FINISHED,
        created_at=created,
        metrics={"suite": {"name": "smoke"}} | {k: {"accuracy": v} for k, v in metrics.items()},
    )
    session.commit()
    return submission.id


def test_each_team_ranked_by_its_best_submission(settings_env):
    with session_scope() as session:
        ada, _ = create_team(session=session, name="Ada")
        bob, _ = create_team(session=session, name="Bob")
        add_finished(session, ada.id, 0.9, 0.1, 0.2, minutes_ago=30)  # score 0.4
        best = add_finished(session, ada.id, 0.8, 0.4, 0.6, minutes_ago=20)  # score 0.6
        add_finished(session, bob.id, 0.9, 0.3, 0.3, minutes_ago=10)  # score 0.5
        board = published(
            session=session, suite="smoke", weights={"natural": 1, "pgd_linf": 1, "pgd_l2": 1}
        ).board
    assert [(r.rank, r.team) for r in board.rows] == [(1, "Ada"), (2, "Bob")]
    assert board.rows[0].submission_id == best
    assert board.rows[0].score == pytest.approx(0.6)
    assert board.rows[0].submissions == 2


def test_score_rule_is_a_setting_and_reorders(settings_env):
    with session_scope() as session:
        ada, _ = create_team(session=session, name="Ada")
        bob, _ = create_team(session=session, name="Bob")
        add_finished(session, ada.id, 0.95, 0.05, 0.10, minutes_ago=5)
        add_finished(session, bob.id, 0.60, 0.40, 0.45, minutes_ago=5)
        by_natural = published(session=session, suite="smoke", weights={"natural": 1}).board
        by_linf = published(session=session, suite="smoke", weights={"pgd_linf": 1}).board
    assert [r.team for r in by_natural.rows] == ["Ada", "Bob"]
    assert [r.team for r in by_linf.rows] == ["Bob", "Ada"]
    assert describe_rule({"pgd_linf": 1}).startswith("Score = PGD ℓ∞ robust accuracy")


def test_ties_go_to_the_earlier_submission(settings_env):
    with session_scope() as session:
        late, _ = create_team(session=session, name="Late")
        early, _ = create_team(session=session, name="Early")
        add_finished(session, late.id, 0.5, 0.5, 0.5, minutes_ago=1)
        add_finished(session, early.id, 0.5, 0.5, 0.5, minutes_ago=9)
        board = published(session=session, suite="smoke", weights={"natural": 1}).board
    assert [r.team for r in board.rows] == ["Early", "Late"]


def test_api_shows_the_rule_and_rows(settings_env, monkeypatch):
    monkeypatch.setenv("ARENA_SCORE", "pgd_l2")
    from server.state.config import get_settings

    get_settings.cache_clear()
    with session_scope() as session:
        team, _ = create_team(session=session, name="Ada")
        add_finished(session, team.id, 0.9, 0.2, 0.3, minutes_ago=1)
    body = TestClient(create_app()).get("/api/leaderboard").json()
    assert body["score_rule"].startswith("Score = PGD ℓ2")
    assert body["rows"][0]["score"] == pytest.approx(0.3)
    assert set(body["rows"][0]) >= {
        "rank",
        "team",
        "submission_id",
        "score",
        "natural",
        "fgsm",
        "pgd_linf",
        "pgd_l2",
        "smoothing",
        "submitted_at",
    }


def test_cached_board_follows_uploads_discards_and_results(settings_env):
    def board():
        with session_scope() as session:
            return published(session=session, suite="smoke", weights={"natural": 1}).board

    with session_scope() as session:
        ada, _ = create_team(session=session, name="Ada")
        add_finished(session, ada.id, 0.5, 0.5, 0.5, minutes_ago=5)
    first = board()
    assert board() is first  # nothing changed: served from the cache
    assert first.rows[0].submissions == 1

    with session_scope() as session:
        pending = [
            reserve_submission(
                session=session,
                team_id=ada.id,
                **default_target(session),
                per_day=10,
                max_active=5,
                arch="lenet",
                stored_name=f"{n}.pth",
                sha256="1" * 64,
                size_bytes=1,
                suite="smoke",
            ).submission_id
            for n in range(2)
        ]
    assert board().rows[0].submissions == 3
    with session_scope() as session:  # the older upload is rejected: its row goes away
        discard_submission(session=session, submission_id=pending[0])
    assert board().rows[0].submissions == 2
    with session_scope() as session:
        add_finished(session, ada.id, 0.9, 0.5, 0.5, minutes_ago=1)
    assert board().rows[0].score == pytest.approx(0.9)
