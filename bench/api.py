"""Leaderboard read throughput and latency with 10 000 submissions in the database.

    .venv/bin/python bench/api.py [--submissions 10000] [--teams 40] [--seconds 15]
        [--clients 8,32] [--workers 1] [--client auto|wrk|httpx] [--path /api/leaderboard]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Fills a fresh database (a temporary SQLite file, or a new PostgreSQL database created next
to the given URL and dropped afterwards) with teams and finished submissions, starts
``arena serve --no-worker`` on a free loopback port, and reads ``/api/leaderboard`` (or
``--path``, e.g. ``/`` for the leaderboard page) from each
number of concurrent clients for a fixed time. Prints reads per second, p50 and p99 latency
and errors, beside the time of the ranking query that every read would cost uncached.

The load comes from wrk (``apt-get install wrk``) when it is installed: a Python client on
the same two cores spends more CPU per request than the server and measures itself.
"""

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ADMIN_TOKEN  # noqa: E402
from tests.processes import Platform  # noqa: E402


@dataclass
class Reads:
    count: int
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def fill(url: str, submissions: int, teams: int) -> None:
    os.environ["ARENA_DATABASE_URL"] = url
    from server.state.config import get_settings

    get_settings.cache_clear()
    from server.state.db import session_scope
    from server.state.migrate import upgrade
    from server.state.security import hash_token
    from server.state.tables import Result, Status, Submission, Team, utcnow

    upgrade(url)
    rng = random.Random(0)
    now = utcnow()
    with session_scope() as session:
        team_rows = [Team(name=f"Team {i:02d}", token_hash=hash_token(f"t{i}")) for i in range(teams)]
        session.add_all(team_rows)
        session.flush()
        for i in range(submissions):
            submission = Submission(
                team_id=team_rows[i % teams].id,
                arch="resnet20",
                stored_name=f"{i}.pth",
                sha256="0" * 64,
                size_bytes=1,
                suite="class",
                status=Status.FINISHED,
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
            session.add(
                Result(
                    submission_id=submission.id,
                    suite="class",
                    suite_version="1",
                    metrics={
                        k: {"accuracy": v, "ci95": [v - 0.03, v + 0.03], "n": 1024} for k, v in values.items()
                    },
                    **values,
                )
            )


def read_wrk(url: str, seconds: float, clients: int) -> Reads:
    """Read with wrk (C, one thread): the load generator leaves the cores to the server."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "--timeout", "30s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def field(pattern: str) -> str | None:
        match = re.search(pattern, out, re.MULTILINE)
        return match.group(1) if match else None

    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    socket_errors = field(r"Socket errors: (.*)$")
    errors = int(field(r"Non-2xx or 3xx responses: (\d+)") or 0)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors))
    return Reads(
        count=int(field(r"(\d+) requests in") or 0),
        per_second=float(field(r"Requests/sec:\s+([\d.]+)") or 0),
        p50_ms=ms(field(r"^\s+50%\s+(\S+)") or "0ms"),
        p99_ms=ms(field(r"^\s+99%\s+(\S+)") or "0ms"),
        errors=errors,
    )


def read_httpx(url: str, seconds: float, clients: int) -> Reads:
    """Read with httpx's async client (no wrk here); it costs more CPU than the server."""

    async def run() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            stop = time.perf_counter() + seconds

            async def loop() -> None:
                nonlocal errors
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    try:
                        response = await client.get(url)
                        errors += response.status_code != 200
                    except httpx.HTTPError:
                        errors += 1
                    latencies.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*[loop() for _ in range(clients)])
            return latencies, errors, time.perf_counter() - began

    latencies, errors, elapsed = asyncio.run(run())
    latencies.sort()
    return Reads(
        count=len(latencies),
        per_second=len(latencies) / elapsed,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        errors=errors,
    )


def uncached_ranking_ms(repeat: int = 20) -> float:
    """Median time of the ranking query itself, as every read would pay without the cache."""
    from server.state.config import get_settings
    from server.state.db import new_session
    from server.state.leaderboard import _compute
    from server.state.scoring import Track

    weights = get_settings().score_weights()
    times = []
    with new_session(write=False) as session:
        for _ in range(repeat):
            started = time.perf_counter()
            _compute(session, "class", weights, Track.EMPIRICAL, 0.5)
            times.append(time.perf_counter() - started)
            session.rollback()
    return 1000 * statistics.median(times)


def main() -> None:
    """Fill the database, start the API, load it and print the table.

    Long because it is the benchmark read top to bottom: each block is one step of the
    measurement (fill, uncached query, server start, one load run per client count).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", default="8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--workers", type=int, default=1, help="API processes (arena serve)")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator: wrk when installed, else httpx",
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL server to use")
    parser.add_argument("--path", default="/api/leaderboard", help="what to read, e.g. / (page)")
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "httpx"
    read = read_wrk if client == "wrk" else read_httpx
    clients = [int(n) for n in args.clients.split(",")]
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
            ranking_ms = uncached_ranking_ms()  # on the database fill() just set up
            env = {
                "ARENA_HOME": str(root / "home"),
                "ARENA_DATABASE_URL": url,
                "ARENA_ADMIN_TOKEN": ADMIN_TOKEN,
                "ARENA_SUITE": "class",
                "ARENA_WEB_WORKERS": str(args.workers),
            }
            platform = Platform(env, root, with_worker=False)
            try:
                rows = len(httpx.get(platform.url + "/api/leaderboard").json()["rows"])
                target = platform.url + args.path
                results = [(n, read(target, args.seconds, n)) for n in clients]
            finally:
                platform.stop()
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"# {backend}: {args.submissions} finished submissions of {args.teams} teams "
        f"(filled in {filled:.0f} s), leaderboard of {rows} rows, {args.workers} API "
        f"process(es), GET {args.path}, load from {client}, {args.seconds:g} s per row"
    )
    print(
        f"# ranking query without the cache: {ranking_ms:.1f} ms per read "
        f"(at most {1000 / ranking_ms:.0f} reads/s per core)"
    )
    print(
        f"{'backend':<11} {'clients':>7} {'reads':>7} {'reads/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6}"
    )
    for n, r in results:
        print(
            f"{backend:<11} {n:>7} {r.count:>7} {r.per_second:>8.0f} {r.p50_ms:>7.1f} "
            f"{r.p99_ms:>7.1f} {r.errors:>6}"
        )


if __name__ == "__main__":
    main()
