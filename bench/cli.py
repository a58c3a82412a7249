"""`bench/run`'s command line: the options, the order of the phases, the report.

(a) a bare Starlette baseline, (c) POST /api/track, (b) POST /api/payments/manual,
each checked row by row against the database; (d) the drain of the accepted payments
with one and two worker processes, and the attribution lag under steady loads;
(f) peak memory of every process tree. Then bench/RESULTS.md (and its figures as JSON).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from bench import attribution, report
from bench.harness import Bench
from bench.stack import ROOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="The Metrivo benchmark on PostgreSQL + Redis; writes bench/RESULTS.md.",
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per load run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn --workers")
    parser.add_argument(
        "--drain-workers", default="1,2", help="worker processes to drain with (comma list)"
    )
    parser.add_argument("--lag-duration", type=float, default=20)
    parser.add_argument(
        "--lag-fractions",
        default="0.5,0.25,0.1",
        help="steady loads for the lag, as fractions of the measured intake (the first is judged)",
    )
    parser.add_argument("--lag-workers", type=int, default=2, help="worker processes (lag)")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and a worker")
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="per phase: how many load runs disturbed by other work may be done again",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="on a shared machine: wait up to this long for the CPUs to be idle before starting",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="CI: 2 s per endpoint, 8 connections, no drain"
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument("--db-name", default="metrivo_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="flushed!")
    parser.add_argument("--output", type=Path, help="default: bench/RESULTS.md")
    parser.add_argument(
        "--json", type=Path, help="every figure as JSON (default: next to the output, .json)"
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument("--pidfile", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.repeat, args.connections = min(args.duration, 2), 1, 8
        args.profile, args.retries = False, 0
    args.drain_workers = [int(x) for x in str(args.drain_workers).split(",") if x]
    args.lag_fractions = [float(x) for x in str(args.lag_fractions).split(",") if x]
    return args


def _public_argv(argv: list[str]) -> list[str]:
    """The command line as the user typed it (without the pid file bench/run adds)."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--pidfile":
            skip = True
        elif not arg.startswith("--pidfile="):
            shown.append(shlex.quote(arg))
    return shown


def _terminate(_signum: int, _frame: object) -> NoReturn:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    run_dir = Path(tempfile.mkdtemp(prefix="metrivo-bench-"))
    output = args.output or (run_dir / "RESULTS.md" if args.smoke else ROOT / "bench/RESULTS.md")
    bench = Bench(args, run_dir, " ".join(["bench/run", *_public_argv(sys.argv[1:])]))
    print(f"metrivo bench: working files in {run_dir}", flush=True)
    failed = True
    try:
        bench.setup()
        print("(a) baseline", flush=True)
        bench.baseline()
        bench.start_api()
        print("(c) POST /api/track", flush=True)
        bench.track()
        print("(b) POST /api/payments/manual", flush=True)
        bench.payments()
        if args.profile:
            print("profiling the API with py-spy", flush=True)
            bench.profile_api()
            print("timing the intake's batch writes by batch size", flush=True)
            bench.batch_cost()
        if not args.smoke:
            print("(d) drain and lag", flush=True)
            attribution.drain_and_lag(bench)
        failed = False
    finally:
        # A second SIGTERM (bench/run's EXIT trap sends one) must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.close()
        if not args.keep_db:
            bench.target.drop()
    results = bench.results
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    runs = results["baseline"] + results["track"] + results["payments"]
    runs += [lag["wrk"] for lag in results["lag"]]
    results["lost_total"] = sum(r["lost"] or 0 for r in runs if r.get("lost") is not None)
    (args.json or output.with_suffix(".json")).write_text(
        json.dumps(results, indent=1, default=str)
    )
    previous = output.read_text() if output.exists() else None
    output.write_text(report.render(results, previous))
    print(f"wrote {output}; lost (2xx not stored): {results['lost_total']}", flush=True)
    return 1 if failed or results["lost_total"] else 0
