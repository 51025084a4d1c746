"""The path a team waits on: upload → stored row → queue → worker → sandboxed child → result.

    .venv/bin/python bench/worker_path.py [--images 256] [--suite class] [--runs 3]

Starts its own ``arena serve`` (API and one worker; embedded SQLite and broker, or
PostgreSQL/Redis when ARENA_DATABASE_URL / ARENA_BROKER_URL are set) in a temporary home whose
evaluation set is the first ``--images`` images of the class split, uploads the pretrained
ResNet-20 checkpoint with its ImageNet mean/std through the API and polls it as a team would
(every 50 ms) until the result is served. The stages come from the worker's own timeline
(its log line "evaluation N timeline", seconds from its claim to the child's start, each
stage's first message, the child's end and the result stored); the time from the 202 to the
claim is the queue (the embedded broker polls ten times a second; Redis delivers at once).
"Outside the attack stages" is the whole of 202 → result served but fgsm, pgd_linf, pgd_l2,
smoothing and autoattack. Each run uploads as a new team, so no earlier result is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.class_project import class_split  # noqa: E402
from bench.fixtures import DATA, MEAN, STD, table  # noqa: E402
from tests.conftest import ADMIN_TOKEN  # noqa: E402
from tests.processes import Platform  # noqa: E402

ATTACK_STAGES = ("fgsm", "pgd_linf", "pgd_l2", "smoothing", "autoattack")
STAGES = ("normalisation", "natural", *ATTACK_STAGES)
TIMELINE = re.compile(r"evaluation \d+ timeline \(s from its claim\): (\{.*\})")
#: The row of each timeline event: what happened between the previous event and this one.
PHASE_NAMES = {
    "child starting": "claim → opening the files",
    "child forked": "starting the child (a fork)",
    "child started (fresh interpreter)": "starting the child (fresh interpreter)",
    "finished (stored)": "storing the result",
}
CHECKPOINT = DATA / "pretrained" / "resnet20-12fca82f.th"


def follow(platform: Platform, token: str) -> tuple[float, float]:
    """Upload once; (seconds the upload took to answer, seconds from the 202 to the result)."""
    start = time.perf_counter()
    with CHECKPOINT.open("rb") as handle:
        response = httpx.post(
            platform.url + "/api/submissions",
            headers={"Authorization": f"Bearer {token}"},
            data={"arch": "resnet20", "mean": ",".join(map(str, MEAN)), "std": ",".join(map(str, STD))},
            files={"checkpoint": (CHECKPOINT.name, handle)},
            timeout=180,
        )
    accepted = time.perf_counter()
    if response.status_code != 202:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text}")
    submission = response.json()["id"]
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while True:
            body = client.get(f"{platform.url}/api/submissions/{submission}").json()
            if body["status"] in ("finished", "failed", "cancelled"):
                if body["status"] != "finished":
                    raise RuntimeError(f"evaluation {body['status']}: {body.get('error')}")
                return accepted - start, time.perf_counter() - accepted
            time.sleep(0.05)


def timelines(platform: Platform, count: int) -> list[dict[str, float]]:
    """The worker's first ``count`` evaluation timelines (logged just after the result)."""
    for _ in range(200):
        found = [json.loads(m) for m in TIMELINE.findall(platform.api.log.read_text(errors="replace"))]
        if len(found) >= count:
            return found[:count]
        time.sleep(0.05)
    raise RuntimeError("the worker logged no timeline for an evaluation")


def phases(served: float, timeline: dict[str, float]) -> dict[str, float]:
    """Seconds per phase from the 202 to the result served (``served`` seconds): the queue,
    then each interval between the worker's events, a stage lasting until the next event."""
    events = [("claimed", 0.0), *sorted(timeline.items(), key=lambda item: item[1])]
    out = {"queue (202 → claimed by the worker)": max(0.0, served - events[-1][1])}
    for (event, at), (following, until) in zip(events, events[1:], strict=False):
        if event in STAGES:
            name = event
        elif following in STAGES:
            name = "child start-up → first stage (imports, loading)"
        else:
            name = PHASE_NAMES.get(following, following)
        out[name] = out.get(name, 0.0) + until - at
    return out


def main() -> None:
    """Start the platform, upload ``--runs`` times, print one column of seconds per run.

    Long because it is the benchmark read top to bottom: the platform's settings, the runs,
    then the table and the sums.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="first N class-split images")
    parser.add_argument("--suite", default="class")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--child-start", choices=("fork", "fresh"), default="fork", help="ARENA_CHILD_START of the worker"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arena-path-") as scratch:
        root = Path(scratch)
        env = {
            "ARENA_HOME": str(root / "home"),
            "ARENA_EVAL_SET": str(class_split()),
            "ARENA_EVAL_LIMIT": str(args.images),
            "ARENA_SUITE": args.suite,
            "ARENA_ADMIN_TOKEN": ADMIN_TOKEN,
            "ARENA_DEVICE": "cpu",
            "ARENA_CHILD_START": args.child_start,
        }
        env |= {
            key: os.environ[key] for key in ("ARENA_DATABASE_URL", "ARENA_BROKER_URL") if key in os.environ
        }
        platform = Platform(env, root)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")  # team names stay new in a kept database
        try:
            runs = []
            for run in range(args.runs):
                upload, served = follow(platform, platform.create_team(f"Run {run + 1} of {stamp}"))
                runs.append((upload, served))
                print(f"run {run + 1}: {served:.2f} s from the 202 to the result", flush=True)
            worker = timelines(platform, len(runs))
        except BaseException:
            print(platform.logs_text(), file=sys.stderr)
            raise
        finally:
            platform.stop()
    rows = [
        {"upload answered (202)": upload, **phases(served, timeline)}
        for (upload, served), timeline in zip(runs, worker, strict=True)
    ]
    totals = [served for _, served in runs]
    outside = [
        served - sum(s for name, s in row.items() if name in ATTACK_STAGES)
        for served, row in zip(totals, rows, strict=True)
    ]
    names = list(dict.fromkeys(name for row in rows for name in row))
    lines = [[name, *(f"{row[name]:.2f}" if name in row else "—" for row in rows)] for name in names]
    lines.append(["202 → result served (total)", *(f"{s:.2f}" for s in totals)])
    lines.append(["outside the attack stages", *(f"{s:.2f}" for s in outside)])
    print(f"\n{args.suite} suite, {args.images} class-split images, pretrained ResNet-20 through the API\n")
    print(table(["phase", *(f"run {i + 1} s" for i in range(len(runs)))], lines))
    print(
        f"\nmedians: 202 → result {statistics.median(totals):.2f} s, outside the attack stages "
        f"{statistics.median(outside):.2f} s (ARENA_CHILD_START={env.get('ARENA_CHILD_START', 'fork')})"
    )


if __name__ == "__main__":
    main()
