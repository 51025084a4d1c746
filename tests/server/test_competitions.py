"""Competitions: their definition's checks, storage, the phase clock, the API, the default one."""

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import inspect

from server.main import create_app
from server.state import competition_spec, competitions
from server.state.competition_spec import CompetitionError, CompetitionSpec
from server.state.config import Settings, get_settings
from server.state.db import get_engine, session_scope
from server.state.migrate import alembic_config, upgrade
from server.state.tables import Competition, Phase, PhaseKind
from tests.conftest import ADMIN_TOKEN, make_eval_set

START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
END = START + timedelta(days=14)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

BUNDLE: dict[str, Any] = {
    "slug": "ml-class-2027",
    "title": "ML class 2027",
    "description": "# Robust CIFAR-10\n\nBeat PGD.",
    "suite": "smoke",
    "score": "natural:1,pgd_linf:1",
    "phases": [
        {
            "name": "Development",
            "kind": "development",
            "eval_set": "public.npz",
            "starts_at": "2027-01-10T09:00:00Z",
            "ends_at": "2027-01-24T10:00:00+01:00",
        },
        {"name": "Final", "kind": "final", "eval_set": "private.npz"},
    ],
}


def bundle(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BUNDLE)
    spec.update(changes)
    return spec


def with_phase(index: int, **changes: Any) -> dict[str, Any]:
    spec = bundle()
    spec["phases"][index].update(changes)
    return spec


@pytest.fixture
def sets(settings_env: dict[str, str]) -> Path:
    """public.npz and private.npz in ARENA_HOME/sets/."""
    folder = competition_spec.sets_dir(get_settings().home)
    folder.mkdir(parents=True, exist_ok=True)
    make_eval_set(folder / "public.npz", seed=1)
    make_eval_set(folder / "private.npz", seed=2)
    return folder


# --- the definition ------------------------------------------------------------------------


