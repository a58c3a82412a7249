"""Reports at scale: a 30-day revenue-by-source report over 1,000,000 payments and
5,000,000 sessions of one website, on PostgreSQL, timed through HTTP.

    .venv/bin/python bench/reports.py [--payments 1000000] [--sessions 5000000] [--runs 30]

Seeds a fresh database (`metrivo_bench_reports`) with set-based inserts spread over
a year, starts the API with uvicorn, times the report (and the other groupings),
and prints the figures as Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DATABASE = "metrivo_bench_reports"
SECRET = "b" * 64
SOURCES = [
    "google",
    "facebook",
    "twitter",
    "linkedin",
    "newsletter",
    "chatgpt",
    "reddit",
    "bing",
    "producthunt",
    "youtube",
    "direct",
    "news.example.org",
]


def sql(url: str, statement: str, **params: object) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement), params)
    engine.dispose()


def metrivo(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/metrivo"), *args, "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def seed(url: str, website_id: str, payments: int, sessions: int) -> float:
    started = time.perf_counter()
    sources = "ARRAY[" + ",".join(f"'{s}'" for s in SOURCES) + "]"
    visitors = max(sessions // 3, 1)
    sql(
        url,
        f"""
        INSERT INTO visitors (website_id, id, first_seen_at, last_seen_at)
        SELECT :w, md5('v' || i)::uuid, now() - interval '365 days', now()
        FROM generate_series(1, {visitors}) AS i""",
        w=website_id,
    )
    sql(
        url,
        f"""
        CREATE UNLOGGED TABLE bench_seed_sessions AS
        SELECT CAST(:w AS uuid) AS website_id, md5('s' || i)::uuid AS id,
            md5('v' || (i % {visitors}))::uuid AS visitor_id,
            now() - (random() * interval '365 days') AS started_at, 1 + (i % 5) AS pageviews,
            '/p/' || (i % 40) AS landing_path, ({sources})[1 + i % {len(SOURCES)}] AS source,
            'organic' AS medium, 'c' || (i % 25) AS campaign, 'Organic Search' AS channel
        FROM generate_series(1, {sessions}) AS i""",
        w=website_id,
    )
    # Linked as the linker (db/repositories/visit_links.py) links them; `linker_agrees`
    # checks a sample against the linker itself.
    previous = ", ".join(
        f"lag(started_at) OVER (PARTITION BY visitor_id{', ' + f if f else ''} "
        "ORDER BY started_at, id)"
        for f in ("", "source", "medium", "campaign", "channel", "landing_path")
    )
    sql(
        url,
        f"""
        INSERT INTO sessions (website_id, id, visitor_id, started_at, last_seen_at, pageviews,
            events, landing_url, landing_path, source, medium, campaign, channel, linked,
            previous_started_at, previous_source_started_at, previous_medium_started_at,
            previous_campaign_started_at, previous_channel_started_at,
            previous_landing_started_at)
        SELECT website_id, id, visitor_id, started_at, now(), pageviews, 0,
            'https://shop.example.com' || landing_path, landing_path, source, medium, campaign,
            channel, true, {previous}
        FROM bench_seed_sessions""",
    )
    sql(url, "DROP TABLE bench_seed_sessions")
    sql(
        url,
        f"""
        INSERT INTO payments (id, website_id, provider, provider_payment_id, amount, currency,
            status, paid_at, metadata, received_at, updated_at, attribution_status,
            attribution_confidence, attributed_source, attributed_medium, attributed_campaign,
            attributed_landing_page, attributed_channel, matched_visitor_id, attributed_at,
            enqueued_at, attribution_attempts)
        SELECT md5('p' || i)::uuid, :w, 'bench', 'pay_' || i, (ARRAY[9, 19, 49, 99.5])[1 + i % 4],
            (ARRAY['USD', 'EUR'])[1 + i % 2],
            CASE WHEN i % 20 = 0 THEN 'refunded' ELSE 'paid' END,
            now() - (random() * interval '365 days'), '{{}}', now(), now(), 'attributed',
            CASE WHEN i % 10 = 0 THEN 'unknown' ELSE 'high' END,
            CASE WHEN i % 10 = 0 THEN NULL ELSE ({sources})[1 + i % {len(SOURCES)}] END,
            'organic', 'c' || (i % 25), '/p/' || (i % 40), 'Organic Search',
            md5('v' || (i % {visitors}))::uuid, now(), now(), 1
        FROM generate_series(1, {payments}) AS i""",
        w=website_id,
    )
    sql(url, "VACUUM ANALYZE")
    return time.perf_counter() - started


PREVIOUS_COLUMNS = (
    "previous_started_at, previous_source_started_at, previous_medium_started_at, "
    "previous_campaign_started_at, previous_channel_started_at, previous_landing_started_at"
)


def linker_agrees(url: str, env: dict[str, str], sample: int) -> str:
    """Unlink a sample of the seeded sessions, let the linker link them again, and compare."""
    sql(url, "DROP TABLE IF EXISTS bench_link_sample")
    sql(
        url,
        f"""
        CREATE UNLOGGED TABLE bench_link_sample AS
        SELECT website_id, id, {PREVIOUS_COLUMNS} FROM sessions TABLESAMPLE SYSTEM (1)
        LIMIT {sample}""",
    )
    sql(
        url,
        """
        UPDATE sessions s SET linked = false, previous_started_at = NULL,
            previous_source_started_at = NULL, previous_medium_started_at = NULL,
            previous_campaign_started_at = NULL, previous_channel_started_at = NULL,
            previous_landing_started_at = NULL
        FROM bench_link_sample b WHERE s.website_id = b.website_id AND s.id = b.id""",
    )
    started = time.perf_counter()
    run = metrivo(env, "sessions", "link")
    seconds = time.perf_counter() - started
    engine = create_engine(url)
    with engine.connect() as connection:
        differ = connection.execute(
            text(
                f"""
                SELECT count(*) FROM bench_link_sample b JOIN sessions s USING (website_id, id)
                WHERE NOT s.linked OR ({PREVIOUS_COLUMNS.replace("previous", "s.previous")})
                    IS DISTINCT FROM ({PREVIOUS_COLUMNS.replace("previous", "b.previous")})"""
            )
        ).scalar_one()
    engine.dispose()
    sql(url, "DROP TABLE bench_link_sample")
    if differ or run["corrected"]:
        raise SystemExit(f"the seed's links differ from the linker's: {differ}, {run}")
    return (
        f"linker check: {run['linked']} seeded sessions unlinked and linked again by"
        f" `metrivo sessions link` in {seconds:.1f} s (process start included); 0 differ"
        " from the seed"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database")
    args = parser.parse_args()

    url = f"{SERVER}/{DATABASE}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "METRIVO_SECRET": SECRET,
        "METRIVO_LOG_LEVEL": "WARNING",
    }
    if not args.reuse:
        sql(f"{SERVER}/postgres", f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        sql(f"{SERVER}/postgres", f'CREATE DATABASE "{DATABASE}"')
    subprocess.run(
        [str(ROOT / ".venv/bin/metrivo"), "db", "upgrade"], env=env, check=True, capture_output=True
    )
    if args.reuse:
        site = metrivo(env, "website", "list")[0]
    else:
        site = metrivo(env, "website", "create", "--name", "Bench", "--domain", "shop.example.com")
        seconds = seed(url, str(site["id"]), args.payments, args.sessions)
        print(
            f"seeded {args.payments} payments, {args.sessions} sessions in {seconds:.0f} s",
            file=sys.stderr,
        )
        print(linker_agrees(url, env, sample=5000), file=sys.stderr)
    key = metrivo(env, "key", "create", "--website", str(site["id"]), "--scope", "reports:read")

    api = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/uvicorn"),
            "api.asgi:app",
            "--port",
            str(args.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        today = datetime.now(UTC).date()
        params = {
            "website_id": site["id"],
            "from": (today - timedelta(days=29)).isoformat(),
            "to": today.isoformat(),
        }
        headers = {"Authorization": f"Bearer {key['key']}"}
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("| report (30 days) | p50 ms | p95 ms | max ms |\n| --- | --- | --- | --- |")
        for group_by in ("source", "campaign", "landing_page", "confidence", "day"):
            timings = []
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                client.get("/api/reports/revenue", params={**params, "group_by": group_by})
                for _ in range(args.runs):
                    started = time.perf_counter()
                    response = client.get(
                        "/api/reports/revenue", params={**params, "group_by": group_by}
                    )
                    timings.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
            timings.sort()
            p95 = timings[min(len(timings) - 1, int(0.95 * len(timings)))]
            print(
                f"| by {group_by} | {statistics.median(timings):.0f} | {p95:.0f} "
                f"| {timings[-1]:.0f} |"
            )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        api.terminate()
        api.wait(30)
        if not args.keep:
            sql(f"{SERVER}/postgres", f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
