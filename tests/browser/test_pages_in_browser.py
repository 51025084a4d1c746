"""The pages in a real browser against the real platform (API + Celery worker processes).

A team uploads through the form and watches its submission go from queued through the
evaluation's stages to finished without reloading; the leaderboard then ranks it and
re-sorts on a click; rejected uploads show the server's message by the field concerned.
Screenshots of the leaderboard and of a finished submission page go to test-artifacts/ and
docs/ (shown in the README).
"""

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.browser.conftest import DOCS
from tests.conftest import ADMIN_TOKEN, make_checkpoint, make_labelled_eval_set
from tests.processes import Platform

pytestmark = pytest.mark.browser

STAGES = ["normalisation", "natural", "fgsm", "pgd_linf", "pgd_l2", "smoothing"]

# Installed in every page before its own scripts: counts loads of each submission page and
# records every state its live section shows (status, stage, queue text, progress text).
WATCH = """
if (location.pathname.startsWith("/submissions/")) {
  const key = "loads:" + location.pathname;
  sessionStorage.setItem(key, String(Number(sessionStorage.getItem(key) || 0) + 1));
  window.__states = []; window.__texts = []; window.__done = []; window.__estimates = {};
  document.addEventListener("DOMContentLoaded", () => {
    const live = document.getElementById("live");
    const record = () => {
      const state = live.dataset.status + (live.dataset.stage ? ":" + live.dataset.stage : "");
      if (window.__states[window.__states.length - 1] !== state) window.__states.push(state);
      const active = document.querySelector('.stage[data-state="active"] .count');
      const queue = document.getElementById("queue").textContent;
      for (const text of [queue, active && active.textContent]) {
        if (text && !window.__texts.includes(text)) window.__texts.push(text);
      }
      for (const done of document.querySelectorAll('.stage[data-state="done"] .count')) {
        if (!window.__done.includes(done.textContent)) window.__done.push(done.textContent);
      }
      const estimate = document.getElementById("estimate").textContent;
      if (!(state in window.__estimates)) window.__estimates[state] = estimate;
    };
    record();
    new MutationObserver(record).observe(live, {attributes: true, childList: true, subtree: true,
                                                characterData: true});
  });
}
"""


