"""The tables of bench/RESULTS.md, and its sections after the intake: (d) drain and lag,
(e) the reports placeholder, (f) memory, the profiles."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench import batch_cost

# The targets of issue 7.
INTAKE_RATIO = 0.6
P99_MS = 50.0
LAG_P99_S = 2.0
API_MB = 250.0
WORKER_MB = 300.0
REPORT_P95_MS = 500.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def runs_table(runs: list[dict[str, Any]], *, checked: bool) -> list[str]:
    head = "| run | req/s | 2xx/s | non-2xx | socket errors | p50 ms | p90 ms | p99 ms | max ms |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    batched = checked and any("commits" in r.get("extra", {}) for r in runs)
    if checked:
        head += " 2xx | stored | lost | stored, answer not received |"
        rule += " ---: | ---: | ---: | ---: |"
    if batched:
        head += " payments per commit | ids per queue message |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for r in runs:
        errors = sum(r["socket_errors"].values())
        line = (
            f"| {r['label']} | {r['requests_per_s']:.0f} | {r['ok_per_s']:.0f} | {r['non2xx']} "
            f"| {errors} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.1f} |"
        )
        if checked:
            line += f" {r['ok']} | {r['stored']} | {r['lost']} | {r['unacknowledged_stored']} |"
        if batched:
            line += f" {per_commit(r)} | {per_message(r)} |"
        lines.append(line)
    if runs:
        lines.append(
            f"| **median** | **{median([r['requests_per_s'] for r in runs]):.0f}** "
            f"| **{median([r['ok_per_s'] for r in runs]):.0f}** | | "
            f"| **{median([r['p50_ms'] for r in runs]):.1f}** "
            f"| {median([r['p90_ms'] for r in runs]):.1f} "
            f"| **{median([r['p99_ms'] for r in runs]):.1f}** | |"
            + (f" | | **{sum(r['lost'] for r in runs)}** (total) | |" if checked else "")
            + (" | |" if batched else "")
        )
    return lines


CPU_PARTS = (
    "baseline",
    "api",
    "worker",
    "postgres",
    "redis",
    "wrk",
    "harness",
    "other_db",
    "other",
)


def cpu_table(runs: list[dict[str, Any]], per: str = "2xx") -> list[str]:
    """Cores each part used during each run, and CPU milliseconds per accepted request."""
    if not runs or "cpu_cores" not in runs[0].get("extra", {}):
        return []
    parts = [p for p in CPU_PARTS if any(r["extra"]["cpu_cores"].get(p, 0) > 0.005 for r in runs)]
    lines = [
        "",
        f"CPU during the load, in cores (of the machine's), and in ms of CPU per {per}:",
        "",
        "| run | "
        + " | ".join(parts)
        + " | total | "
        + " | ".join(f"{p} ms" for p in parts)
        + " | cores of each server process |",
        "| --- |" + " ---: |" * (2 * len(parts) + 1) + " --- |",
    ]
    for r in runs:
        cores, ms = r["extra"]["cpu_cores"], r["extra"]["cpu_ms_per_2xx"]
        lines.append(
            f"| {r['label']} | "
            + " | ".join(f"{cores.get(p, 0):.2f}" for p in parts)
            + f" | {cores['total']:.2f} | "
            + " | ".join(f"{ms.get(p, 0):.3f}" for p in parts)
            + " | "
            + " / ".join(
                f"{c:.2f}" for c in r["extra"].get("server_process_cores", []) if c >= 0.01
            )
            + " |"
        )
    return lines


# The processes a request costs CPU in (everything but other work and the harness).
COST_PARTS = ("baseline", "api", "postgres", "redis", "wrk")


def cost_ms(runs: list[dict[str, Any]], parts: tuple[str, ...] = COST_PARTS) -> float:
    """Median CPU ms per accepted request, over the processes it costs (all by default)."""
    return median(
        [
            sum(r["extra"]["cpu_ms_per_2xx"].get(p, 0.0) for p in parts)
            for r in runs
            if "cpu_ms_per_2xx" in r.get("extra", {})
        ]
    )


def disturbance(runs: list[dict[str, Any]]) -> float:
    """Median cores used during the runs by work that is not the benchmark's."""
    found = [r.get("extra", {}).get("cpu_cores") or r.get("cpu_cores") for r in runs]
    return median([c.get("other", 0) + c.get("other_db", 0) for c in found if c])


def per_commit(run: dict[str, Any]) -> str:
    commits = run.get("extra", {}).get("commits")
    return f"{run['stored'] / commits:.1f}" if commits else ""


