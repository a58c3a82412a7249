"""Load with wrk, and the check that every 2xx response corresponds to a stored row."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.stack import ROOT

LUA_DIR = ROOT / "bench" / "lua"


@dataclass
class WrkRun:
    """One wrk run: what it sent, what came back, how fast."""

    label: str
    command: str
    requests: int
    duration_s: float
    ok: int  # 2xx that were not "ignored"
    non2xx: int
    ignored: int  # 2xx answered {"ignored": ...}: nothing stored, on purpose
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    acked_file: str
    # Filled by the storage check.
    stored: int | None = None
    lost: int | None = None  # acknowledged (2xx) but not stored: must be 0
    unacknowledged_stored: int | None = None  # in flight when wrk stopped
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_s": self.requests_per_s, "ok_per_s": self.ok_per_s}


def run_wrk(
    label: str,
    script: str,
    url: str,
    *,
    threads: int,
    connections: int,
    duration: float,
    env: dict[str, str],
    run_dir: Path,
    rate: float | None = None,
    timeout_s: int = 10,
) -> WrkRun:
    """Run wrk with one of bench/lua's scripts; `env` carries the script's settings."""
    acked = run_dir / f"acked-{label}.txt"
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        f"--timeout={timeout_s}s",
        "-s",
        f"bench/lua/{script}",
        url,
    ]
    settings = {
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_ACKED_FILE": str(acked),
        "BENCH_THREADS": str(threads),
        **({"BENCH_RATE": f"{rate:.1f}"} if rate else {}),
        **env,
    }
    completed = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=False,
    )
    (run_dir / f"wrk-{label}.out").write_text(completed.stdout + completed.stderr)
    line = next(
        (x for x in completed.stdout.splitlines() if x.startswith("BENCH_RESULT ")),
        None,
    )
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    latency = data["latency_us"]
    shown = {k: v for k, v in settings.items() if k in ("BENCH_RATE", "BENCH_PREFIX")}
    return WrkRun(
        label=label,
        command=" ".join([*(f"{k}={v}" for k, v in shown.items()), *map(shlex.quote, command)]),
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        ok=data["ok"],
        non2xx=data["non2xx"],
        ignored=data["ignored"],
        statuses=data["statuses"],
        socket_errors=data["errors"],
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        acked_file=str(acked),
    )


def check_payments(db: psycopg.Connection[Any], run: WrkRun, website_id: str, prefix: str) -> None:
    """Every provider_payment_id a 2xx acknowledged must be a stored payment."""
    acked = set(Path(run.acked_file).read_text().split())
    rows = db.execute(
        "SELECT provider_payment_id, received_at FROM payments WHERE website_id = %s "
        "AND provider_payment_id LIKE %s",
        (website_id, prefix + "-%"),
    ).fetchall()
    stored = {r[0] for r in rows}
    # A group commit stamps its payments with one received_at: distinct values = commits.
    run.extra["commits"] = len({r[1] for r in rows})
    run.stored = len(stored)
    run.lost = len(acked - stored)
    run.unacknowledged_stored = len(stored - acked)
    run.extra["acknowledged_ids"] = len(acked)


def check_track(db: psycopg.Connection[Any], run: WrkRun, website_id: str, since: Any) -> None:
    """Per session: page views and events stored >= 2xx responses for it."""
    acked: dict[str, int] = {}
    for line in Path(run.acked_file).read_text().splitlines():
        session, _, count = line.partition(" ")
        acked[session] = acked.get(session, 0) + int(count)
    rows = db.execute(
        "SELECT id, pageviews + events FROM sessions WHERE website_id = %s AND started_at >= %s",
        (website_id, since),
    ).fetchall()
    stored = {str(r[0]): int(r[1]) for r in rows}
    run.stored = sum(stored.values())
    run.lost = sum(max(0, n - stored.get(s, 0)) for s, n in acked.items())
    run.unacknowledged_stored = sum(max(0, n - acked.get(s, 0)) for s, n in stored.items())
    run.extra["sessions"] = len(rows)
