"""A competition's page in a real browser: its script adds the reader's local time beside
each UTC time and counts down to the next deadline; without scripts the page keeps the UTC
times and the time left as of rendering. With ARENA_UPDATE_DOCS=1 its screenshot refreshes
docs/competition.png (shown in the README)."""

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from server.state import competitions
from server.state.competition_spec import CompetitionSpec
from server.state.config import get_settings
from server.state.db import session_scope
from server.state.tables import utcnow
from tests.browser.conftest import DOCS
from tests.processes import Platform
from tests.server.test_competitions import sets  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "competition.yaml"


def create_example(sets: Path) -> str:  # noqa: F811
    """docs/competition.yaml, open since yesterday and closing in three days."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    start = utcnow().replace(second=0, microsecond=0) - timedelta(days=1)
    spec["phases"][0].update(starts_at=start, ends_at=start + timedelta(days=4, hours=4, minutes=30))
    spec["suite"] = "smoke"
    with session_scope() as session:
        competitions.create_competition(session, CompetitionSpec.model_validate(spec), get_settings().home)
    return spec["slug"]


@pytest.fixture
def platform(settings_env, tmp_path):
    running = Platform(settings_env, tmp_path, with_worker=False)
    yield running
    running.stop()


def test_the_page_shows_local_times_and_a_live_countdown(browser, sets, platform, artifacts):  # noqa: F811
    slug = create_example(sets)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Paris")
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{platform.url}/competitions/{slug}")
        page.wait_for_selector(".local-time")
        local = page.locator("#timeline .local-time").first.inner_text()
        assert local.startswith(" (your time: ") or local.startswith("(your time: "), local
        assert "Europe/Paris" in page.locator("#local-zone").inner_text()
        assert "UTC" in page.locator("#timeline time").first.inner_text()  # the UTC time stays

        countdown = page.locator("#next-deadline time.countdown")
        first = countdown.inner_text()
        assert first.startswith("3 days") and "second" in first, first  # seconds: it ticks
        # It changes on its own, with no reload; how fast is the browser's business.
        page.wait_for_function(
            "before => document.querySelector('#next-deadline time.countdown').textContent !== before",
            arg=first,
        )
        assert countdown.inner_text().startswith("3 days")

        target = artifacts / "competition.png"
        page.screenshot(path=str(target), full_page=True)
        if os.environ.get("ARENA_UPDATE_DOCS") == "1":
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(target, DOCS / "competition.png")
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_without_scripts_the_page_keeps_utc_and_the_time_left_at_rendering(browser, sets, platform):  # noqa: F811
    slug = create_example(sets)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{platform.url}/competitions/{slug}")
        assert page.locator(".local-time").count() == 0
        text = page.locator("#next-deadline").inner_text()
        assert text.startswith("Development closes in 3 days 4 hours, at "), text
        assert text.endswith(" UTC."), text
        assert page.locator("#description li").count() == 2  # the Markdown list
    finally:
        context.close()
