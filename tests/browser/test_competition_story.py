"""A two-phase competition as its teams and readers see it in a browser, with real processes.

The story of tests/e2e/test_competition.py, through the pages: the competition's page while
its development phase is open (a countdown, a link to its upload form), an upload through
that form and one through the API, a final selection with the team page's toggle (the token
the form kept), the closed phase after the deadline (the page and the form say so), no final
results anywhere before publishing, then the final board with its change column. Ada's model
was fitted to the public set's images and Bob's to the private set's: Ada leads the development
board, Bob the final one (the shake-up the change column shows). It waits on
events (the deadline, the evaluations finishing), never on a fixed sleep. With
ARENA_UPDATE_DOCS=1 its three screenshots refresh docs/ (shown in the README).
"""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from server.state.competitions import iso_utc
from tests.browser.test_pages_in_browser import save_screenshot, trained_checkpoint
from tests.conftest import make_eval_set
from tests.e2e.test_competition import ADMIN, SLUG, create_competition, final_board
from tests.processes import Platform, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Long enough for two uploads (each probed in a child process), their evaluations and the
# selection on a busy two-core machine, with a browser beside them.
WINDOW = timedelta(seconds=120)


def states(page) -> list[str]:
    """The timeline's phase states, in order (the results step has none)."""
    return page.locator("#timeline li[data-state]").evaluate_all("items => items.map(i => i.dataset.state)")


def change_text(rank_change: int | None) -> str:
    """The change column's cell for a row of the API's final board."""
    if rank_change is None:
        return "—"
    if rank_change == 0:
        return "="
    return f"↑{rank_change}" if rank_change > 0 else f"↓{-rank_change}"


