"""The pages on a phone (390 px wide, as an iPhone 12-15 shows them) in a real browser.

A finished submission's parameters sit under their row instead of making each row a screen
tall, the charts keep readable text in a box that scrolls sideways, and no page is wider
than the screen; the competition pages fit a 360 px phone too. Screenshots go to
test-artifacts/.
"""

import pytest

from server.state.db import session_scope
from server.state.tables import Status
from tests.processes import Platform
from tests.server.test_competitions import sets  # noqa: F401 (a fixture)
from tests.server.test_pages import add_submission, results, team

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_pages_fit_a_phone_and_keep_their_text_readable(phone, settings_env, tmp_path, artifacts):
    with session_scope() as session:
        ada, _ = team(session, "Team Ada")
        finished = add_submission(
            session,
            ada,
            sigma=0.25,
            metrics=results(
                0.82, 0.41, 0.37, 0.52, certified=[0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], flags=("stochastic",)
            ),
        )
        running = add_submission(
            session,
            ada,
            status=Status.RUNNING,
            arch="resnet20",
            progress={
                "stage": "pgd_linf",
                "done": 256,
                "total": 1024,
                "stages": ["natural", "fgsm", "pgd_linf", "pgd_l2"],
            },
        )
    platform = Platform(settings_env, tmp_path, with_worker=False)
    try:
        phone.goto(f"{platform.url}/submissions/{finished}")
        phone.wait_for_selector("#results-table")
        assert page_width(phone) <= PHONE["width"]
        for row in phone.locator("#results-table tbody tr").all():
            accuracy = row.locator("td").nth(0).bounding_box()
            params = row.locator("td.params").bounding_box()
            assert params["y"] >= accuracy["y"] + accuracy["height"] - 1  # under its row
            assert params["width"] > 0.8 * (PHONE["width"] - 40)  # the whole width, not a sliver
            assert row.bounding_box()["height"] < PHONE["height"] / 3
        for chart in ("#attack-chart", "#radius-chart"):
            scale = phone.evaluate(
                "id => { const svg = document.querySelector(id);"
                " return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width; }",
                chart,
            )
            assert scale >= 0.95, chart  # 12 px chart text stays about 12 px
            box = phone.locator(chart).locator("xpath=..").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        phone.screenshot(path=str(artifacts / "submission-390.png"), full_page=True)

        phone.goto(f"{platform.url}/submissions/{running}")
        phone.wait_for_selector('#stages .stage[data-state="active"]')
        assert page_width(phone) <= PHONE["width"]
        labels = phone.locator("#stages .count").all_inner_texts()
        assert labels[:3] == ["done", "done", "256 / 1024 images"]
        phone.screenshot(path=str(artifacts / "running-390.png"), full_page=True)

        for path, name in (("/", "leaderboard-390.png"), ("/submit", "submit-390.png")):
            phone.goto(platform.url + path)
            assert page_width(phone) <= PHONE["width"], path
            phone.screenshot(path=str(artifacts / name), full_page=True)
    finally:
        platform.stop()


NARROW_PHONE = {"width": 360, "height": 740}


def test_competition_pages_fit_a_360_px_phone(browser, settings_env, sets, tmp_path, artifacts):  # noqa: F811
    """The competition page, the list of competitions and the leaderboard with its list above
    the board, on the narrowest common phone."""
    from tests.browser.test_competition_page import create_example

    slug = create_example(sets)
    context = browser.new_context(viewport=NARROW_PHONE, device_scale_factor=2, is_mobile=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    platform = Platform(settings_env, tmp_path, with_worker=False)
    try:
        for path, name in (
            (f"/competitions/{slug}", "competition-360.png"),
            ("/competitions", "competitions-360.png"),
            ("/", "leaderboard-competitions-360.png"),
        ):
            page.goto(platform.url + path)
            page.wait_for_selector(".local-time")  # the longest form of each time, once added
            assert page_width(page) <= NARROW_PHONE["width"], path
            for box in page.locator("#timeline .step, #competitions li").all():
                edge = box.bounding_box()
                assert edge["x"] >= 0 and edge["x"] + edge["width"] <= NARROW_PHONE["width"], path
            page.screenshot(path=str(artifacts / name), full_page=True)
    finally:
        platform.stop()
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
