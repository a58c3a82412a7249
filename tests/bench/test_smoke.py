"""The benchmark's smoke run: `bench/run --smoke` runs end to end and stores what it accepted.

A few seconds of load per endpoint at 8 connections, on its own database and Redis db;
no figure is judged here (speed is judged in bench/RESULTS.md), only that every 2xx
answer corresponds to a stored row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE_REDIS_DB = 13

pytestmark = pytest.mark.subprocess


def _smoke_redis_url(redis_url: str) -> str:
    """The same Redis server, the smoke run's own db number (the run flushes it)."""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{SMOKE_REDIS_DB}", "", ""))


def test_smoke_run_stores_every_accepted_request(tmp_path: Path) -> None:
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith("postgres") or not redis_url.startswith("redis"):
        pytest.skip("the benchmark needs PostgreSQL and Redis: run with DATABASE_URL and REDIS_URL")
    if shutil.which("wrk") is None:
        pytest.skip("the benchmark needs wrk: install it with `apt-get install -y wrk`")
    figures = tmp_path / "figures.json"
    command = [
        str(ROOT / "bench" / "run"),
        "--smoke",
        "--database-url",
        database_url,
        "--db-name",
        f"metrivo_bench_smoke_{os.getpid()}",
        "--redis-url",
        _smoke_redis_url(redis_url),
        "--output",
        str(tmp_path / "RESULTS.md"),
        "--json",
        str(figures),
    ]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        try:
            output, _ = run.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            run.terminate()  # bench/run's trap stops every process it started
            output, _ = run.communicate(timeout=60)
            pytest.fail(f"bench/run --smoke took more than 300 s:\n{output}")
    assert run.returncode == 0, output
    results = json.loads(figures.read_text())
    runs = results["track"] + results["payments"]
    assert runs, "the smoke run loaded nothing"
    for run in runs:
        assert run["ok"] > 0, run
        assert run["lost"] == 0, run
    assert results["lost_total"] == 0
    assert (tmp_path / "RESULTS.md").exists()
