"""Migration 0008 on a database filled under the old schema: every submission becomes an
evaluation with the same id and the same lifecycle values, results follow, nothing is lost;
the downgrade puts everything back, and refuses when it would lose data."""

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from server.state.config import get_settings
from server.state.migrate import alembic_config

T0 = datetime(2026, 11, 30, 8, 0, 0)


def _at(minute: int) -> datetime:
    return T0.replace(minute=minute)


SUBMISSION = {
    "arch": "lenet",
    "sigma": None,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "normalisation": "auto",
    "description": "d",
    "original_filename": "m.pt",
    "sha256": "ab" * 32,
    "size_bytes": 1234,
    "suite": "smoke",
}
# One row per state, with the lifecycle values a submission in it has.
LIFECYCLES: list[dict[str, Any]] = [
    {"status": "validating", "attempts": 0, "charged": True},
    {"status": "queued", "attempts": 1, "task_id": "t-q", "queued_at": _at(1), "error": "lost once"},
    {
        "status": "running",
        "attempts": 2,
        "task_id": "t-r",
        "lease_owner": "host:1:abc",
        "lease_expires": _at(30),
        "queued_at": _at(2),
        "started_at": _at(3),
        "progress": {"stage": "pgd_linf", "done": 3, "total": 16},
    },
    {
        "status": "finished",
        "attempts": 1,
        "task_id": "t-f",
        "queued_at": _at(4),
        "started_at": _at(5),
        "finished_at": _at(9),
        "progress": {"stage": "smoothing", "done": 16, "total": 16},
    },
    {"status": "failed", "attempts": 3, "error": "lost 3 times", "charged": False, "finished_at": _at(10)},
    {"status": "cancelled", "attempts": 0, "charged": False, "finished_at": _at(11)},
    {
        "status": "finished",
        "attempts": 1,
        "queued_at": _at(12),
        "started_at": _at(13),
        "finished_at": _at(15),
    },
]
MOVED = ["status", "progress", "error", "attempts", "task_id", "lease_owner", "lease_expires"]
MOVED += ["queued_at", "started_at", "finished_at", "suite"]


@pytest.fixture
def database(arena_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    for key, value in arena_env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    engine = sa.create_engine(get_settings().resolved_database_url)
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def _tables(engine: sa.Engine) -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    return metadata.tables


def _fill_old_schema(engine: sa.Engine) -> list[int]:
    """Teams, submissions in every state (ids with gaps), two results, under schema 0007."""
    tables = _tables(engine)
    ids = [3, 4, 5, 7, 8, 11, 12]
    with engine.begin() as connection:
        for team in (1, 2):
            connection.execute(
                tables["teams"].insert(),
                {
                    "id": team,
                    "name": f"team{team}",
                    "name_key": f"team{team}",
                    "token_hash": f"{team}" * 64,
                    "is_baseline": False,
                    "revoked": False,
                    "created_at": T0,
                    "submission_counter": 5,
                },
            )
        for index, (sid, lifecycle) in enumerate(zip(ids, LIFECYCLES, strict=True)):
            row = {column: None for column in MOVED} | {"charged": True} | SUBMISSION | lifecycle
            row |= {
                "id": sid,
                "team_id": 1 + index % 2,
                "stored_name": f"f{sid}.pt",
                "created_at": _at(index),
            }
            connection.execute(tables["submissions"].insert(), row)
        for rid, sid in ((1, 7), (2, 12)):
            connection.execute(
                tables["results"].insert(),
                {
                    "id": rid,
                    "submission_id": sid,
                    "suite": "smoke",
                    "suite_version": "3",
                    "natural": 0.5 + rid / 10,
                    "metrics": {"natural": {"accuracy": 0.5 + rid / 10}, "suite": {"name": "smoke"}},
                    "created_at": _at(20 + rid),
                },
            )
    return ids


def _rows(engine: sa.Engine, table: str) -> dict[int, dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(sa.select(_tables(engine)[table]))
        return {row.id: dict(row._mapping) for row in result}


def test_upgrade_keeps_every_row_and_downgrade_restores_them(database: sa.Engine) -> None:
    config = alembic_config()
    command.upgrade(config, "0007")
    ids = _fill_old_schema(database)
    before = {"submissions": _rows(database, "submissions"), "results": _rows(database, "results")}
    teams_before = _rows(database, "teams")

    command.upgrade(config, "0008")

    submissions, evaluations = _rows(database, "submissions"), _rows(database, "evaluations")
    results, teams = _rows(database, "results"), _rows(database, "teams")
    with database.connect() as connection:
        default = connection.execute(
            sa.text("SELECT id FROM competitions WHERE slug = 'default'")
        ).scalar_one()
        phase = connection.execute(
            sa.text("SELECT id FROM phases WHERE competition_id = :c AND kind = 'development'"),
            {"c": default},
        ).scalar_one()
    assert teams == teams_before
    assert sorted(submissions) == sorted(evaluations) == ids  # an evaluation per submission, same id
    for sid in ids:
        old, new, evaluation = before["submissions"][sid], submissions[sid], evaluations[sid]
        assert new["competition_id"] == default and evaluation["phase_id"] == phase
        assert evaluation["submission_id"] == sid and evaluation["created_at"] == old["created_at"]
        assert {column: evaluation[column] for column in MOVED} == {column: old[column] for column in MOVED}
        kept = set(new) - {"competition_id"}
        assert {column: new[column] for column in kept} == {column: old[column] for column in kept}
        assert evaluation["suite_version"] == ("3" if sid in (7, 12) else None)
    assert sorted(results) == [1, 2]
    for rid, result in results.items():
        assert result["evaluation_id"] == result["submission_id"] == before["results"][rid]["submission_id"]
        assert {k: v for k, v in result.items() if k != "evaluation_id"} == before["results"][rid]

    # The next evaluation gets an id of its own after the copied ones (PostgreSQL: the sequence).
    with database.begin() as connection:
        fresh = connection.execute(
            _tables(database)["evaluations"].insert().returning(sa.column("id")),
            {
                "submission_id": 3,
                "phase_id": phase,
                "suite": "smoke",
                "status": "queued",
                "attempts": 0,
                "created_at": T0,
            },
        ).scalar_one()
    assert fresh > max(ids)

    with pytest.raises(RuntimeError, match="other than exactly one evaluation"):
        command.downgrade(config, "0007")
    with database.begin() as connection:
        connection.execute(sa.text("DELETE FROM evaluations WHERE id = :id"), {"id": fresh})

    command.downgrade(config, "0007")
    assert _rows(database, "submissions") == before["submissions"]
    assert _rows(database, "results") == before["results"]
    assert "evaluations" not in _tables(database)