def per_message(run: dict[str, Any]) -> str:
    messages = run.get("extra", {}).get("messages")
    return f"{run['stored'] / messages:.1f}" if messages else ""


def statuses_text(runs: list[dict[str, Any]]) -> str:
    total: dict[str, int] = {}
    for r in runs:
        for status, n in r["statuses"].items():
            total[status] = total.get(status, 0) + n
    return ", ".join(f"{s}: {n}" for s, n in sorted(total.items())) or "none"


def later_sections(
    results: dict[str, Any], pay_ok: float, reports_section: str | None = None
) -> list[str]:
    """(d), (e), (f) and the profiles."""
    opts = results["options"]
    machine = results["machine"]
    drain_runs: dict[str, list[dict[str, Any]]] = results["drain"].get("runs", {})
    drain = {int(k): median([r["per_s"] for r in v]) for k, v in drain_runs.items()}
    all_lags = results["lag"]
    judged = opts.get("lag_fractions", [0.5])[0]
    lag_workers = opts["lag_workers"]
    memory: dict[str, dict[str, Any]] = results.get("memory", {})
    out: list[str] = []
    w = out.append

    w("## (d) Attribution: drain and lag\n")
    if drain_runs:
        info = results["drain"]
        w(
            "The backlog is every payment the intake accepted above (with its warm-up), in the "
            f"very messages the API queued ({info['messages']} messages; "
            f"{info['unqueued_by_intake']} accepted payments were not queued by the intake). "
            "For each run the payments are made pending again, the messages are published to "
            "an idle, ready worker pool, and the drain lasts from the first publish to the last "
            "`attributed_at`. The API is up but idle; the workers have the machine.\n"
        )
        w(
            "| worker processes | run | payments | seconds | attributed/s | failed | vs intake "
            "| worker cores | PostgreSQL cores | other cores | worker ms CPU/payment "
            "| PostgreSQL ms CPU/payment |"
        )
        w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n, runs in sorted(drain_runs.items(), key=lambda kv: int(kv[0])):
            for i, r in enumerate(runs, 1):
                cores = r.get("cpu_cores") or {}
                per = r["seconds"] * 1000 / max(r["attributed"], 1)
                w(
                    f"| {n} | {i} | {r['attributed']} | {r['seconds']:.1f} | {r['per_s']:.0f} "
                    f"| {r['failed']} | {r['per_s'] / max(pay_ok, 1):.2f}x "
                    f"| {cores.get('worker', 0):.2f} | {cores.get('postgres', 0):.2f} "
                    f"| {cores.get('other', 0):.2f} | {cores.get('worker', 0) * per:.2f} "
                    f"| {cores.get('postgres', 0) * per:.2f} |"
                )
            med = drain[int(n)]
            w(
                f"| **{n}** | **median** | | | **{med:.0f}** | | **{med / max(pay_ok, 1):.2f}x** "
                "| | | | | |"
            )
        cost = info.get("message_cost")
        if cost:
            w(
                "\nWhat a message costs the worker (one worker process, `--concurrency 1`, main "
                f"and pool process): {cost[0]['messages'] * cost[0]['ids_per_message']} payments "
                "of the backlog attributed again, sent in messages of 1, 10 and 100 ids. The "
                "intake's batches set the ids per message (the *ids per queue message* columns "
                "of (b) and of the lag runs).\n"
            )
            w(
                "| ids per message | messages | seconds | payments/s "
                "| worker CPU ms per message | worker CPU ms per payment |"
            )
            w("| ---: | ---: | ---: | ---: | ---: | ---: |")
            for c in cost:
                w(
                    f"| {c['ids_per_message']} | {c['messages']} | {c['seconds']:.1f} "
                    f"| {c['per_s']:.0f} | {c['cpu_ms_per_message']:.2f} "
                    f"| {c['cpu_ms_per_payment']:.3f} |"
                )
        if 1 in drain and 2 in drain and drain[1]:
            w(
                f"\nTwo worker processes drain {drain[2] / drain[1]:.2f}x as fast as one "
                f"(on {machine['nproc']} cores shared with PostgreSQL).\n"
            )
    else:
        w("Not run (`--smoke`).\n")
    if all_lags:
        fractions = sorted({x.get("fraction", 0.5) for x in all_lags}, reverse=True)
        w(
            "Lag: a paced load of payments (wrk with a `delay()` that hands out send slots at "
            f"a fixed rate) at {' and '.join(f'{f:g}x' for f in fractions)} the measured intake, "
            f"for {opts['lag_duration']:g} s each, with {lag_workers} worker processes and the "
            "API running together; lag = `attributed_at - received_at` of that run's payments, "
            f"from the database. The target is judged at {judged:g}x.\n"
        )
        w(
            "| load | run | target/s | sent 2xx/s | intake p99 ms | lost | payments per commit "
            "| ids per queue message | attributed | lag p50 s | p95 s | p99 s | max s |"
        )
        w("|" + " ---: |" * 13)
        for fraction in fractions:
            group = [x for x in all_lags if x.get("fraction", 0.5) == fraction]
            for i, x in enumerate(group, 1):
                r = x["wrk"]
                w(
                    f"| {fraction:g}x | {i} | {x['rate_target']:.0f} | {r['ok_per_s']:.0f} "
                    f"| {r['p99_ms']:.1f} | {r['lost']} | {per_commit(r)} | {per_message(r)} | "
                    f"{x['attributed']}{'' if x['all_attributed'] else ' (not all)'} "
                    f"| {x['p50_s']:.3f} | {x['p95_s']:.3f} | {x['p99_s']:.3f} "
                    f"| {x['max_s']:.3f} |"
                )
            meds = {q: median([x[q] for x in group]) for q in ("p50_s", "p95_s", "p99_s")}
            w(
                f"| **{fraction:g}x** | **median** | | "
                f"**{median([x['wrk']['ok_per_s'] for x in group]):.0f}** | | | | | "
                f"| **{meds['p50_s']:.3f}** | **{meds['p95_s']:.3f}** | **{meds['p99_s']:.3f}** | |"
            )
        out.extend(cpu_table([x["wrk"] for x in all_lags], per="accepted payment"))
        w("")

    if reports_section:
        w(reports_section)
    else:
        w("## (e) Reports on 1,000,000 payments and 5,000,000 sessions\n")
        w(
            "*Placeholder.* Measured by `bench/reports.py` (written by another engineer; run "
            "it separately: `.venv/bin/python bench/reports.py`), which seeds its own database "
            "and times the 30-day revenue-by-source report through HTTP. Its figures go here "
            "(a regenerated RESULTS.md keeps what is written in this section); target: p95 "
            "under 500 ms.\n"
        )

    w("## (f) Peak memory (RSS)\n")
    w(
        "VmRSS of every process of each tree, sampled every 0.5 s from `/proc/<pid>/status` "
        "while it ran (the whole run: warm-up, loads, drains).\n"
    )
    w("| process tree | processes | largest process MB | whole tree MB | target |")
    w("| --- | ---: | ---: | ---: | --- |")
    for label, m in memory.items():
        limit = API_MB if label == "api" else WORKER_MB if label.startswith("worker") else None
        verdict = ""
        if limit is not None:
            verdict = f"< {limit:.0f} MB: {met(m['largest_process_mb'] < limit)}"
        w(
            f"| {label} | {m['processes']} | {m['largest_process_mb']:.0f} "
            f"| {m['tree_mb']:.0f} | {verdict} |"
        )
    w("")

    profiles = results.get("profiles", {})
    if profiles:
        w("## Profiles\n")
        w(
            "py-spy on every process of the server's tree (uvicorn's workers; Celery's main and "
            "pool processes), sampling the thread that holds the GIL 100 times a second: where "
            "each process's Python CPU time goes (time in C with the GIL released, e.g. waiting "
            "on PostgreSQL, is not sampled). Recorded during an extra load after the measured "
            "runs (profiling slows the processes, so these runs are not in the figures above). "
            "Flame graphs: "
            + ", ".join(f"[`{p['svg']}`]({Path(p['svg']).name})" for p in profiles.values())
            + ".\n"
        )
        for kind, p in profiles.items():
            w(f"### {kind}\n")
            w(f"`{p['command']}`\n")
            w("```")
            w(p["text"])
            w("```\n")
    if results.get("batch_cost"):
        w("### The intake's batch writes, by batch size\n")
        w(
            "`bench/batch_cost.py`, in the harness's process against the benchmark's database "
            "(no HTTP, no concurrency): the API's own `record_payments` and `record_visits` on "
            f"batches of each size (median of {batch_cost.ROUNDS} calls; *ms* is wall time, *CPU* "
            "this thread's), and how many of the statements of a batch SQLAlchemy compiled "
            "instead of taking them from its statement cache (from its statement log, in "
            "separate calls), with the time that took.\n"
        )
        out.extend(batch_cost.render(results["batch_cost"]))
        w("")
    return out