def test_a_valid_definition_is_read_in_utc() -> None:
    spec = CompetitionSpec.model_validate(BUNDLE)
    assert spec.development.starts_at == START and spec.development.ends_at == END
    assert spec.development.ends_at is not None and spec.development.ends_at.tzinfo == UTC
    assert spec.final is not None and spec.final.eval_set == "private.npz"
    assert spec.final_selections == 2 and spec.reveal_at is None
    assert spec.submissions_per_day is None and spec.max_active_per_team is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (bundle(slug="ML class"), "slug 'ML class' must be 1 to 63 characters among a-z, 0-9 and '-'"),
        (bundle(slug="-lead"), "starting with a letter or digit"),
        (bundle(slug="a" * 64), "at most 63 characters"),
        (bundle(suite="nope"), "unknown suite 'nope'; known suites: class, robustbench, smoke"),
        (bundle(score="natural:1,accuracy:2"), "Invalid score rule"),
        (bundle(score="natural:x"), "each weight must be a number"),
        (bundle(score="natural:nan"), "weights must be finite"),
        (bundle(final_selections=0), "greater than or equal to 1"),
        (bundle(title="  "), "the title must not be blank"),
        (bundle(title="two\nlines"), "the title must be printable"),
        (with_phase(0, starts_at="2027-01-10T09:00:00"), "has no time zone: give a UTC offset"),
        (with_phase(0, starts_at="2027-01-10"), "has no time zone: give a UTC offset"),
        (with_phase(0, starts_at="0001-01-01T00:00:00+01:00"), "out of range once converted to UTC"),
        (with_phase(0, ends_at="2027-01-10T09:00:00Z"), "must start before it ends"),
        (with_phase(0, ends_at=None), "the development phase needs starts_at and ends_at"),
        (with_phase(1, kind="development"), "exactly one development phase; 2 given"),
        (with_phase(0, kind="final"), "exactly one development phase; 0 given"),
        (with_phase(0, kind="warmup"), "'development' or 'final'"),
        (with_phase(1, name="Development"), "phase names must differ: 'Development' given twice"),
        (with_phase(1, starts_at="2027-02-01T00:00:00Z"), "the final phase has no dates of its own"),
        (with_phase(1, eval_set="public.npz"), "the final phase's eval_set must differ"),
        (with_phase(1, eval_set="../private.npz"), "must be a plain file name ending in .npz"),
        (with_phase(1, eval_set="sets/private.npz"), "must be a plain file name"),
        (with_phase(1, eval_set="private.csv"), "must be a plain file name"),
        (with_phase(1, eval_set=".npz"), "must be a plain file name"),
        (bundle(reveal_at="2027-01-24T09:00:00Z"), "reveal_at 2027-01-24T09:00:00Z must be after"),
        (bundle(reveal_at="2027-02-01T09:00:00"), "has no time zone"),
        (bundle(phases=[BUNDLE["phases"][0]] * 0), "at least 1 item"),
        (bundle(extra="x"), "Extra inputs are not permitted"),
    ],
)
def test_an_invalid_definition_is_refused_with_a_clear_message(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CompetitionSpec.model_validate(spec)
    assert message in str(refused.value)


def test_the_score_rule_is_read_like_the_settings() -> None:
    rule = "natural:1, pgd_l2:2,pgd_linf"
    spec = CompetitionSpec.model_validate(bundle(score=rule))
    assert spec.score == rule
    assert Settings(score=rule).score_weights() == {"natural": 1.0, "pgd_l2": 2.0, "pgd_linf": 1.0}


def test_one_phase_and_optional_fields() -> None:
    spec = CompetitionSpec.model_validate(
        bundle(
            phases=[BUNDLE["phases"][0]],
            reveal_at="2027-02-01T00:00:00+02:00",
            final_selections=3,
            submissions_per_day=5,
            max_active_per_team=2,
        )
    )
    assert spec.final is None and spec.final_selections == 3
    assert spec.reveal_at == datetime(2027, 1, 31, 22, tzinfo=UTC)


def test_creating_needs_the_sets_in_place(settings_env: dict[str, str]) -> None:
    spec = CompetitionSpec.model_validate(BUNDLE)
    with session_scope() as session, pytest.raises(CompetitionError, match="'public.npz' is not in"):
        competitions.create_competition(session, spec, get_settings().home)


def test_create_list_get_in_the_state_layer(sets: Path) -> None:
    settings = get_settings()
    spec = CompetitionSpec.model_validate(bundle(submissions_per_day=3))
    with session_scope() as session:
        created = competitions.create_competition(session, spec, settings.home)
        assert created.submissions_per_day == 3
        assert created.max_active_per_team == settings.max_active_per_team  # the settings' value
        with pytest.raises(competition_spec.CompetitionExists, match="already exists"):
            competitions.create_competition(session, spec, settings.home)
    with session_scope() as session:
        found = competitions.get_competition(session, "ml-class-2027")
        assert found is not None
        assert [(p.name, p.kind, p.position) for p in found.phases] == [
            ("Development", "development", 0),
            ("Final", "final", 1),
        ]
        assert found.phases[0].starts_at == START and found.phases[0].ends_at == END
        assert found.phases[1].starts_at is None and found.phases[1].ends_at is None
        slugs = [each.slug for each in competitions.list_competitions(session)]
        assert slugs == ["default", "ml-class-2027"]
        assert competitions.get_competition(session, "missing") is None


# --- the phase clock -------------------------------------------------------------------------


def two_phases(final: bool = True) -> Competition:
    phases = [Phase(name="Development", kind=PhaseKind.DEVELOPMENT, eval_set="public.npz", position=0)]
    phases[0].starts_at, phases[0].ends_at = START, END
    if final:
        phases.append(Phase(name="Final", kind=PhaseKind.FINAL, eval_set="private.npz", position=1))
    return Competition(slug="c", phases=phases)


def test_phases_open_at_their_start_and_close_at_their_end() -> None:
    """Start inclusive, end exclusive: at ends_at exactly, the final phase has begun."""
    competition = two_phases()
    second = timedelta(seconds=1)
    assert competitions.current_phase(competition, START - second) is None
    assert competitions.current_phase(competition, START).name == "Development"  # type: ignore[union-attr]
    assert competitions.current_phase(competition, END - second).name == "Development"  # type: ignore[union-attr]
    assert competitions.current_phase(competition, END).name == "Final"  # type: ignore[union-attr]
    assert competitions.current_phase(competition, END + timedelta(days=365)).name == "Final"  # type: ignore[union-attr]
    assert competitions.current_phase(two_phases(final=False), END) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        competitions.current_phase(competition, START.replace(tzinfo=None))


def test_uploads_are_accepted_during_development_only() -> None:
    competition = two_phases()
    dates = "from 2027-01-10T09:00:00Z to 2027-01-24T09:00:00Z (UTC)"

    accepted, message = competitions.accepts_uploads(competition, START - timedelta(microseconds=1))
    assert not accepted
    assert message == f"Uploads open at 2027-01-10T09:00:00Z: the Development phase runs {dates}."

    accepted, message = competitions.accepts_uploads(competition, START)
    assert accepted
    assert message == f"Uploads are open until 2027-01-24T09:00:00Z: the Development phase runs {dates}."

    accepted, message = competitions.accepts_uploads(competition, END)
    assert not accepted
    assert message == (
        f"Uploads closed at 2027-01-24T09:00:00Z: the Development phase ran {dates}; "
        "the Final phase evaluates each team's final selections."
    )
    accepted, message = competitions.accepts_uploads(two_phases(final=False), END)
    assert not accepted and message.endswith(f"ran {dates}.")


def test_a_development_phase_without_dates_is_always_open() -> None:
    always = Competition(
        slug="default",
        phases=[Phase(name="development", kind=PhaseKind.DEVELOPMENT, eval_set="x.npz", position=0)],
    )
    for moment in (datetime(1, 1, 1, tzinfo=UTC), START, datetime(9999, 1, 1, tzinfo=UTC)):
        assert competitions.current_phase(always, moment) is always.phases[0]
        assert competitions.accepts_uploads(always, moment) == (
            True,
            "Uploads are open: the development phase runs without an end.",
        )


# --- the default competition -----------------------------------------------------------------


def test_the_default_competition_exists_from_the_first_start(settings_env: dict[str, str]) -> None:
    settings = get_settings()
    response = TestClient(create_app()).get("/api/competitions/default")
    assert response.status_code == 200
    default = response.json()
    assert default["title"] == "Robustness Arena"
    assert default["suite"] == "smoke" == settings.suite
    assert default["score"] == settings.score
    assert default["submissions_per_day"] == 50 and default["max_active_per_team"] == 1
    assert default["reveal_at"] is None and default["published_at"] is None
    assert default["current_phase"] == "development" and default["accepts_uploads"] is True
    (phase,) = default["phases"]
    assert phase["kind"] == "development" and phase["eval_set"] == "eval.npz"
    assert phase["starts_at"] is None and phase["ends_at"] is None
    with session_scope() as session:
        found = competitions.get_competition(session, "default")
        assert found is not None
        assert competitions.eval_set_path(found, found.phases[0], settings) == settings.eval_set


def test_the_default_competition_follows_the_settings_on_each_start(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:
        first = competitions.get_competition(session, "default")
        assert first is not None and first.suite == "smoke"
    monkeypatch.setenv("ARENA_SUITE", "class")
    monkeypatch.setenv("ARENA_SCORE", "pgd_linf")
    monkeypatch.setenv("ARENA_SUBMISSIONS_PER_DAY", "7")
    get_settings.cache_clear()
    upgrade()  # what every start runs
    upgrade()  # and again: still one default competition
    with session_scope() as session:
        (default,) = competitions.list_competitions(session)
        assert default.id == first.id
        assert (default.suite, default.score, default.submissions_per_day) == ("class", "pgd_linf", 7)
        assert len(default.phases) == 1


# --- the API ---------------------------------------------------------------------------------


def test_the_admin_creates_a_competition_and_teams_never_see_the_private_set(sets: Path) -> None:
    client = TestClient(create_app())
    assert client.post("/api/competitions", json=BUNDLE).status_code == 401
    wrong = {"Authorization": "Bearer not-the-admin"}
    assert client.post("/api/competitions", json=BUNDLE, headers=wrong).status_code == 403

    response = client.post("/api/competitions", json=BUNDLE, headers=ADMIN)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["slug"] == "ml-class-2027" and created["description"] == BUNDLE["description"]
    assert [p["eval_set"] for p in created["phases"]] == ["public.npz", "private.npz"]
    assert created["phases"][0]["starts_at"] == "2027-01-10T09:00:00Z"
    assert created["phases"][0]["ends_at"] == "2027-01-24T09:00:00Z"
    assert created["phases"][1]["starts_at"] is None
    assert created["submissions_per_day"] == 50  # the settings' quota
    assert created["current_phase"] is None and created["accepts_uploads"] is False  # opens in 2027

    for headers in ({}, wrong, {"Authorization": "Bearer arena_some_team_token"}):
        public = client.get("/api/competitions/ml-class-2027", headers=headers).json()
        assert [p["eval_set"] for p in public["phases"]] == ["public.npz", None]
        listed = client.get("/api/competitions", headers=headers).json()["competitions"]
        assert [c["slug"] for c in listed] == ["default", "ml-class-2027"]
        assert [p["eval_set"] for p in listed[1]["phases"]] == ["public.npz", None]
        assert "private.npz" not in client.get("/api/competitions", headers=headers).text
    admin = client.get("/api/competitions/ml-class-2027", headers=ADMIN).json()
    assert [p["eval_set"] for p in admin["phases"]] == ["public.npz", "private.npz"]
    assert admin["phases"][0]["id"] != admin["phases"][1]["id"]

    again = client.post("/api/competitions", json=BUNDLE, headers=ADMIN)
    assert again.status_code == 409
    assert again.json() == {
        "detail": "A competition with slug 'ml-class-2027' already exists.",
        "field": "slug",
    }


def test_invalid_definitions_get_a_422_with_a_json_detail(sets: Path) -> None:
    client = TestClient(create_app())
    naive = with_phase(0, ends_at="2027-01-24T09:00:00")
    response = client.post("/api/competitions", json=naive, headers=ADMIN)
    assert response.status_code == 422
    assert "has no time zone: give a UTC offset" in response.json()["detail"]

    missing = with_phase(1, eval_set="other.npz")
    response = client.post("/api/competitions", json=missing, headers=ADMIN)
    assert response.status_code == 422
    assert "'other.npz' is not in" in response.json()["detail"]

    for nasty in (
        bundle(title="\x00"),
        bundle(description="a\x00b"),
        bundle(final_selections=2**63),
        with_phase(0, starts_at="9999-12-31T23:00:00-05:00"),
        bundle(slug="x\x00"),
    ):
        assert client.post("/api/competitions", json=nasty, headers=ADMIN).status_code == 422, nasty


def test_an_unknown_competition_is_a_json_404(settings_env: dict[str, str]) -> None:
    client = TestClient(create_app())
    for slug in ("nope", "Not A Slug", "x" * 300):
        response = client.get(f"/api/competitions/{slug}")
        assert response.status_code == 404
        assert response.json() == {"detail": f"No competition {slug!r}."}


# --- the migration ---------------------------------------------------------------------------


def test_the_migration_goes_down_and_up_again(settings_env: dict[str, str]) -> None:
    config = alembic_config()
    engine = get_engine()
    assert {"competitions", "phases"} <= set(inspect(engine).get_table_names())
    command.downgrade(config, "0006")
    tables = set(inspect(engine).get_table_names())
    assert "competitions" not in tables and "phases" not in tables and "submissions" in tables
    upgrade()
    assert {"competitions", "phases"} <= set(inspect(engine).get_table_names())
    with session_scope() as session:
        assert competitions.get_competition(session, "default") is not None
