"""Bounded load test on loopback: leaderboard readers and uploaders while an evaluation runs.

    .venv/bin/python bench/load.py [--readers 100] [--uploaders 20] [--seconds 30]

Starts its own ``arena serve`` (embedded SQLite + SQLAlchemy broker, or PostgreSQL/Redis when
ARENA_DATABASE_URL / ARENA_BROKER_URL are set) on a free 127.0.0.1 port in a temporary home,
queues one evaluation, then drives the API for a fixed time and stops by itself. Prints
throughput, p50/p99 latency and the error count (5xx or transport errors) per request kind.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ADMIN_TOKEN, make_checkpoint, make_eval_set  # noqa: E402
from tests.processes import Platform  # noqa: E402


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.codes: dict[int, int] = {}
        self.errors = 0

    def record(self, started: float, code: int | None) -> None:
        self.latencies.append(time.perf_counter() - started)
        if code is None or code >= 500:
            self.errors += 1
        if code is not None:
            self.codes[code] = self.codes.get(code, 0) + 1

    def row(self, name: str, seconds: float) -> str:
        lat = sorted(self.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        return (
            f"{name:<12} {len(self.latencies):>8} {len(self.latencies) / seconds:>9.1f} "
            f"{1000 * statistics.median(lat):>9.1f} {1000 * p99:>9.1f} {self.errors:>7}  "
            f"{dict(sorted(self.codes.items()))}"
        )


async def reader(client: httpx.AsyncClient, url: str, stop: float, tally: Tally) -> None:
    while time.perf_counter() < stop:
        started = time.perf_counter()
        try:
            response = await client.get(url + "/api/leaderboard")
            tally.record(started, response.status_code)
        except httpx.HTTPError:
            tally.record(started, None)


async def uploader(
    client: httpx.AsyncClient, url: str, token: str, payload: bytes, stop: float, tally: Tally
) -> None:
    while time.perf_counter() < stop:
        started = time.perf_counter()
        try:
            response = await client.post(
                url + "/api/submissions",
                headers={"Authorization": f"Bearer {token}"},
                data={"arch": "lenet"},
                files={"checkpoint": ("m.pth", payload)},
                timeout=120,
            )
            tally.record(started, response.status_code)
        except httpx.HTTPError:
            tally.record(started, None)
        await asyncio.sleep(0.5)


async def drive(
    platform: Platform, tokens: list[str], payload: bytes, readers: int, seconds: float
) -> tuple[Tally, Tally, float]:
    reads, uploads = Tally(), Tally()
    limits = httpx.Limits(max_connections=readers + len(tokens) + 10)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        began = time.perf_counter()
        stop = began + seconds
        await asyncio.gather(
            *[reader(client, platform.url, stop, reads) for _ in range(readers)],
            *[uploader(client, platform.url, t, payload, stop, uploads) for t in tokens],
        )
        elapsed = time.perf_counter() - began
    return reads, uploads, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--uploaders", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory(prefix="arena-load-") as scratch:
        root = Path(scratch)
        env = {
            "ARENA_HOME": str(root / "home"),
            "ARENA_EVAL_SET": str(make_eval_set(root / "eval.npz", n=256)),
            "ARENA_SUITE": "class",
            "ARENA_ADMIN_TOKEN": ADMIN_TOKEN,
            "ARENA_DEVICE": "cpu",
            "ARENA_SUBMISSIONS_PER_DAY": "1000",
        }
        for key in ("ARENA_DATABASE_URL", "ARENA_BROKER_URL"):
            if key in os.environ:
                env[key] = os.environ[key]
        platform = Platform(env, root)
        try:
            checkpoint = make_checkpoint(root / "m.pth")
            runner = platform.create_team("Evaluated")
            first = platform.submit(runner, checkpoint)
            assert first.status_code == 202, first.text
            platform.wait_for(first.json()["id"], runner, statuses={"running"})
            tokens = [platform.create_team(f"Uploader {i}") for i in range(args.uploaders)]
            reads, uploads, elapsed = asyncio.run(
                drive(platform, tokens, checkpoint.read_bytes(), args.readers, args.seconds)
            )
            status = httpx.get(f"{platform.url}/api/submissions/{first.json()['id']}").json()
            logs = platform.logs_text()
        except BaseException:
            print(platform.logs_text(), file=sys.stderr)
            raise
        finally:
            platform.stop()
    backend = "PostgreSQL/Redis" if "ARENA_DATABASE_URL" in env else "SQLite/SQLAlchemy broker"
    print(
        f"# {args.readers} readers + {args.uploaders} uploaders for {elapsed:.0f} s on {backend};"
        f" evaluation running meanwhile (status at the end: {status['status']})"
    )
    print(f"{'kind':<12} {'requests':>8} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}  codes")
    print(reads.row("leaderboard", elapsed))
    print(uploads.row("upload", elapsed))
    if reads.errors or uploads.errors:
        print(logs[-6000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
