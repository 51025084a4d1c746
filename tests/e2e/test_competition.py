"""A two-phase competition from start to final ranking, with real processes.

`arena serve` (API and worker) runs a competition whose development phase closes seconds after
the teams upload: uploads in the open phase, refused after it, a final selection, the final
evaluations the reconciler starts at the deadline, results hidden from everyone but the
organiser, publishing, and the final board beside the public ranks. It waits on events (the
deadline, the evaluations finishing), never on a fixed sleep.
"""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, make_checkpoint, make_eval_set
from tests.processes import Platform, wait_until

pytestmark = pytest.mark.slow

SLUG = "spring-class"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Long enough for three uploads (each probed in a child process) on a busy two-core machine.
WINDOW = timedelta(seconds=40)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_competition(platform: Platform, home: Path, window: timedelta = WINDOW) -> datetime:
    """The two-phase competition, development closing ``window`` from now; its end."""
    sets = home / "sets"
    sets.mkdir(parents=True, exist_ok=True)
    make_eval_set(sets / "public.npz", seed=1)
    make_eval_set(sets / "private.npz", seed=2)
    now = datetime.now(UTC).replace(microsecond=0)
    ends_at = now + window
    response = httpx.post(
        platform.url + "/api/competitions",
        headers=ADMIN,
        json={
            "slug": SLUG,
            "title": "Spring class",
            "description": "Robust CIFAR-10, *two phases*.",
            "suite": "smoke",
            "score": "natural:1,pgd_linf:1",
            "final_selections": 1,
            "max_active_per_team": 3,
            "phases": [
                {
                    "name": "development",
                    "kind": "development",
                    "eval_set": "public.npz",
                    "starts_at": (now - timedelta(seconds=5)).isoformat(),
                    "ends_at": ends_at.isoformat(),
                },
                {"name": "final", "kind": "final", "eval_set": "private.npz"},
            ],
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return ends_at


def final_board(platform: Platform, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(
        platform.url + "/api/leaderboard",
        params={"competition": SLUG, "phase": "final"},
        headers=headers or {},
        timeout=30,
    )


def test_two_phase_competition_from_uploads_to_the_published_final_board(
    arena_env: dict[str, str], tmp_path: Path
):
    """Long because it is the lifecycle with real processes, one block per step from uploads
    to the published board."""
    platform = Platform(arena_env, tmp_path)
    try:
        ada, bob = platform.create_team("Team Ada"), platform.create_team("Team Bob")
        ends_at = create_competition(platform, Path(arena_env["ARENA_HOME"]))

        # Development: uploads are taken and evaluated on the public set.
        uploads = {
            (ada, 1): platform.submit(ada, make_checkpoint(tmp_path / "a1.pth", seed=1), competition=SLUG),
            (ada, 2): platform.submit(ada, make_checkpoint(tmp_path / "a2.pth", seed=2), competition=SLUG),
            (bob, 1): platform.submit(bob, make_checkpoint(tmp_path / "b1.pth", seed=3), competition=SLUG),
        }
        for response in uploads.values():
            assert response.status_code == 202, response.text
        ids = {key: response.json()["id"] for key, response in uploads.items()}
        selected = httpx.post(
            f"{platform.url}/api/submissions/{ids[(ada, 2)]}/final", headers=bearer(ada), timeout=30
        )
        assert selected.status_code == 200, selected.text
        assert selected.json()["final"] is True
        for (token, _), submission_id in ids.items():
            assert platform.wait_for(submission_id, token)["status"] == "finished"
        public = httpx.get(platform.url + "/api/leaderboard", params={"competition": SLUG}, timeout=30).json()
        assert {row["team"] for row in public["rows"]} == {"Team Ada", "Team Bob"}

        # The deadline: uploads stop, with the phase's dates.
        wait_until(
            lambda: datetime.now(UTC) >= ends_at, timeout=WINDOW.total_seconds() + 30, what="the deadline"
        )
        late = platform.submit(bob, make_checkpoint(tmp_path / "b2.pth", seed=4), competition=SLUG)
        assert late.status_code == 409, late.text
        assert ends_at.strftime("%Y-%m-%dT%H:%M:%S") in late.text

        # The final phase starts by itself; its results are the organiser's alone.
        def finals_done() -> bool:
            response = final_board(platform, ADMIN)
            done = response.status_code == 200 and len(response.json()["rows"]) == 2
            time.sleep(0 if done else 0.5)  # a board request every half second is enough
            return done

        wait_until(finals_done, timeout=600, what="the final evaluations")
        admin_board = final_board(platform, ADMIN).json()
        by_team = {row["team"]: row for row in admin_board["rows"]}
        assert by_team["Team Ada"]["submission_id"] == ids[(ada, 2)]  # her selection, not her best
        assert by_team["Team Bob"]["submission_id"] == ids[(bob, 1)]  # no selection: his best
        for headers in ({}, bearer(ada), bearer(bob)):
            hidden = final_board(platform, headers)
            assert hidden.status_code == 404, hidden.text
            mine = httpx.get(
                f"{platform.url}/api/submissions/{ids[(ada, 2)]}", headers=headers, timeout=30
            ).json()
            assert not mine.get("final_evaluation"), mine
        page = httpx.get(f"{platform.url}/competitions/{SLUG}", timeout=30).text
        for row in admin_board["rows"]:
            assert f"{row['score']:.6f}" not in page

        # Publishing shows the final board to everyone, beside the public ranks.
        published = httpx.post(f"{platform.url}/api/competitions/{SLUG}/publish", headers=ADMIN, timeout=30)
        assert published.status_code == 200, published.text
        board = final_board(platform)
        assert board.status_code == 200, board.text
        rows = board.json()["rows"]
        assert [row["team"] for row in rows] == [row["team"] for row in admin_board["rows"]]
        for row in rows:
            assert row["public_rank"] in (1, 2)
            assert row["rank_change"] == row["public_rank"] - row["rank"]
    finally:
        platform.stop()
