"""The benchmark's own database and Redis db, the Metrivo processes' environment, the machine."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from bench.stack import ROOT

METRIVO = ".venv/bin/metrivo"
# Variables of the caller's environment that would point Metrivo elsewhere.
OVERRIDDEN = ("DATABASE_URL", "REDIS_URL", "BROKER_URL")
# The benchmark measures capacity from one key and one website: the per-key and
# per-website rate limits are raised out of reach (the limiter still counts every request).
UNLIMITED = {
    "METRIVO_RATE_LIMIT_SECRET_PER_MINUTE": "1000000000",
    "METRIVO_RATE_LIMIT_PUBLIC_PER_MINUTE": "1000000000",
}
# What the benchmark measures (the rest of the repository does not change the figures).
SOURCE = ("api", "db", "workers", "attribution", "config.py", "pyproject.toml")


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True)
class Target:
    """A fresh PostgreSQL database and a Redis db number, owned by one benchmark run."""

    server_url: str  # any database on the server, e.g. postgresql://postgres@127.0.0.1/postgres
    db_name: str
    redis_url: str  # the db number is the benchmark's: it is flushed
    secret: str
    data_dir: Path

    @property
    def database_url(self) -> str:
        url = _with_path(self.server_url, "/" + self.db_name)
        scheme, sep, rest = url.partition("://")
        return f"postgresql+psycopg://{rest}" if scheme.startswith("postgres") and sep else url

    @property
    def libpq_url(self) -> str:
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def _admin_url(self) -> str:
        url = _with_path(self.libpq_url, "/postgres")
        return url

    def env(self) -> dict[str, str]:
        """The environment of every Metrivo process: the Procfile's variables, nothing else."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in OVERRIDDEN and not k.startswith("METRIVO_")
        }
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            METRIVO_SECRET=self.secret,
            METRIVO_DATA_DIR=str(self.data_dir),  # beat's schedule file only; keeps ./.metrivo out
            **UNLIMITED,
        )
        return env

    def create(self) -> None:
        with psycopg.connect(self._admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.db_name}"')
        self.flush_redis()

    def drop(self) -> None:
        with psycopg.connect(self._admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        self.flush_redis()

    def flush_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushdb()
        finally:
            client.close()

    def messages_published(self) -> int:
        """LPUSH calls the Redis server has served: kombu publishes a message with one.

        Server-wide (every client and db number), so a count over a load is approximate
        when something else uses the same Redis.
        """
        client = redis.Redis.from_url(self.redis_url)
        try:
            stats = client.info("commandstats").get("cmdstat_lpush", {})
        finally:
            client.close()
        return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.libpq_url, autocommit=True)


def metrivo(env: dict[str, str], *args: str) -> Any:
    """Run the metrivo CLI with --json; returns its output."""
    completed = subprocess.run(
        [METRIVO, *args, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"metrivo {' '.join(args)} failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


def migrate(env: dict[str, str]) -> None:
    completed = subprocess.run(
        [METRIVO, "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"metrivo db upgrade failed:\n{completed.stderr}")


def _first_line(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return (completed.stdout or completed.stderr).strip().splitlines()[0]


def machine(target: Target) -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    with target.connect() as db:
        row = db.execute("SHOW server_version").fetchone()
        postgres = str(row[0]) if row else "?"
        settings = dict(
            db.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('shared_buffers', 'synchronous_commit', 'max_connections', 'fsync', 'autovacuum')"
            ).fetchall()
        )
    client = redis.Redis.from_url(target.redis_url)
    try:
        redis_version = str(client.info("server")["redis_version"])
    finally:
        client.close()
    packages = {
        name: importlib.metadata.version(name)
        for name in (
            "uvicorn",
            "starlette",
            "uvloop",
            "httptools",
            "celery",
            "sqlalchemy",
            "psycopg",
            "pydantic",
            "orjson",
        )
    }
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return {
        "nproc": _first_line(["nproc"]),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "postgresql_settings": settings,
        "redis": redis_version,
        "wrk": _first_line(["wrk", "-v"]).split(" [")[0],
        "packages": packages,
        "uvicorn_loop_http": f"{loop} + {http} (uvicorn's `auto` picks them when installed)",
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and the source files that differ from it (read-only git)."""

    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return completed.stdout

    changed = git("status", "--porcelain", "--", *SOURCE)
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "?",
        "subject": git("log", "-1", "--format=%s").strip(),
        "uncommitted": [line[3:] for line in changed.splitlines() if len(line) > 3],
    }


def cpu_busy_percent(seconds: float = 2.0) -> float:
    """How busy the machine's CPUs are (all processes), from /proc/stat over `seconds`."""

    def snapshot() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return idle, sum(fields)

    idle_a, total_a = snapshot()
    time.sleep(seconds)
    idle_b, total_b = snapshot()
    total = max(total_b - total_a, 1)
    return round(100 * (1 - (idle_b - idle_a) / total), 1)
