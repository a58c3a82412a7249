"""bench/RESULTS.md from the figures of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report_sections import (
    API_MB,
    INTAKE_RATIO,
    LAG_P99_S,
    P99_MS,
    REPORT_P95_MS,
    WORKER_MB,
    cost_ms,
    cpu_table,
    disturbance,
    later_sections,
    median,
    met,
    runs_table,
    statuses_text,
)
from bench.stack import ROOT

NOTES = ROOT / "bench" / "profile-notes.md"


REPORTS_HEADING = "## (e) Reports on 1,000,000 payments and 5,000,000 sessions"


def measured_reports_section(previous: str | None) -> str | None:
    """Section (e) as `bench/reports.py`'s author filled it in, from the previous RESULTS.md.

    bench/run does not measure (e); a regenerated RESULTS.md keeps what was written there.
    """
    if not previous or REPORTS_HEADING not in previous:
        return None
    section = previous.split(REPORTS_HEADING, 1)[1].split("\n## ", 1)[0]
    if "*Placeholder.*" in section:
        return None
    return REPORTS_HEADING + "\n\n" + section.strip("\n") + "\n"


def _by_source_row(section: str) -> tuple[float, float] | None:
    """(p50, p95) ms of the "by source" row of section (e)'s table, if it has one."""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] == "by source":
            try:
                return float(cells[1]), float(cells[2])
            except ValueError:
                return None
    return None


