"""(d) The attribution side of a run: the drain with one and two worker processes,
what a queue message costs a worker, and the attribution lag under steady loads."""

from __future__ import annotations

from functools import partial
from typing import Any

from bench import pipeline
from bench.harness import DISTURBED_CORES, Bench, generic_command, median
from bench.load import WrkRun, check_payments
from bench.stack import Server
from workers.app import create_celery


def drain_and_lag(bench: Bench) -> None:
    """(d): the drain with each worker count, then the lag with the Procfile's worker count."""
    app = create_celery(bench.settings())
    drain = pipeline.Drain.capture(
        db=bench.db,
        app=app,
        stack=bench.stack,
        sampler=bench.sampler,
        env=bench.env,
        redis_url=bench.target.redis_url,
        website_id=bench.website_id,
        cpu=bench.cpu,
    )
    bench.results["drain"] = {
        "messages": len(drain.batches),
        "unqueued_by_intake": drain.unqueued,
        "runs": {},
    }
    bench.results["commands"]["worker"] = " ".join(pipeline.worker_command(0)).replace(
        "--concurrency 0", "--concurrency <1 or 2>"
    )
    keep = bench.args.lag_workers
    lag_worker: Server | None = None
    for concurrency in bench.args.drain_workers:
        worker = drain.start_worker(concurrency)
        runs: list[dict[str, Any]] = []
        spare = bench.args.retries
        while len(runs) < bench.args.repeat:
            run = drain.run(concurrency)
            other = run.cpu_cores.get("other", 0) + run.cpu_cores.get("other_db", 0)
            print(
                f"  drain, {concurrency} worker process(es): {run.attributed} in "
                f"{run.seconds:.1f} s = {run.per_s:.0f}/s",
                flush=True,
            )
            if other > DISTURBED_CORES and spare > 0:
                spare -= 1
                print(f"    (discarded: other work used {other:.2f} cores; running it again)")
                label = f"drain-{concurrency}-worker-process"
                record = {"phase": "drain", "label": label, **run.as_dict()}
                bench.results["discarded"].append(record)
                continue
            runs.append(run.as_dict())
        bench.results["drain"]["runs"][str(concurrency)] = runs
        if concurrency == 1:
            print("  attribution cost by ids per message", flush=True)
            bench.results["drain"]["message_cost"] = drain.message_cost(worker)
        if bench.args.profile and concurrency == 1:
            seconds = max(int(bench.args.duration), 5)
            bench.profiled("drain", worker.pid, "celery", seconds, partial(drain.run, 1))
        if concurrency == keep and lag_worker is None:
            lag_worker = worker
        else:
            bench.stack.stop(worker)
    if lag_worker is None:
        lag_worker = drain.start_worker(keep)
    bench.cpu.trees["worker"] = lag_worker.pid
    lag(bench)
    bench.stack.stop(lag_worker)


def lag(bench: Bench) -> None:
    intake = median([r["ok_per_s"] for r in bench.results["payments"]])
    for fraction in bench.args.lag_fractions:
        _lag_at(bench, fraction, intake * fraction)


def _lag_at(bench: Bench, fraction: float, rate: float) -> None:
    tag = f"{fraction:g}".replace(".", "")

    def attempt(n: int) -> tuple[WrkRun, dict[str, Any]]:
        prefix = f"l{tag}x{n}{bench.token}"
        run = bench.wrk(
            f"lag-{fraction:g}-{n}",
            "payments.lua",
            bench.api_url + "/api/payments/manual",
            bench.payment_env(prefix, bench.journeys),
            duration=bench.args.lag_duration,
            rate=rate,
        )
        like = prefix + "-%"
        done = pipeline.wait_attributed(bench.db, bench.website_id, like=like, timeout=120)
        check_payments(bench.db, run, bench.website_id, prefix)
        bench.analyze()
        lags = pipeline.lag_percentiles(bench.db, bench.website_id, prefix)
        print(
            f"  lag at {rate:.0f}/s: sent {run.ok_per_s:.0f}/s, p50 {lags['p50_s']:.3f} s, "
            f"p99 {lags['p99_s']:.3f} s",
            flush=True,
        )
        return run, {
            "fraction": fraction,
            "rate_target": rate,
            "all_attributed": done,
            **lags,
            "wrk": run.as_dict(),
        }

    run = bench.repeat("lag", attempt)
    bench.results["commands"]["wrk_lag"] = generic_command(run.command, bench.api_url)
