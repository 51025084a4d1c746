"""Leaderboard read throughput and latency with 10 000 submissions in the database.

    .venv/bin/python bench/api.py [--submissions 10000] [--teams 40] [--seconds 15]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Fills a fresh database (a temporary SQLite file, or a new PostgreSQL database created next
to the given URL and dropped afterwards) with teams and finished submissions, starts
``arena serve --no-worker`` on a free loopback port, and reads ``/api/leaderboard`` from 32
concurrent clients for a fixed time. Prints reads per second, p50 and p99 latency and errors.
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ADMIN_TOKEN  # noqa: E402
from tests.processes import Platform  # noqa: E402


def fill(url: str, submissions: int, teams: int) -> None:
    os.environ["ARENA_DATABASE_URL"] = url
    from server.config import get_settings

    get_settings.cache_clear()
    from server.db import session_scope
    from server.migrate import upgrade
    from server.security import hash_token
    from server.tables import Result, Status, Submission, Team, utcnow

    upgrade(url)
    rng = random.Random(0)
    now = utcnow()
    with session_scope() as session:
        team_rows = [Team(name=f"Team {i:02d}", token_hash=hash_token(f"t{i}")) for i in range(teams)]
        session.add_all(team_rows)
        session.flush()
        for i in range(submissions):
            submission = Submission(
                team_id=team_rows[i % teams].id, arch="resnet20", stored_name=f"{i}.pth",
                sha256="0" * 64, size_bytes=1, suite="class", status=Status.FINISHED,
                created_at=now - timedelta(minutes=submissions - i),
            )
            session.add(submission)
            if i % 500 == 499:
                session.flush()
        session.flush()
        for submission in session.query(Submission).all():
            natural = rng.uniform(0.5, 0.95)
            linf, l2 = natural * rng.uniform(0, 0.6), natural * rng.uniform(0, 0.7)
            values = {"natural": natural, "fgsm": linf * 1.1, "pgd_linf": linf, "pgd_l2": l2}
            session.add(Result(
                submission_id=submission.id, suite="class", suite_version="1",
                metrics={k: {"accuracy": v, "ci95": [v - 0.03, v + 0.03], "n": 1024}
                         for k, v in values.items()},
                **values,
            ))


async def read(url: str, seconds: float, clients: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=30) as client:
        stop = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                try:
                    response = await client.get(url + "/api/leaderboard")
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*[loop() for _ in range(clients)])
        return latencies, errors, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="PostgreSQL server to use")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as scratch:
        root = Path(scratch)
        admin = None
        if args.database_url:
            name = f"arena_bench_{uuid.uuid4().hex[:10]}"
            admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(args.database_url).set(database=name).render_as_string(False)
        else:
            url = f"sqlite:///{root / 'bench.db'}"
        try:
            started = time.perf_counter()
            fill(url, args.submissions, args.teams)
            filled = time.perf_counter() - started
            env = {"ARENA_HOME": str(root / "home"), "ARENA_DATABASE_URL": url,
                   "ARENA_ADMIN_TOKEN": ADMIN_TOKEN, "ARENA_SUITE": "class"}
            platform = Platform(env, root, with_worker=False)
            try:
                rows = len(httpx.get(platform.url + "/api/leaderboard").json()["rows"])
                latencies, errors, elapsed = asyncio.run(read(platform.url, args.seconds,
                                                              args.clients))
            finally:
                platform.stop()
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"# {backend}: {args.submissions} finished submissions of {args.teams} teams "
          f"(filled in {filled:.0f} s), leaderboard of {rows} rows, {args.clients} clients")
    print(f"{'backend':<11} {'reads':>7} {'reads/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    print(f"{backend:<11} {len(latencies):>7} {len(latencies) / elapsed:>8.0f} "
          f"{1000 * p50:>7.1f} {1000 * p99:>7.1f} {errors:>6}")


if __name__ == "__main__":
    main()
