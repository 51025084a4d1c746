"""The path a team waits on: upload → stored row → queue → worker → sandboxed child → result.

    .venv/bin/python bench/worker_path.py [--images 256] [--suite class] [--runs 2]

Starts its own ``arena serve`` (API and one worker; embedded SQLite and broker, or
PostgreSQL/Redis when ARENA_DATABASE_URL / ARENA_BROKER_URL are set) in a temporary home whose
evaluation set is the first ``--images`` images of the class split, uploads the pretrained
ResNet-20 checkpoint with its ImageNet mean/std through the API, and follows the evaluation
from the API as a team would (every 20 ms), noting when each stage first shows. Printed per run:
the upload's answer, then the seconds from the 202 to the first stage (the worker taking it,
the child's start-up, imports and loading), then each stage until the next one shows (the
last until the result is served); "outside the attack stages" is all of it but fgsm,
pgd_linf, pgd_l2 and certification. Each run uploads as a new team, so no earlier result is reused.
"""

from __future__ import annotations

import argparse
import os
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
CHECKPOINT = DATA / "pretrained" / "resnet20-12fca82f.th"


def follow(platform: Platform, token: str) -> tuple[float, list[tuple[str, float]]]:
    """Upload once; (seconds the upload took to answer, [(stage, seconds since the 202)])."""
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
    seen: list[tuple[str, float]] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while True:
            body = client.get(f"{platform.url}/api/submissions/{submission}").json()
            now = time.perf_counter() - accepted
            stage = (body.get("progress") or {}).get("stage") if body["status"] == "running" else None
            if stage and (not seen or seen[-1][0] != stage):
                seen.append((stage, now))
            if body["status"] in ("finished", "failed", "cancelled"):
                if body["status"] != "finished":
                    raise RuntimeError(f"evaluation {body['status']}: {body.get('error')}")
                seen.append(("result served", now))
                return accepted - start, seen
            time.sleep(0.02)


def phases(seen: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds per phase: waiting for the first stage, then each stage until the next shows
    (the last one until the result is served, so it includes storing the result)."""
    out = {"202 → first stage (worker, child start-up, loading)": seen[0][1]}
    for (stage, at), (_, until) in zip(seen, seen[1:], strict=False):
        out[stage] = until - at
    return out


def main() -> None:
    """Start the platform, upload ``--runs`` times, print one column of seconds per run.

    Long because it is the benchmark read top to bottom: the platform's settings, the runs,
    then the table and the sums.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="first N class-split images")
    parser.add_argument("--suite", default="class")
    parser.add_argument("--runs", type=int, default=2)
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
        }
        env |= {
            key: os.environ[key] for key in ("ARENA_DATABASE_URL", "ARENA_BROKER_URL") if key in os.environ
        }
        platform = Platform(env, root)
        try:
            runs = []
            for run in range(args.runs):
                upload, seen = follow(platform, platform.create_team(f"Run {run + 1}"))
                runs.append((upload, seen))
                print(f"run {run + 1}: {seen[-1][1]:.2f} s from the 202 to the result", flush=True)
        except BaseException:
            print(platform.logs_text(), file=sys.stderr)
            raise
        finally:
            platform.stop()
    timelines = [{"upload answered (202)": upload, **phases(seen)} for upload, seen in runs]
    names = list(dict.fromkeys(name for timeline in timelines for name in timeline))
    outside = [
        seen[-1][1] - sum(s for name, s in timeline.items() if name in ATTACK_STAGES)
        for (_, seen), timeline in zip(runs, timelines, strict=True)
    ]
    totals = [seen[-1][1] for _, seen in runs]
    # A stage shorter than the polling interval may not show in every run.
    lines = [[name, *(f"{t[name]:.2f}" if name in t else "—" for t in timelines)] for name in names]
    lines.append(["202 → result served (total)", *(f"{s:.2f}" for s in totals)])
    lines.append(["outside the attack stages", *(f"{s:.2f}" for s in outside)])
    print(f"\n{args.suite} suite, {args.images} class-split images, pretrained ResNet-20 through the API\n")
    print(table(["phase", *(f"run {i + 1} s" for i in range(len(runs)))], lines))
    print(
        f"\nmedians: 202 → result {statistics.median(totals):.2f} s, outside the attack stages "
        f"{statistics.median(outside):.2f} s (the last stage's row includes storing the result)"
    )


if __name__ == "__main__":
    main()