def render(results: dict[str, Any], previous: str | None = None) -> str:
    opts = results["options"]
    machine = results["machine"]
    baseline = median([r["requests_per_s"] for r in results["baseline"]])
    payments = results["payments"]
    track = results["track"]
    pay_ok = median([r["ok_per_s"] for r in payments])
    pay_p99 = median([r["p99_ms"] for r in payments])
    track_ok = median([r["ok_per_s"] for r in track])
    track_p99 = median([r["p99_ms"] for r in track])
    drain_runs: dict[str, list[dict[str, Any]]] = results["drain"].get("runs", {})
    drain = {int(k): median([r["per_s"] for r in v]) for k, v in drain_runs.items()}
    all_lags = results["lag"]
    judged = opts.get("lag_fractions", [0.5])[0]
    lags = [x for x in all_lags if x.get("fraction", 0.5) == judged]
    lag = {q: median([x[q] for x in lags]) for q in ("p50_s", "p95_s", "p99_s", "max_s")}
    memory: dict[str, dict[str, Any]] = results.get("memory", {})
    api_mb = memory.get("api", {}).get("largest_process_mb")
    worker_mb = max(
        (m["largest_process_mb"] for label, m in memory.items() if label.startswith("worker")),
        default=None,
    )
    ratio = pay_ok / baseline if baseline else 0.0
    track_ratio = track_ok / baseline if baseline else 0.0
    lag_workers = opts["lag_workers"]
    drain_best = drain.get(lag_workers, max(drain.values(), default=0.0))
    out: list[str] = []
    w = out.append

    w("# Metrivo benchmark results\n")
    w(
        f"Produced by `{results['command']}` (from the repository root), "
        f"{results['started_at']} to {results.get('finished_at', '?')}. Everything below comes "
        "from that one run: PostgreSQL and Redis on this machine, every server and the load "
        f"generator sharing its {machine['nproc']} cores. Each figure is the median of "
        f"{opts['repeat']} runs of {opts['duration']:g} s (wrk, {opts['threads']} threads, "
        f"{opts['connections']} connections); ratios are against the baseline measured in the "
        "same run.\n"
    )
    busy = results.get("cpu_busy_before_percent")
    if busy is not None and busy > 15:
        w(
            f"> **Warning:** the CPUs were {busy:.0f}% busy with other work just before the run; "
            "the figures are lower than on an idle machine.\n"
        )
    phases = {
        "baseline": results["baseline"],
        "payments": payments,
        "track": track,
        "lag": [x["wrk"] for x in results["lag"]],
    }
    disturbed = {name: d for name, runs in phases.items() if (d := disturbance(runs)) > 0.15}
    if disturbed:
        w(
            "> **Warning:** other work on the machine took CPU during some loads (median cores: "
            + ", ".join(f"{k} {v:.2f}" for k, v in disturbed.items())
            + "); those figures are lower than on a machine left to the benchmark. See the "
            "*other* columns.\n"
        )
    discarded = results.get("discarded", [])
    if discarded:
        w(
            f"{len(discarded)} load run(s) were done again because work that is not the "
            "benchmark's took more than 0.2 cores during them: "
            + ", ".join(f"{d['label']} ({disturbance([d]):.2f} cores)" for d in discarded)
            + ".\n"
        )
    w("## Targets (issue 7)\n")
    w("| target | measured | |")
    w("| --- | --- | --- |")
    w(
        f"| payments intake >= {INTAKE_RATIO}x baseline | {pay_ok:.0f} accepted/s = "
        f"**{ratio:.2f}x** the baseline's {baseline:.0f} req/s | {met(ratio >= INTAKE_RATIO)} |"
    )
    w(
        f"| payments p99 <= {P99_MS:.0f} ms at {opts['connections']} connections "
        f"| {pay_p99:.1f} ms | {met(pay_p99 <= P99_MS)} |"
    )
    w(
        f"| track intake >= {INTAKE_RATIO}x baseline | {track_ok:.0f} accepted/s = "
        f"**{track_ratio:.2f}x** | {met(track_ratio >= INTAKE_RATIO)} |"
    )
    w(f"| track p99 <= {P99_MS:.0f} ms | {track_p99:.1f} ms | {met(track_p99 <= P99_MS)} |")
    if drain:
        shown = ", ".join(
            f"{n} worker process{'es' if n > 1 else ''}: {v:.0f}/s ({v / pay_ok:.2f}x intake)"
            for n, v in sorted(drain.items())
            if pay_ok
        )
        w(
            f"| workers drain at least as fast as the intake accepts ({pay_ok:.0f}/s) "
            f"| {shown} | {met(drain_best >= pay_ok)} with {lag_workers} (the Procfile's "
            "default) |"
        )
    else:
        w("| workers drain at least as fast as intake | not run (--smoke) | n/a |")
    if lags:
        w(
            f"| attribution lag p99 < {LAG_P99_S:.0f} s at {judged:g}x the intake "
            f"({lags[0]['rate_target']:.0f}/s) | p99 {lag['p99_s']:.2f} s (p50 {lag['p50_s']:.2f}, "
            f"p95 {lag['p95_s']:.2f}) | {met(lag['p99_s'] < LAG_P99_S)} |"
        )
    else:
        w("| attribution lag p99 < 2 s at half load | not run (--smoke) | n/a |")
    measured, verdict = "measured by `bench/reports.py`, section (e)", "see (e)"
    by_source = _by_source_row(measured_reports_section(previous) or "")
    if by_source is not None:
        p50, p95 = by_source
        measured = f"p95 {p95:.0f} ms (p50 {p50:.0f}), `bench/reports.py`, section (e)"
        verdict = met(p95 < REPORT_P95_MS)
    w(
        f"| reports: 30-day revenue by source < {REPORT_P95_MS:.0f} ms p95 (1M payments, "
        f"5M sessions) | {measured} | {verdict} |"
    )
    api_ok = None if api_mb is None else api_mb < API_MB
    w(
        f"| API process < {API_MB:.0f} MB RSS | "
        f"{'?' if api_mb is None else f'{api_mb:.0f} MB'} (largest) | {met(api_ok)} |"
    )
    worker_ok = None if worker_mb is None else worker_mb < WORKER_MB
    w(
        f"| worker process < {WORKER_MB:.0f} MB RSS | "
        f"{'not run' if worker_mb is None else f'{worker_mb:.0f} MB'} (largest) "
        f"| {met(worker_ok)} |"
    )
    w(
        f"| every 2xx stored (lost = 0) | lost {results.get('lost_total', '?')} "
        f"| {met(results.get('lost_total') == 0)} |\n"
    )
    base_cost = cost_ms(results["baseline"])
    pay_cost, track_cost = cost_ms(payments), cost_ms(track)
    if base_cost and pay_cost and track_cost:
        pay_floor = cost_ms(payments, ("postgres", "redis", "wrk"))
        track_floor = cost_ms(track, ("postgres", "redis", "wrk"))
        w(
            "The throughput ratios depend on the machine being left to the benchmark. A "
            "figure that does not: the CPU each accepted request costs in all the processes it "
            "goes through (server, PostgreSQL, Redis, wrk; medians, from `/proc`). The baseline "
            f"costs **{base_cost:.3f} ms** per request, a payment **{pay_cost:.3f} ms** "
            f"(**{base_cost / pay_cost:.2f}x** the baseline's rate for the same CPU) and a page "
            f"view **{track_cost:.3f} ms** (**{base_cost / track_cost:.2f}x**). Without the API's "
            f"own CPU, what PostgreSQL, Redis and wrk spend per payment ({pay_floor:.3f} ms) and "
            f"per page view ({track_floor:.3f} ms) would still bound the ratios at "
            f"**{base_cost / pay_floor:.2f}x** and **{base_cost / track_floor:.2f}x** on this "
            "machine.\n"
        )

    code = results.get("code")
    if code:
        changes = ", ".join(f"`{c}`" for c in code["uncommitted"]) or "none"
        w(
            f"Code measured: commit `{code['commit']}` ({code['subject']}); uncommitted changes "
            f"in the measured source at the start of the run: {changes}.\n"
        )
    w("## Machine\n")
    w("| | |\n| --- | --- |")
    w(f"| `nproc` | {machine['nproc']} |")
    w(f"| CPU | {machine['cpu']} |")
    w(f"| RAM | {machine['ram_gb']} GB |")
    w(f"| kernel | {machine['kernel']} |")
    w(f"| Python | {machine['python']} |")
    pg = machine["postgresql_settings"]
    w(
        f"| PostgreSQL | {machine['postgresql']} "
        f"(shared_buffers {pg.get('shared_buffers')} x 8 kB, "
        f"synchronous_commit {pg.get('synchronous_commit')}, fsync {pg.get('fsync')}) |"
    )
    w(f"| Redis | {machine['redis']} |")
    w(f"| load generator | {machine['wrk']} |")
    w(f"| uvicorn event loop + HTTP parser | {machine['uvicorn_loop_http']} |")
    w("| packages | " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()) + " |")
    w(
        f"| CPU busy just before the run | {busy}% (load average "
        f"{' '.join(machine['loadavg_at_start'])}) |\n"
    )

    w("## How to reproduce\n")
    w("```sh")
    w(results["command"])
    w("```\n")
    option_names: tuple[str, ...] = ("duration", "repeat", "connections", "threads")
    option_names += ("web_workers", "drain_workers", "lag_duration", "lag_fractions")
    option_names += ("lag_workers", "retries")
    w(
        "Options in effect (defaults may have changed since): "
        + ", ".join(
            f"`--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}`"
            for k, v in opts.items()
            if k in option_names
        )
        + ".\n"
    )
    w(
        "`bench/run --help` lists the options. What it runs, in order (`$PORT` is a free port "
        "picked per server; the wrk scripts read the key, website id and public key from "
        "`BENCH_*` environment variables, see `bench/lua/`):\n"
    )
    w("```sh")
    for line in results["commands"].get("setup", []):
        w(line)
    for name in (
        "baseline_server",
        "wrk_baseline",
        "api_server",
        "wrk_track",
        "wrk_payments",
        "worker",
        "wrk_lag",
    ):
        if name in results["commands"]:
            w(f"# {name.replace('_', ' ')}")
            w(results["commands"][name])
    w("```\n")
    w(
        "Before the measured runs each server gets a 2 s warm-up load (not reported). After "
        "each load the harness waits 1 s and compares what the responses acknowledged with the "
        "database: for payments, every `provider_payment_id` read from a 2xx body must be a "
        "stored row; for page views, each request carries `X-Request-ID: <session id>.<n>` "
        "(echoed by the API) and every session's stored `pageviews + events` must be at least "
        "its count of 2xx answers. *lost* = acknowledged but not stored (must be 0); *stored, "
        "answer not received* = requests in flight when wrk stopped, which the server completed.\n"
    )
    w(
        "CPU is read from `/proc` around each load: *api*, *baseline*, *worker* are the server "
        "process trees; *postgres* is the PostgreSQL server's processes serving this benchmark's "
        "database plus its own background processes; *other_db* is PostgreSQL backends of other "
        "databases on the same server; *wrk* the load generator; *harness* the benchmark's own "
        "process (sampling memory); *other* everything else on the machine (work that is not "
        "the benchmark's). *ms* columns are CPU milliseconds per "
        "accepted request; *cores of each server process* shows how the connections were spread "
        "over uvicorn's processes.\n"
    )

    w("## (a) Baseline: bare Starlette JSON echo\n")
    w(
        "`bench/baseline_app.py`: parses the JSON body (orjson) and answers it back as JSON, "
        "served by the same uvicorn command as the API, loaded with the same wrk script and "
        "payment bodies as (b).\n"
    )
    out.extend(runs_table(results["baseline"], checked=False))
    out.extend(cpu_table(results["baseline"], per="request"))
    w("")

    w("## (b) POST /api/payments/manual\n")
    w(
        "Unique valid payments (`provider_payment_id` = run prefix, wrk thread, counter); three "
        "in four name a visitor and session recorded in (c), the rest random ids; all carry an "
        f"email and metadata. Accepted: **{pay_ok:.0f}/s = {ratio:.2f}x the baseline**, "
        f"p99 {pay_p99:.1f} ms. Status codes: {statuses_text(payments)}.\n"
    )
    out.extend(runs_table(payments, checked=True))
    out.extend(cpu_table(payments, per="accepted payment"))
    w("")

    w("## (c) POST /api/track\n")
    w(
        "Page views of many sessions: each wrk thread keeps 32 sessions going, 1 to 6 page "
        "views each, one new session in five from a returning visitor; first page views arrive "
        "from search, social, UTM-tagged and direct links; desktop Chrome User-Agent and the "
        f"site's Origin. Accepted: **{track_ok:.0f}/s = {track_ratio:.2f}x the baseline**, "
        f"p99 {track_p99:.1f} ms. Status codes: {statuses_text(track)}.\n"
    )
    out.extend(runs_table(track, checked=True))
    out.extend(cpu_table(track, per="accepted page view"))
    w("")

    out.extend(later_sections(results, pay_ok, measured_reports_section(previous)))
    if NOTES.exists():
        w(NOTES.read_text().strip() + "\n")
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    # Render again from the figures (e.g. after editing bench/profile-notes.md):
    #   .venv/bin/python -m bench.report bench/RESULTS.json > /tmp/RESULTS.md
    #   mv /tmp/RESULTS.md bench/RESULTS.md   (section (e) is carried over from the old one)
    import json
    import sys

    figures = json.loads(Path(sys.argv[1]).read_text())
    current = ROOT / "bench" / "RESULTS.md"
    print(render(figures, current.read_text() if current.exists() else None), end="")