def trained_checkpoint(path: Path, eval_set: Path, *, sigma: float, seed: int) -> Path:
    """A LeNet fitted to the evaluation images under Gaussian noise of ``sigma``, so that
    its accuracies, robust and certified, are far from chance (seconds on one CPU core)."""
    import torch
    from torch import nn

    from models.architectures.catalog import CATALOG
    from models.architectures.registry import build_model

    data = np.load(eval_set)
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float().div(255).repeat(4, 1, 1, 1)
    labels = torch.from_numpy(data["labels"]).long().repeat(4)
    mean = torch.tensor(CATALOG["lenet"].mean).view(1, 3, 1, 1)
    std = torch.tensor(CATALOG["lenet"].std).view(1, 3, 1, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = build_model("lenet")
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        noisy = images + sigma * torch.randn_like(images)
        loss = nn.functional.cross_entropy(net((noisy - mean) / std), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    torch.save(net.state_dict(), path)
    return path


def create_baseline(platform: Platform, name: str) -> str:
    response = httpx.post(
        platform.url + "/api/teams",
        json={"name": name, "baseline": True},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def accepted(response: httpx.Response) -> int:
    assert response.status_code == 202, response.text
    return response.json()["id"]


def save_screenshot(page, name: str, artifacts: Path) -> None:
    target = artifacts / name
    page.screenshot(path=str(target), full_page=True)
    if os.environ.get("ARENA_UPDATE_DOCS") == "1":  # the README's pictures, refreshed on request
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(target, DOCS / name)


def table_column(page, key: str) -> list[str]:
    index = page.locator("#leaderboard thead th").evaluate_all(
        f"cells => cells.findIndex(c => c.dataset.key === '{key}')"
    )
    return page.locator("#leaderboard tbody tr").evaluate_all(
        f"rows => rows.map(r => r.cells[{index}].dataset.sort)"
    )


def test_upload_is_followed_live_then_ranked_and_sortable(page, arena_env, tmp_path, artifacts):
    # The form uploads a ResNet-20 on images it classifies all correctly: every attack runs
    # on all 64 images of the smoke suite, several seconds of stages to follow on any machine.
    # (At initialisation it gives one class to all of them, so its scores are 100%: a constant
    # classifier is robust; the screenshot shows that, not a trained model.)
    """Long because it is one team's story in the browser, step by step, with a screenshot at each step."""
    second = make_checkpoint(tmp_path / "ada-resnet20.pth", arch="resnet20", seed=2)
    eval_set = make_labelled_eval_set(tmp_path / "eval64.npz", second, "resnet20", n=64)
    env = {**arena_env, "ARENA_MAX_ACTIVE_PER_TEAM": "2", "ARENA_EVAL_SET": str(eval_set)}
    first = trained_checkpoint(tmp_path / "ada-sigma-0.5.pth", eval_set, sigma=0.5, seed=1)
    # No worker until the page shows the upload in the queue: however fast evaluations
    # are, the page starts queued behind the three before it.
    platform = Platform(env, tmp_path, with_worker=False)
    try:
        ada = platform.create_team("Team Ada")
        bob = platform.create_team("Bob's Lab")
        reference = create_baseline(platform, "Reference LeNet")
        # Queued ahead of the form's upload, so the page starts in the queue.
        earlier = accepted(platform.submit(ada, first, sigma="0.5"))
        others = [
            accepted(platform.submit(bob, make_checkpoint(tmp_path / "bob.pth", seed=2))),
            accepted(platform.submit(reference, make_checkpoint(tmp_path / "ref.pth", seed=3))),
        ]

        page.add_init_script(WATCH)
        page.goto(platform.url + "/submit")
        page.fill("#token", ada)
        page.select_option("#arch", "resnet20")
        page.set_input_files("#checkpoint", str(second))
        page.fill("#sigma", "0.25")
        page.fill("#description", "ResNet-20 at initialisation")
        page.click("#submit-button")
        page.wait_for_url(re.compile(r"/submissions/\d+$"), timeout=300_000)  # after the model check
        submission = int(page.url.rsplit("/", 1)[1])
        page.wait_for_function("window.__states.length > 0", timeout=60_000)
        platform.start_worker()
        page.wait_for_selector('#live[data-status="finished"]', timeout=600_000)
        page.wait_for_selector("#radius-chart")

        states = page.evaluate("window.__states")
        texts = page.evaluate("window.__texts")
        (artifacts / "submission-states.json").write_text(json.dumps({"states": states, "texts": texts}))
        loads = page.evaluate(f"sessionStorage.getItem('loads:/submissions/{submission}')")
        assert loads == "1", "the submission page reloaded"
        assert states[0] == "queued" and states[-1] == "finished", states
        stages = [s.split(":")[1] for s in states if s.startswith("running:")]
        assert len(set(stages)) >= 2, states
        assert stages == sorted(stages, key=STAGES.index), states  # stages only move forward
        assert any(re.fullmatch(r"position \d+ in the queue", t) for t in texts), texts
        # One time-left figure (the status line's): a stage shows its images only, and the
        # stages before it read "done".
        assert any(re.fullmatch(r"\d+ / \d+ images", t) for t in texts), texts
        assert page.evaluate("window.__done") == ["done"]

        body = platform.wait_for(submission, ada)
        results = body["results"]
        assert page.locator("#results-table tbody tr").count() == 5
        natural = page.locator('#results-table tr[data-metric="natural"] td').all_inner_texts()
        assert natural[0] == f"{100 * results['natural']['accuracy']:.1f}%"
        low, high = results["natural"]["ci95"]
        assert natural[1] == f"{100 * low:.1f}–{100 * high:.1f}%"
        assert page.locator("#attack-chart rect").count() >= 5
        curves = page.locator("#radius-chart g.curve").evaluate_all(
            "groups => groups.map(g => g.dataset.label)"
        )
        assert curves == [
            f"σ = 0.25, this submission (#{submission})",
            f"σ = 0.5, submission #{earlier}",
        ]
        assert page.locator("#flags").is_visible()
        assert page.get_attribute("#download-json", "href") == f"/export/submissions/{submission}.json"
        save_screenshot(page, "submission.png", artifacts)

        for other in others:
            platform.wait_for(other, bob)
        board = httpx.get(platform.url + "/api/leaderboard").json()["rows"]
        page.goto(platform.url + "/")
        teams = page.locator("#leaderboard tbody tr").evaluate_all("rows => rows.map(r => r.dataset.team)")
        assert teams == [row["team"] for row in board]
        assert teams[0] == "Team Ada" and set(teams) == {"Team Ada", "Bob's Lab", "Reference LeNet"}
        best = max(
            (platform.wait_for(i, ada) for i in (earlier, submission)),
            key=lambda s: (s["score"], -s["id"]),
        )
        ada_row = page.locator('#leaderboard tr[data-team="Team Ada"]')
        assert ada_row.get_attribute("data-submission") == str(best["id"])
        assert ada_row.locator("td.rank").inner_text().startswith("1")
        assert f"{100 * best['score']:.1f}%" in ada_row.locator("td.score").inner_text()
        baseline = page.locator('#leaderboard tr[data-team="Reference LeNet"]')
        assert baseline.locator("td.rank .badge").inner_text() == "baseline"
        page.hover('#leaderboard tr[data-team="Team Ada"] td[data-metric="pgd_linf"] .acc')
        save_screenshot(page, "leaderboard.png", artifacts)

        page.click('#leaderboard th[data-key="team"] button')
        assert page.locator("#leaderboard tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.team)"
        ) == sorted(teams, key=str.lower)
        assert page.get_attribute('#leaderboard th[data-key="team"]', "aria-sort") == "ascending"
        page.click('#leaderboard th[data-key="team"] button')
        assert page.locator("#leaderboard tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.team)"
        ) == sorted(teams, key=str.lower, reverse=True)
        page.focus('#leaderboard th[data-key="natural"] button')
        page.keyboard.press("Enter")
        naturals = [float(v) for v in table_column(page, "natural")]
        assert naturals == sorted(naturals, reverse=True)
        assert page.get_attribute('#leaderboard th[data-key="natural"]', "aria-sort") == "descending"
        assert page.get_attribute('#leaderboard th[data-key="team"]', "aria-sort") == "none"
    finally:
        platform.stop()


def field_error(page, field: str) -> str:
    return page.locator(f"#{field}-error").inner_text().strip()


def other_errors(page, field: str) -> list[str]:
    names = ["token", "arch", "checkpoint", "sigma", "mean", "std", "description", "form"]
    return [name for name in names if name != field and field_error(page, name)]


def test_rejected_uploads_show_the_message_by_the_field(page, arena_env, tmp_path, artifacts):
    """Long because it walks each refused upload through the form, one block per kind of refusal."""
    notes = tmp_path / "notes.txt"
    notes.write_text("These are my training notes, not a checkpoint.\n")
    resnet = make_checkpoint(tmp_path / "resnet20.pth", arch="resnet20", seed=0)
    platform = Platform(arena_env, tmp_path, with_worker=False)
    try:
        token = platform.create_team("Team Ada")
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.goto(platform.url + "/submit")

        page.click("#submit-button")  # nothing filled in: the form says so without sending
        assert field_error(page, "token") == "Enter your team token."
        assert field_error(page, "arch") == "Choose an architecture, or auto."
        assert field_error(page, "checkpoint") == "Choose a checkpoint file."
        page.fill("#token", token)
        page.select_option("#arch", "lenet")
        page.set_input_files("#checkpoint", str(notes))
        page.fill("#sigma", "-0.5")
        page.click("#submit-button")
        assert field_error(page, "sigma") == "σ must be a positive number, e.g. 0.25."
        assert other_errors(page, "sigma") == [] and posts == []
        assert page.evaluate("document.activeElement.id") == "sigma"

        # The normalisation: a named choice fills mean and std, custom shows them to type,
        # automatic sends none (and there is nothing to insist on).
        assert page.is_hidden("#custom-fields") and page.is_disabled("#normalisation")
        page.select_option("#norm-choice", "cifar10")
        assert page.input_value("#mean") == "0.4914,0.4822,0.4465"
        assert page.input_value("#std") == "0.247,0.2435,0.2616"
        assert page.is_hidden("#custom-fields") and page.is_enabled("#normalisation")
        page.select_option("#norm-choice", "custom")
        page.fill("#std", "0,1,1")
        page.click("#submit-button")
        assert field_error(page, "std") == "Standard deviations must be positive."
        page.select_option("#norm-choice", "auto")
        assert page.input_value("#mean") == "" and page.is_disabled("#normalisation")
        assert posts == []

        def rejected(field: str) -> str:
            with page.expect_response(lambda r: r.url.endswith("/api/submissions")) as answer:
                page.click("#submit-button")
            body = answer.value.json()
            assert answer.value.status in (401, 413, 422) and body.get("field", field) == field
            page.wait_for_function(f"document.getElementById('{field}-error').textContent !== ''")
            assert field_error(page, field) == body["detail"]
            assert other_errors(page, field) == []
            assert page.get_attribute(f"#{field}", "aria-invalid") == "true"
            return body["detail"]

        page.fill("#sigma", "25")  # positive, so the form sends it; the server's limit is 10
        assert "at most 10" in rejected("sigma")
        page.fill("#sigma", "0.25")
        message = rejected("checkpoint")  # a text file
        save_screenshot_artifact(page, artifacts)
        page.set_input_files("#checkpoint", str(resnet))  # a ResNet-20 declared as LeNet
        mismatch = rejected("checkpoint")
        assert mismatch != message
        page.fill("#token", "arena_not-a-token")
        assert "token" in rejected("token").lower()
        page.fill("#token", token)  # corrected: the message goes before anything is sent again
        assert field_error(page, "token") == ""
        assert page.get_attribute("#token", "aria-invalid") is None
        assert httpx.get(platform.url + "/api/leaderboard").json()["rows"] == []
    finally:
        platform.stop()


def save_screenshot_artifact(page, artifacts: Path) -> None:
    page.screenshot(path=str(artifacts / "upload-error.png"), full_page=True)
