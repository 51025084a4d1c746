"""When results will come: exact figures of the queue model, and what the API and page say."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from models.architectures.catalog import CATALOG
from server.main import create_app
from server.state.db import session_scope
from server.state.estimates import (
    NO_WORKER,
    History,
    Kind,
    Typical,
    about,
    for_queued,
    for_running,
    without_worker,
)
from server.state.tables import Status, utcnow
from server.state.workers import forget_workers, record_throughput, record_worker
from tests.server.test_pages import add_submission, team
from worker.engine.cost import suite_passes
from worker.engine.suites import SUITES

LENET = Kind("lenet", certified=False)
WRN = Kind("wrn-34-10", certified=False)


def test_no_history_no_estimate():
    empty = History([])
    assert for_queued(history=empty, kind=LENET, ahead=[LENET], running=[]) is None
    assert for_running(history=empty, kind=LENET, elapsed=10.0) is None


def test_queue_is_served_first_come_first_served_by_the_busy_workers():
    history = History([(LENET, 100.0), (LENET, 300.0), (LENET, 200.0)])  # median 200 s

    def queued(ahead: int, elapsed: list[float]):
        return for_queued(
            history=history,
            kind=LENET,
            ahead=[LENET] * ahead,
            running=[(LENET, e) for e in elapsed],
        )

    one = queued(0, [50.0])
    assert (one.typical_seconds, one.based_on) == (200.0, 3)
    assert (one.start_in_seconds, one.finish_in_seconds) == (150.0, 350.0)
    third = queued(2, [50.0])
    assert (third.start_in_seconds, third.finish_in_seconds) == (550.0, 750.0)
    # Two workers free in 150 s and 50 s: the one ahead takes the second (until 250 s),
    # this one the first.
    two = queued(1, [50.0, 150.0])
    assert (two.start_in_seconds, two.finish_in_seconds) == (150.0, 350.0)
    overdue = queued(0, [900.0])
    assert overdue.start_in_seconds == 0.0 and overdue.summary.startswith("expected to start now")


def test_each_kind_of_model_has_its_own_typical_time_once_it_has_enough_runs():
    certified = Kind("lenet", certified=True)
    history = History(
        [(WRN, 1000.0), (LENET, 10.0), (certified, 400.0)] * 3 + [(Kind("resnet20", False), 70.0)]
    )
    behind_a_wrn = for_queued(history=history, kind=LENET, ahead=[WRN], running=[])
    assert (behind_a_wrn.start_in_seconds, behind_a_wrn.finish_in_seconds) == (1000.0, 1010.0)
    assert behind_a_wrn.summary.endswith(
        "(a typical lenet evaluation takes 10 s: the median of the last 3 of this suite)"
    )
    with_sigma = for_queued(history=history, kind=certified, ahead=[], running=[(WRN, 100.0)])
    assert (with_sigma.start_in_seconds, with_sigma.finish_in_seconds) == (900.0, 1300.0)
    assert "a typical lenet evaluation with certification takes 7 min" in with_sigma.summary
    # One resnet20 run is not enough: the suite's median of all 10 (400 s) stands in.
    rare = for_running(history=history, kind=Kind("resnet20", False), elapsed=20.0)
    assert (rare.typical_seconds, rare.based_on, rare.finish_in_seconds) == (400.0, 10, 380.0)
    assert "a typical evaluation takes 7 min: the median of the last 10 evaluations" in rare.summary


def test_running_submission_counts_down_then_admits_it_is_late():
    history = History([(LENET, 240.0)])
    on_time = for_running(history=history, kind=LENET, elapsed=60.0)
    assert on_time.finish_in_seconds == 180.0
    assert on_time.summary == (
        "expected to finish in about 3 min (a typical evaluation takes 4 min: the last one of this suite)"
    )
    late = for_running(history=history, kind=LENET, elapsed=300.0)
    assert late.finish_in_seconds is None and late.summary.startswith("taking longer than usual")


@pytest.mark.parametrize(("seconds", "words"), [(0.2, "1 s"), (40, "40 s"), (720, "12 min"), (5400, "1.5 h")])
def test_durations_in_words(seconds, words):
    assert about(seconds) == words


def test_api_and_page_show_the_estimate_of_a_queued_and_a_running_submission(settings_env):
    now = utcnow()
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        for minutes in (4, 6, 5):  # typical: 5 min
            add_submission(
                session,
                ada,
                started_at=now - timedelta(minutes=30),
                finished_at=now - timedelta(minutes=30 - minutes),
            )
        running = add_submission(
            session,
            ada,
            status=Status.RUNNING,
            started_at=now - timedelta(minutes=2),
            lease_owner="worker-1",
            lease_expires=now + timedelta(seconds=60),
        )
        queued = add_submission(session, bob, status=Status.QUEUED)
        record_worker(session=session, worker_id="worker-1", hostname="gpu-1", pid=7)
    client = TestClient(create_app())

    waiting = client.get(f"/api/submissions/{queued}").json()
    assert waiting["queue_position"] == 1
    estimate = waiting["estimate"]
    assert estimate["typical_seconds"] == 300.0 and estimate["based_on"] == 3
    assert estimate["start_in_seconds"] == pytest.approx(180.0, abs=5)
    assert estimate["finish_in_seconds"] == pytest.approx(480.0, abs=5)
    assert estimate["summary"].startswith("expected to start in about 3 min and to finish in about 8 min")

    under_way = client.get(f"/api/submissions/{running}").json()["estimate"]
    assert under_way["start_in_seconds"] is None
    assert under_way["finish_in_seconds"] == pytest.approx(180.0, abs=5)

    page = client.get(f"/submissions/{queued}").text
    assert "expected to start in about 3 min" in page
    assert "a typical lenet evaluation takes 5 min: the median of the last 3 of this suite" in page
    done = client.get("/api/submissions/1").json()
    assert done["status"] == "finished" and done["estimate"] is None


def test_without_a_live_worker_no_start_is_promised(settings_env):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        now = utcnow()
        add_submission(
            session, ada, started_at=now - timedelta(minutes=9), finished_at=now - timedelta(minutes=4)
        )
        queued = add_submission(session, ada, status=Status.QUEUED)
        record_worker(session=session, worker_id="gone", hostname="gpu-1", pid=7)
        forget_workers(session=session, worker_id="gone")
    client = TestClient(create_app())
    waiting = client.get(f"/api/submissions/{queued}").json()
    assert waiting["waiting_for_worker"] is True and waiting["queue_position"] == 1
    assert waiting["estimate"]["summary"] == NO_WORKER
    assert waiting["estimate"]["start_in_seconds"] is None
    assert NO_WORKER in client.get(f"/submissions/{queued}").text
    assert "(no worker is running)" in client.get("/teams/Ada").text

    with session_scope() as session:
        record_worker(session=session, worker_id="back", hostname="gpu-1", pid=8)
    waiting = client.get(f"/api/submissions/{queued}").json()
    assert waiting["waiting_for_worker"] is False
    assert waiting["estimate"]["summary"].startswith("expected to start now")


def test_without_a_worker_or_history_the_estimate_still_says_so():
    estimate = without_worker(history=History([]), kind=LENET)
    assert (estimate.summary, estimate.typical_seconds, estimate.based_on) == (NO_WORKER, None, 0)


def test_cost_model_stands_in_for_missing_history():
    modelled = Typical(900.0, 0, LENET, basis="at most 15 min by the cost model", bound=True)
    history = History([(WRN, 60.0)] * 3, {LENET: modelled})
    queued = for_queued(history=history, kind=LENET, ahead=[WRN], running=[])
    assert (queued.start_in_seconds, queued.finish_in_seconds) == (60.0, 960.0)
    assert queued.summary == (
        "expected to start in about 60 s and to finish within about 16 min (at most 15 min by the cost model)"
    )
    late = for_running(history=history, kind=LENET, elapsed=1000.0)
    assert late.summary.startswith("taking longer than the cost model's bound")
    # Three runs of its own kind outweigh the model.
    own = History([(LENET, 30.0)] * 3, {LENET: modelled})
    assert for_running(history=own, kind=LENET, elapsed=0.0).typical_seconds == 30.0


@pytest.fixture
def live_worker(settings_env):
    """A worker alive now: without one the estimates promise no start."""
    with session_scope() as session:
        record_worker(session=session, worker_id="w1", hostname="cpu-1", pid=1)


def _timed(arch: str, forward: float, backward: float) -> None:
    with session_scope() as session:
        record_throughput(session=session, arch=arch, device="cpu", forward=forward, backward=backward)


def test_first_submission_of_a_platform_gets_the_cost_models_figure(settings_env, live_worker):
    _timed("resnet20", forward=2000.0, backward=500.0)
    _timed("resnet20", forward=1000.0, backward=250.0)  # a later timing replaces the first
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        plain = add_submission(session, ada, status=Status.QUEUED, arch="resnet20")
        certified = add_submission(session, bob, status=Status.QUEUED, arch="resnet20", sigma=0.25)
        wider = add_submission(session, bob, status=Status.QUEUED, arch="resnet56")
    client = TestClient(create_app())
    smoke = SUITES["smoke"]

    def seconds(passes, scale=1.0):
        return passes.forward / (1000.0 * scale) + passes.backward / (250.0 * scale)

    first = client.get(f"/api/submissions/{plain}").json()["estimate"]
    alone = seconds(suite_passes(smoke, 64, certified=False))
    assert first["typical_seconds"] == pytest.approx(alone)
    assert first["start_in_seconds"] == 0.0
    assert "by the cost model" in first["summary"] and "timed on cpu" in first["summary"]
    assert "attacks that succeed early take less" in first["summary"]

    second = client.get(f"/api/submissions/{certified}").json()["estimate"]
    with_sigma = seconds(suite_passes(smoke, 64, certified=True))
    assert with_sigma - alone == pytest.approx(16 * (64 + 1000) / 1000.0)  # every noisy copy
    assert second["typical_seconds"] == pytest.approx(with_sigma)
    assert second["start_in_seconds"] == pytest.approx(alone)  # behind the first, one worker

    # ResNet-56, never timed: ResNet-20's rate scaled by their FLOPs.
    scale = CATALOG["resnet20"].flops / CATALOG["resnet56"].flops
    third = client.get(f"/api/submissions/{wider}").json()["estimate"]
    assert third["typical_seconds"] == pytest.approx(seconds(suite_passes(smoke, 64, certified=False), scale))
    assert "scaled by FLOPs from resnet20 timed on cpu" in third["summary"]


def test_no_timing_and_no_history_still_means_no_estimate(settings_env, live_worker):
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        queued = add_submission(session, ada, status=Status.QUEUED, arch="resnet20")
    assert TestClient(create_app()).get(f"/api/submissions/{queued}").json()["estimate"] is None


def test_finished_evaluations_of_other_kinds_calibrate_the_cost_model(settings_env, live_worker):
    _timed("resnet20", forward=1000.0, backward=250.0)
    smoke = SUITES["smoke"]
    plain = suite_passes(smoke, 64, certified=False)
    model_seconds = plain.forward / 1000.0 + plain.backward / 250.0
    now = utcnow()
    with session_scope() as session:
        ada, _ = team(session, "Ada")
        bob, _ = team(session, "Bob")
        # Two ResNet-20 runs took a tenth and a fifth of their bound: median ratio 0.15.
        for share in (0.1, 0.2):
            add_submission(
                session,
                ada,
                arch="resnet20",
                started_at=now - timedelta(hours=1),
                finished_at=now - timedelta(hours=1) + timedelta(seconds=share * model_seconds),
            )
        wider = add_submission(session, bob, status=Status.QUEUED, arch="resnet56")
    estimate = TestClient(create_app()).get(f"/api/submissions/{wider}").json()["estimate"]
    scale = CATALOG["resnet20"].flops / CATALOG["resnet56"].flops
    resnet56 = plain.forward / (1000.0 * scale) + plain.backward / (250.0 * scale)
    assert estimate["typical_seconds"] == pytest.approx(0.15 * resnet56, rel=1e-3)
    assert estimate["based_on"] == 2
    assert "times 0.15, the median ratio of the last 2 evaluations" in estimate["summary"]
    assert "finish in about" in estimate["summary"]  # a calibrated figure, not a bound