def test_a_competition_from_the_open_phase_to_the_published_final_board(page, arena_env, tmp_path, artifacts):
    """Long because it is the whole story of a competition in the browser, one block per step of its life."""
    platform = Platform(arena_env, tmp_path)
    try:
        # The sets create_competition writes (same seeds), to fit the two models to beforehand.
        public, private = (
            make_eval_set(tmp_path / "public.npz", seed=1),
            make_eval_set(tmp_path / "private.npz", seed=2),
        )
        ada_model = trained_checkpoint(tmp_path / "ada.pth", public, sigma=0.5, seed=1)
        bob_model = trained_checkpoint(tmp_path / "bob.pth", private, sigma=0.5, seed=2)
        ada, bob = platform.create_team("Team Ada"), platform.create_team("Team Bob")
        ends_at = create_competition(platform, Path(arena_env["ARENA_HOME"]), WINDOW)

        # 1. The competition's page: development open, a countdown to its end, a way to upload.
        page.goto(f"{platform.url}/competitions/{SLUG}")
        assert page.locator("h1").inner_text() == "Spring class"
        status = page.locator("#competition-status").inner_text()
        assert status.startswith("The development phase is open until "), status
        assert states(page) == ["open", "upcoming"]
        assert page.locator('#timeline li[data-phase="development"] .step-state').inner_text() == "open now"
        deadline = page.locator("#next-deadline").inner_text()
        assert deadline.startswith("development closes in "), deadline
        page.wait_for_selector("#next-deadline time.countdown")
        assert page.locator("#upload-link").inner_text() == "Upload a checkpoint to the development phase."
        save_screenshot(page, "competition-open.png", artifacts)

        # 2. Ada uploads with the competition's form (reached from its page), Bob with the API.
        page.click("#upload-link a")
        page.wait_for_url(f"**/submit?competition={SLUG}")
        assert "For the competition Spring class." in page.locator("main").inner_text()
        assert page.locator("#closed-message").count() == 0
        page.fill("#token", ada)
        page.select_option("#arch", "lenet")
        page.set_input_files("#checkpoint", str(ada_model))
        page.click("#submit-button")
        page.wait_for_url(re.compile(r"/submissions/\d+$"), timeout=300_000)  # after the model check
        ada_id = int(page.url.rsplit("/", 1)[1])
        uploaded = platform.submit(bob, bob_model, competition=SLUG)
        assert uploaded.status_code == 202, uploaded.text
        bob_id = uploaded.json()["id"]
        page.wait_for_selector('#live[data-status="finished"]', timeout=600_000)
        assert platform.wait_for(bob_id, bob)["status"] == "finished"
        development = httpx.get(platform.url + "/api/leaderboard", params={"competition": SLUG}, timeout=30)
        assert [row["team"] for row in development.json()["rows"]] == ["Team Ada", "Team Bob"]

        # 3. The team page (linked from the submission): select the upload for the final. The
        # toggle knows the team from the token the upload form kept in this tab.
        page.click('h1 a:has-text("Team Ada")')
        page.wait_for_url("**/teams/**")
        assert datetime.now(UTC) < ends_at, (
            f"the development phase ({WINDOW.total_seconds():g} s) closed before the selection: "
            "the uploads and evaluations took longer than this test allows"
        )
        toggle = page.locator(f'form.final-toggle[data-submission="{ada_id}"]')
        page.wait_for_selector(f'form.final-toggle[data-submission="{ada_id}"] .final-token', state="hidden")
        assert page.locator("#final-help").is_visible()
        toggle.locator('button[value="select"]').click()
        page.wait_for_selector(f'form.final-toggle[data-submission="{ada_id}"][data-final="true"]')
        assert toggle.locator(".final-state").inner_text() == "Selected for the final. 1 of 1 selected."
        assert toggle.locator('button[value="unselect"]').is_visible()
        assert toggle.locator('button[value="select"]').is_hidden()
        save_screenshot(page, "team-final-selection.png", artifacts)
        assert platform.submission(ada_id, ada)["selected_for_final"] is True

        # 4. The deadline: development closed, the final phase runs, the form refuses uploads.
        wait_until(
            lambda: datetime.now(UTC) >= ends_at, timeout=WINDOW.total_seconds() + 30, what="the deadline"
        )
        page.goto(f"{platform.url}/competitions/{SLUG}")
        status = page.locator("#competition-status").inner_text()
        assert status == "The final phase is open: each team's final selections are evaluated.", status
        assert states(page) == ["closed", "open"]
        assert page.locator('#timeline li[data-phase="development"] .step-state').inner_text() == "closed"
        assert page.locator("#upload-link").count() == 0
        page.goto(f"{platform.url}/submit?competition={SLUG}")
        closed = page.locator("#closed-message").inner_text()
        assert closed.startswith(f"Uploads closed at {iso_utc(ends_at)}: the development phase ran "), closed
        assert closed.endswith("the final phase evaluates each team's final selections."), closed
        assert page.locator("#submit-button").is_disabled()

        # 5. The final evaluations finish, and nothing of them shows before publishing.
        def finals_done() -> bool:
            response = final_board(platform, ADMIN)
            return response.status_code == 200 and len(response.json()["rows"]) == 2

        wait_until(finals_done, timeout=600, what="the final evaluations")
        admin_rows = final_board(platform, ADMIN).json()["rows"]
        page.goto(f"{platform.url}/competitions/{SLUG}")
        assert page.locator("#final-results").count() == 0
        reveal = page.locator("#results-reveal").inner_text()
        assert reveal == "Final results revealed when the organiser publishes them.", reveal
        board_page = page.goto(f"{platform.url}/?competition={SLUG}&phase=final")
        assert board_page is not None and board_page.status == 404
        assert f"The final results of '{SLUG}' are not published yet." in page.locator("main").inner_text()
        page.goto(f"{platform.url}/teams/Team%20Ada")
        assert page.locator(".final-note").count() == 0  # not even to the team itself
        assert page.locator("form.final-toggle").count() == 0  # selections closed with development

        # 6. Publishing: the competition's page shows the final board and each team's change.
        published = httpx.post(f"{platform.url}/api/competitions/{SLUG}/publish", headers=ADMIN, timeout=30)
        assert published.status_code == 200, published.text
        rows = final_board(platform).json()["rows"]
        assert (
            [row["team"] for row in rows] == [row["team"] for row in admin_rows] == ["Team Bob", "Team Ada"]
        )
        assert {row["team"]: row["submission_id"] for row in rows} == {"Team Ada": ada_id, "Team Bob": bob_id}
        page.goto(f"{platform.url}/competitions/{SLUG}")
        reveal = page.locator("#results-reveal").inner_text()
        assert reveal.startswith("Final results were published at "), reveal
        shown = page.locator("#final-board tbody tr")
        assert shown.evaluate_all("rows => rows.map(r => r.dataset.team)") == [row["team"] for row in rows]
        changes = page.locator("#final-board td.change").all_inner_texts()
        assert changes == [change_text(row["rank_change"]) for row in rows]
        assert changes == ["↑1", "↓1"]  # Bob, fitted to the private set, overtakes Ada
        save_screenshot(page, "final-board.png", artifacts)
        page.click('#final-results a:has-text("The full final board")')
        page.wait_for_selector("#leaderboard")
        assert page.locator("#leaderboard tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.team)"
        ) == [row["team"] for row in rows]
    finally:
        platform.stop()
