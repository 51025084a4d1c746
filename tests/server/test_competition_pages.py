"""The competition pages, in process, at moments the tests choose: the timeline before, during
and after the development phase, the description's Markdown rendered safely, the list on the
leaderboard, and the refusals."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.api.deps import clock
from server.main import create_app
from server.state import competitions
from server.state.competition_spec import CompetitionSpec
from server.state.config import get_settings
from server.state.db import session_scope
from server.web.competition_pages import time_left
from tests.server.test_competitions import bundle, sets  # noqa: F401 (a fixture)

START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
END = datetime(2027, 1, 24, 9, 0, tzinfo=UTC)
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class Clock:
    """A clock the tests set; the app reads it through the ``clock`` dependency."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def now(settings_env: dict[str, str]) -> Clock:
    return Clock(START - timedelta(days=1))


@pytest.fixture
def client(settings_env: dict[str, str], now: Clock) -> TestClient:
    app = create_app()
    app.dependency_overrides[clock] = now
    return TestClient(app)


def create(sets: Path, **changes: Any) -> None:  # noqa: F811
    with session_scope() as session:
        competitions.create_competition(
            session, CompetitionSpec.model_validate(bundle(**changes)), get_settings().home
        )


def text(html: str, element_id: str) -> str:
    """The text of the element with ``element_id``, tags removed and spaces collapsed."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:p|ol|div|section)>', html, re.S)
    assert match, element_id
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def test_time_left_reads_as_its_two_largest_units() -> None:
    assert time_left(timedelta(days=3, hours=4, minutes=5)) == "3 days 4 hours"
    assert time_left(timedelta(days=1, minutes=5)) == "1 day"
    assert time_left(timedelta(hours=1, minutes=1, seconds=9)) == "1 hour 1 minute"
    assert time_left(timedelta(seconds=42)) == "42 seconds"
    assert time_left(timedelta(0)) == "less than a second"


def test_before_the_start_the_page_counts_down_to_the_opening(client, sets, now) -> None:  # noqa: F811
    create(sets)
    now.now = START - timedelta(days=3, hours=4, minutes=30)
    page = client.get("/competitions/ml-class-2027")
    assert page.status_code == 200
    html = page.text
    assert "<h1>ML class 2027</h1>" in html
    status = text(html, "competition-status")
    assert status == "Not started: the Development phase opens at 2027-01-10 09:00 UTC."
    assert text(html, "next-deadline") == ("Development opens in 3 days 4 hours, at 2027-01-10 09:00 UTC.")
    countdown = '<time class="countdown" datetime="2027-01-10T09:00:00Z" data-countdown>'
    assert countdown + "3 days 4 hours</time>" in html
    assert '<time datetime="2027-01-10T09:00:00Z" data-local>2027-01-10 09:00 UTC</time>' in html
    assert re.findall(r'data-state="(\w+)"', html) == ["upcoming", "upcoming"]
    timeline = text(html, "timeline")
    assert "Development not started 2027-01-10 09:00 UTC → 2027-01-24 09:00 UTC" in timeline
    assert "Final not started from the development end, 2027-01-24 09:00 UTC" in timeline
    assert "Final results revealed when the organiser publishes them." in timeline
    assert 'id="upload-link"' not in html  # no uploads before the start
    assert '<script src="/static/competition.js" defer></script>' in html
    assert client.get("/static/competition.js").status_code == 200


def test_during_development_the_page_counts_down_to_its_end(client, sets, now) -> None:  # noqa: F811
    create(sets, reveal_at="2027-02-01T12:00:00Z")
    now.now = START  # a phase is open from its start, inclusive
    html = client.get("/competitions/ml-class-2027").text
    assert text(html, "competition-status") == "The Development phase is open until 2027-01-24 09:00 UTC."
    assert "Development closes in 14 days" in text(html, "next-deadline")
    assert re.findall(r'data-state="(\w+)"', html) == ["open", "upcoming"]
    assert "Final results revealed at 2027-02-01 12:00 UTC." in text(html, "timeline")
    assert text(html, "upload-link") == "Upload a checkpoint to the Development phase."
    assert '<a href="/submit?competition=ml-class-2027">Upload a checkpoint</a>' in html
    now.now = END - timedelta(seconds=1)
    html = client.get("/competitions/ml-class-2027").text
    assert "Development closes in 1 second" in text(html, "next-deadline")


def test_after_development_the_final_phase_is_open(client, sets, now) -> None:  # noqa: F811
    create(sets, reveal_at="2027-02-01T12:00:00Z")
    now.now = END  # the development end is exclusive: the final phase has begun
    html = client.get("/competitions/ml-class-2027").text
    assert text(html, "competition-status").startswith("The Final phase is open")
    assert re.findall(r'data-state="(\w+)"', html) == ["closed", "open"]
    assert "Results revealed in 8 days 3 hours" in text(html, "next-deadline")
    assert 'id="upload-link"' not in html  # uploads closed with the development phase
    now.now = datetime(2027, 3, 1, tzinfo=UTC)
    html = client.get("/competitions/ml-class-2027").text
    assert 'id="next-deadline"' not in html


def test_without_a_final_phase_the_competition_closes(client, sets, now) -> None:  # noqa: F811
    spec = bundle()
    spec["phases"] = spec["phases"][:1]
    with session_scope() as session:
        competitions.create_competition(session, CompetitionSpec.model_validate(spec), get_settings().home)
    now.now = END + timedelta(days=1)
    html = client.get("/competitions/ml-class-2027").text
    assert text(html, "competition-status") == "Closed."
    assert re.findall(r'data-state="(\w+)"', html) == ["closed"]
    assert 'id="next-deadline"' not in html


def test_the_default_competition_is_always_open_and_links_the_board(client) -> None:
    html = client.get("/competitions/default").text
    assert "<h1>Robustness Arena</h1>" in html
    assert text(html, "competition-status") == "The development phase is open, with no end date."
    assert 'id="next-deadline"' not in html
    assert "always open, no end date" in text(html, "timeline")
    assert '<a href="/">The leaderboard</a>' in html
    assert '<a href="/submit">Upload a checkpoint</a>' in html
    assert "Score = " in text(html, "score-rule")
    assert 'id="description"' not in html  # no description, no empty box
    assert "Final selections" not in html  # no final phase


def test_other_competitions_link_their_development_board(client, sets) -> None:  # noqa: F811
    create(sets)
    html = client.get("/competitions/ml-class-2027").text
    assert text(html, "board-link") == (
        "The Development board ranks every team's best finished submission on the public evaluation set."
    )
    assert 'href="/?competition=ml-class-2027&amp;phase=development"' in html
    assert 'id="final-results"' not in html  # nothing of the final phase before the reveal
    assert "<code>smoke</code>" in html and "2 per team" in html
    assert "natural:1,pgd_linf:1" in text(html, "score-rule")


def test_the_description_is_markdown_without_html_or_script_links(client, sets) -> None:  # noqa: F811
    description = (
        "# Robust CIFAR-10\n\nBeat **PGD**. See [the rules](https://example.org/rules).\n\n"
        "<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[click](javascript:alert(1)) [also](JAVASCRIPT:alert(2)) [data](data:text/html,x)\n\n"
        "![tracker](https://example.org/pixel.png)"
    )
    create(sets, description=description, title="Robust <b>CIFAR</b> & co")
    html = client.get("/competitions/ml-class-2027").text
    assert "<h1>Robust &lt;b&gt;CIFAR&lt;/b&gt; &amp; co</h1>" in html
    body = html[html.index('id="description"') :]
    body = body[: body.index("</div>")]
    assert "<h2>Robust CIFAR-10</h2>" in body  # under the page's title and "<strong>PGD</strong>" in body
    assert '<a href="https://example.org/rules" rel="nofollow noopener noreferrer">the rules</a>' in body
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "<script" not in body and "<img" not in body
    assert "[click](javascript:alert(1))" in body  # shown as text, not a link
    assert 'href="javascript' not in body.lower() and 'href="data' not in body
    assert "pixel.png" not in re.findall(r'src="([^"]*)"', html)  # images are not loaded
    assert html.count("<script") == 1  # the page's own script only


def test_an_unknown_competition_is_a_404_page_for_browsers_and_json_for_the_api(client) -> None:
    page = client.get("/competitions/nope", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No competition &#39;nope&#39;." in page.text and 'href="/submit"' in page.text
    assert client.get("/competitions/nope").json()["detail"] == "No competition 'nope'."
    assert client.get("/competitions/..%2Fetc", headers=HTML).status_code == 404
    api = client.get("/api/competitions/nope", headers=HTML)
    assert api.status_code == 404 and api.json()["detail"] == "No competition 'nope'."


@pytest.mark.parametrize("path", ["/competitions/default", "/competitions", "/competitions/nope"])
def test_head_answers_the_pages_headers_without_a_body(client, path) -> None:
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""


def test_the_leaderboard_is_unchanged_while_default_is_the_only_competition(client, now) -> None:
    html = client.get("/").text
    assert 'id="competitions"' not in html
    assert html.index("<h1>Leaderboard</h1>\n") < html.index('<form class="board-controls"')
    assert html.split("<h1>Leaderboard</h1>\n")[1].startswith('\n<form class="board-controls"')


def test_the_leaderboard_lists_the_competitions_when_there_are_more(client, sets, now) -> None:  # noqa: F811
    before = client.get("/").text
    create(sets)
    now.now = START + timedelta(days=10, hours=5)
    html = client.get("/").text
    script = '<script src="/static/competition.js" defer></script>\n'
    listing_html = html[html.index('<section id="competitions"') : html.index(script) + len(script)]
    assert html.replace(listing_html, "") == before  # the board itself is as it was
    listing = text(html, "competitions")
    assert "Robustness Arena development phase open" in listing
    assert "ML class 2027 Development phase open Development closes in 3 days 19 hours" in listing
    assert '<a href="/competitions/ml-class-2027">ML class 2027</a>' in html
    assert html.index('id="competitions"') < html.index('id="leaderboard"')
    now.now = START - timedelta(hours=2)  # the list follows the clock, not the cached page
    assert "Development opens in 2 hours" in text(client.get("/").text, "competitions")
    listed = client.get("/competitions").text
    assert '<a href="/competitions/ml-class-2027">ML class 2027</a>' in listed
    assert '<a href="/competitions/default">Robustness Arena</a>' in listed
    assert listed.count("/static/competition.js") == 1 and html.count("/static/competition.js") == 1


@pytest.mark.parametrize("path", ["/competitions/default", "/competitions/ml-class-2027", "/competitions"])
def test_competition_pages_load_nothing_from_other_sites(client, sets, path) -> None:  # noqa: F811
    create(sets)
    html = client.get(path).text
    for url in re.findall(r'src="([^"]*)"', html):
        assert url.startswith("/static/") and client.get(url).status_code == 200, url
    assert "style=" not in html and "onclick" not in html and "<script>" not in html


def test_every_time_on_the_page_is_utc_in_a_machine_readable_tag(client, sets, now) -> None:  # noqa: F811
    create(sets, reveal_at="2027-02-01T12:00:00+02:00")
    html = client.get("/competitions/ml-class-2027").text
    stamps = re.findall(r'<time[^>]*datetime="([^"]+)"[^>]*>([^<]*)</time>', html)
    assert stamps and all(iso.endswith("Z") for iso, _ in stamps)
    shown = {iso: label for iso, label in stamps if "data-countdown" not in label}
    assert shown["2027-02-01T10:00:00Z"] == "2027-02-01 10:00 UTC"
