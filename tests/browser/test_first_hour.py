"""A newcomer's first hour, from a fresh clone and offline, with the README's own commands.

The test clones the repository, brings CIFAR-10-shaped arrays as the README's offline block
expects them, then runs that block's import command and the "first hour" block line by
line: the admin token, `make serve`, `arena team create`, the team's token and the curl
upload (sent with httpx, header and fields read from the README's curl line). It follows
the submission in Chromium (an estimate from the first second, then the results), uploads
a second time with the form, reads the board and downloads its CSV.

Only two things differ from a person at a terminal: `make serve` gets a free port
(`SERVE_ARGS`, as the README says) instead of 8000, and the platform runs the `smoke` suite
(`ARENA_SUITE`) so that the test takes seconds, not minutes.
"""

import csv
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.browser.test_pages_in_browser import WATCH
from tests.conftest import make_checkpoint
from tests.processes import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = "Without internet access it stops"
FIRST_HOUR = "### The first hour"


def readme_block(readme: str, after: str) -> list[list[str]]:
    """The command lines (continuations joined, comments cut) of the first ``sh`` block
    after ``after``."""
    block = re.search(r"```sh\n(.*?)```", readme[readme.index(after) :], re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [words for words in (shlex.split(line, comments=True) for line in lines) if words]


def offline_env() -> dict[str, str]:
    """This machine's environment without platform settings, and no way to the internet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[name] = "http://127.0.0.1:9"
    env["ARENA_SUITE"] = "smoke"
    return env


def fresh_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "robustness-arena"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # The already-built virtual environment stands in for `make`'s first build (torch is
    # large); its marker stays newer than the clone's pyproject.toml, so make keeps it.
    (clone / ".venv").symlink_to(ROOT / ".venv")
    installed = (ROOT / ".venv" / ".installed").stat().st_mtime
    os.utime(clone / "pyproject.toml", (installed - 60, installed - 60))
    return clone


def wait_for_api(url: str, serve: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.poll() is None, "make serve exited:\n" + log.read_text()
        try:
            if httpx.get(url + "/api/architectures", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("make serve did not answer:\n" + log.read_text())


def curl_as_httpx(words: list[str], env: dict[str, str], url: str, cwd: Path) -> httpx.Response:
    """The README's curl upload: its URL (on this test's port), -H headers, -F fields."""
    assert words[0] == "curl"
    target = next(w for w in words if w.startswith("http://127.0.0.1:8000"))
    headers, data, files = {}, {}, {}
    for flag, value in zip(words, words[1:], strict=False):
        value = value.replace("$TOKEN", env["TOKEN"])
        if flag == "-H":
            name, _, content = value.partition(": ")
            headers[name] = content
        elif flag == "-F":
            name, _, content = value.partition("=")
            if content.startswith("@"):
                files[name] = (content[1:], (cwd / content[1:]).read_bytes())
            else:
                data[name] = content
    return httpx.post(
        target.replace("http://127.0.0.1:8000", url), headers=headers, data=data, files=files, timeout=300
    )


def wait_finished(page, submission: int) -> None:
    page.wait_for_selector(f'#live[data-submission="{submission}"][data-status="finished"]', timeout=600_000)


def test_first_hour_from_a_fresh_clone_with_the_readmes_commands(page, tmp_path, artifacts):
    """Long because it is a newcomer's first hour, one block per step the README gives."""
    clone = fresh_clone(tmp_path)
    readme = (clone / "README.md").read_text()
    env = offline_env()
    rng = np.random.default_rng(0)  # the arrays a newcomer brought, in the official rows' layout
    np.savez(
        clone / "cifar10_arrays.npz",
        train_data=rng.integers(0, 256, size=(1024, 3072), dtype=np.uint8),
        train_labels=rng.integers(0, 10, size=1024),
    )
    make_checkpoint(clone / "model.pth", arch="resnet20", seed=0)  # the team's model.pth

    (imported,) = readme_block(readme, OFFLINE)
    assert imported[:3] == [".venv/bin/arena", "data", "import"]
    done = subprocess.run(imported, cwd=clone, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(1024 images)" in done.stdout

    steps = readme_block(readme, FIRST_HOUR)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    serve, token = None, None
    try:
        for words in steps:
            if words[0] == "export":
                name, _, value = words[1].partition("=")
                if name == "TOKEN":  # "that token": the one `arena team create` printed
                    assert token is not None, "the README sets TOKEN before creating the team"
                    value = token
                env[name] = value
            elif words[:2] == ["make", "serve"]:
                serve = subprocess.Popen(
                    ["make", "serve", f"SERVE_ARGS=--port {port}"],
                    cwd=clone,
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                wait_for_api(url, serve, log)
            elif words[:3] == [".venv/bin/arena", "team", "create"]:
                created = subprocess.run(
                    words, cwd=clone, env=env, capture_output=True, text=True, check=True
                )
                token = created.stdout.strip().splitlines()[-1]
                assert token.startswith("arena_")
            elif words[0] == "curl":
                response = curl_as_httpx(words, env, url, clone)
                assert response.status_code == 202, response.text
                first = response.json()
                # An estimate from the first second: the cost model, with no history yet.
                assert first["estimate"] and "cost model" in first["estimate"]["summary"]
            else:
                pytest.fail(f"the first-hour block has a step this test does not know: {words}")
        assert serve is not None and env["ARENA_ADMIN_TOKEN"] == "change-me"

        page.add_init_script(WATCH)
        page.goto(f"{url}/submissions/{first['id']}")
        assert page.locator("#estimate").inner_text().startswith("expected to")
        wait_finished(page, first["id"])
        assert page.locator("#results-table tbody tr").count() == 4

        page.goto(url + "/submit")  # the second upload, by the form
        page.fill("#token", env["TOKEN"])
        page.select_option("#arch", "resnet20")
        page.set_input_files("#checkpoint", str(clone / "model.pth"))
        page.click("#submit-button")
        page.wait_for_url(re.compile(r"/submissions/\d+$"), timeout=300_000)  # after the model check
        second = int(page.url.rsplit("/", 1)[1])
        estimates = page.evaluate("window.__estimates")
        assert next(iter(estimates.values())).startswith("expected to"), estimates
        wait_finished(page, second)

        page.goto(url + "/")
        assert page.locator("#leaderboard tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.team)"
        ) == ["Team Ada"]
        page.screenshot(path=str(artifacts / "first-hour-board.png"), full_page=True)
        with page.expect_download() as download:
            page.click('a[href^="/export/leaderboard.csv"]')
        saved = tmp_path / "board.csv"
        download.value.save_as(saved)
        (row,) = csv.DictReader(saved.open())
        assert row["team"] == "Team Ada" and row["rank"] == "1"
    finally:
        if serve is not None and serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
