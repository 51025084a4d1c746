"""``arena competition``: a YAML bundle's sets are checked and copied, then the competition made."""

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from server.cli import main
from server.state import competition_spec, competitions
from server.state.config import get_settings
from server.state.db import session_scope
from tests.synthetic import save_task

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "competition.yaml"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def bundle(settings_env: dict[str, str], tmp_path: Path) -> Path:
    """The documented example in a folder of its own, its sets beside it (data/ for one)."""
    folder = tmp_path / "bundle"
    (folder / "data").mkdir(parents=True)
    save_task(folder / "public.npz", n=16, seed=1)
    save_task(folder / "data" / "private.npz", n=16, seed=2)
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["phases"][1]["eval_set"] = "data/private.npz"
    path = folder / "competition.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_documented_example_is_a_valid_definition() -> None:
    spec = competition_spec.CompetitionSpec.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert [phase.kind for phase in spec.phases] == ["development", "final"]
    assert spec.development.ends_at is not None and spec.development.starts_at is not None
    assert (spec.development.ends_at - spec.development.starts_at).days == 14


def test_create_copies_the_sets_and_creates_the_competition(bundle: Path) -> None:
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code == 0, result.output
    assert "Competition 'ml-class-2027' created" in result.output
    sets = competition_spec.sets_dir(get_settings().home)
    assert (sets / "public.npz").read_bytes() == (bundle.parent / "public.npz").read_bytes()
    assert (sets / "private.npz").read_bytes() == (bundle.parent / "data" / "private.npz").read_bytes()
    assert sorted(p.name for p in sets.iterdir()) == ["private.npz", "public.npz"]  # no leftovers
    with session_scope() as session:
        created = competitions.get_competition(session, "ml-class-2027")
        assert created is not None
        assert [phase.eval_set for phase in created.phases] == ["public.npz", "private.npz"]
        assert created.suite == "class" and created.submissions_per_day == 10

    listed = invoke("competition", "list")
    assert listed.exit_code == 0
    assert listed.output.splitlines() == [
        "default\tRobustness Arena\tsmoke\tdevelopment open",
        "ml-class-2027\tMachine learning class 2027: robust CIFAR-10\tclass\tclosed",
    ]
    shown = invoke("competition", "show", "ml-class-2027")
    assert shown.exit_code == 0, shown.output
    dates = "2027-01-10T09:00:00Z to 2027-01-24T09:00:00Z"
    assert f"1. Development [development] public.npz: {dates}" in shown.output
    assert "2. Final [final] private.npz: 2027-01-24T09:00:00Z to …" in shown.output
    assert "Uploads open at 2027-01-10T09:00:00Z" in shown.output

    again = invoke("competition", "create", str(bundle))
    assert again.exit_code != 0 and "already exists" in again.output


def test_the_same_set_again_is_fine_another_one_is_refused(bundle: Path) -> None:
    sets = competition_spec.sets_dir(get_settings().home)
    sets.mkdir(parents=True)
    shutil.copyfile(bundle.parent / "public.npz", sets / "public.npz")  # the same content
    save_task(sets / "private.npz", n=16, seed=3)  # another set under the same name
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code != 0
    assert "private.npz already exists with other content" in result.output
    with session_scope() as session:
        assert competitions.get_competition(session, "ml-class-2027") is None

    (sets / "private.npz").unlink()
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code == 0, result.output


def test_a_file_that_is_not_an_evaluation_set_is_refused(bundle: Path) -> None:
    (bundle.parent / "data" / "private.npz").write_text("not arrays")
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code != 0
    assert "Phase 'Final':" in result.output and "is not an evaluation set" in result.output
    assert not (competition_spec.sets_dir(get_settings().home) / "private.npz").exists()


def test_a_missing_set_is_refused(bundle: Path) -> None:
    (bundle.parent / "public.npz").unlink()
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code != 0 and "does not exist" in result.output


def test_an_invalid_bundle_is_explained(bundle: Path) -> None:
    spec = yaml.safe_load(bundle.read_text())
    spec["slug"] = "Bad Slug"
    spec["phases"][0]["starts_at"] = "2027-01-10 09:00:00"
    bundle.write_text(yaml.safe_dump(spec))
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code != 0
    assert "slug: slug 'Bad Slug' must be 1 to 63 characters" in result.output
    assert "phases.0.starts_at: 2027-01-10T09:00:00 has no time zone: give a UTC offset" in result.output

    bundle.write_text("- just\n- a list\n")
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code != 0 and "must be a YAML mapping" in result.output
    bundle.write_text("slug: [unclosed\n")
    result = invoke("competition", "create", str(bundle))
    assert result.exit_code != 0 and "Cannot read" in result.output


def test_show_an_unknown_competition(settings_env: dict[str, str]) -> None:
    result = invoke("competition", "show", "nope")
    assert result.exit_code != 0 and "No competition 'nope'." in result.output
