"""One benchmark run's state and its intake phases: setup, the servers, loads with CPU
accounting, (a) the baseline, (c) track, (b) payments, the profiles."""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import batch_cost, environment, profile
from bench.cpu import CpuMeter, usage
from bench.environment import Target
from bench.load import WrkRun, check_payments, check_track, run_wrk
from bench.stack import ROOT, MemorySampler, Server, Stack, free_port, wait_http
from config import Settings

ORIGIN = "https://shop.example.com"
# A load run during which work that is not the benchmark's used more than this many cores
# is done again (up to --retries times per phase): the machine may be shared.
DISTURBED_CORES = 0.2


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, run_dir: Path, command: str) -> None:
        self.args = args
        self.run_dir = run_dir
        self.stack = Stack(run_dir, args.pidfile)
        self.sampler = MemorySampler()
        self.cpu = CpuMeter(database=args.db_name)
        self.target = Target(
            server_url=args.database_url,
            db_name=args.db_name,
            redis_url=args.redis_url,
            secret=secrets.token_hex(32),
            data_dir=run_dir,
        )
        self.env = self.target.env()
        self.token = secrets.token_hex(3)
        self.api: Server | None = None
        self.api_url = ""
        self.results: dict[str, Any] = {
            "command": command,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "options": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
                if k != "pidfile"
            },
            "commands": {},
            "baseline": [],
            "track": [],
            "payments": [],
            "drain": {},
            "lag": [],
            "profiles": {},
            "discarded": [],
            "notes": [],
        }

    # -- setup -------------------------------------------------------------------------

    def setup(self) -> None:
        deadline = time.monotonic() + self.args.quiet_wait
        busy = environment.cpu_busy_percent()
        while busy > 10 and time.monotonic() < deadline:
            print(f"  waiting for a quiet machine: CPUs {busy:.0f}% busy", flush=True)
            time.sleep(10)
            busy = environment.cpu_busy_percent()
        self.results["cpu_busy_before_percent"] = busy
        self.target.create()
        environment.migrate(self.env)
        site = environment.metrivo(
            self.env, "website", "create", "--name", "bench", "--domain", "shop.example.com"
        )
        key = environment.metrivo(
            self.env,
            "key",
            "create",
            "--website",
            site["id"],
            "--scope",
            "payments:write",
            "--scope",
            "payments:read",
            "--name",
            "bench",
        )
        self.website_id: str = site["id"]
        self.public_key: str = site["public_key"]
        self.secret_key: str = key["key"]
        self.db = self.target.connect()
        row = self.db.execute("SELECT pg_backend_pid()").fetchone()
        self.cpu.postmaster = postmaster_of(int(row[0])) if row else None
        self.results["machine"] = environment.machine(self.target)
        self.results["code"] = environment.code_version()
        self.results["commands"]["setup"] = [
            f"DROP DATABASE IF EXISTS {self.target.db_name}; CREATE DATABASE "
            f"{self.target.db_name}; FLUSHDB on {self.target.redis_url}",
            "export DATABASE_URL=" + self.target.database_url,
            "export REDIS_URL=" + self.target.redis_url,
            "export METRIVO_SECRET=<64 random hex characters, new for each run>",
            *(f"export {k}={v}  # limits out of reach" for k, v in environment.UNLIMITED.items()),
            ".venv/bin/metrivo db upgrade",
            ".venv/bin/metrivo website create --name bench --domain shop.example.com --json",
            ".venv/bin/metrivo key create --website <id> --scope payments:write "
            "--scope payments:read --name bench --json",
        ]
        self.sampler.start()

    def uvicorn(self, name: str, app: str) -> tuple[Server, str]:
        port = free_port()
        command = [
            ".venv/bin/uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--workers",
            str(self.args.web_workers),
        ]
        server = self.stack.start(name, command, self.env)
        self.sampler.watch(name, server.pid)
        self.cpu.trees[name] = server.pid
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", server, ready_lines=self.args.web_workers)
        self.results["commands"][f"{name}_server"] = " ".join(command).replace(str(port), "$PORT")
        return server, url

    # -- load ------------------------------------------------------------------------------

    def wrk(self, label: str, script: str, url: str, env: dict[str, str], **kwargs: Any) -> WrkRun:
        options: dict[str, Any] = {
            "threads": self.args.threads,
            "connections": self.args.connections,
            "duration": self.args.duration,
            **kwargs,
        }
        server = "api" if "api" in self.cpu.trees else "baseline"
        each = self.cpu.processes(server)
        messages = self.target.messages_published()
        before, started = self.cpu.snapshot(), time.monotonic()
        run = run_wrk(label, script, url, env=env, run_dir=self.run_dir, **options)
        run.extra["messages"] = self.target.messages_published() - messages
        cores = usage(before, self.cpu.snapshot(), time.monotonic() - started)
        elapsed = time.monotonic() - started
        run.extra["server_process_cores"] = sorted(
            (
                round((s - each.get(pid, 0.0)) / elapsed, 2)
                for pid, s in self.cpu.processes(server).items()
            ),
            reverse=True,
        )
        run.extra["cpu_cores"] = cores
        run.extra["cpu_ms_per_2xx"] = {
            k: v * run.duration_s * 1000 / run.ok if run.ok else 0.0 for k, v in cores.items()
        }
        return run

    def analyze(self) -> None:
        """What autovacuum does between loads (it is off on some servers: see the report)."""
        self.db.execute("VACUUM ANALYZE payments, payment_events, sessions, visitors")

    def payment_env(self, prefix: str, sessions_file: str = "") -> dict[str, str]:
        return {
            "BENCH_KEY": self.secret_key,
            "BENCH_WEBSITE_ID": self.website_id,
            "BENCH_PREFIX": prefix,
            "BENCH_SESSIONS_FILE": sessions_file,
        }

    def track_env(self) -> dict[str, str]:
        return {"BENCH_PUBLIC_KEY": self.public_key, "BENCH_ORIGIN": ORIGIN}

    def baseline(self) -> None:
        server, url = self.uvicorn("baseline", "bench.baseline_app:app")
        target = url + "/api/payments/manual"
        self.wrk("baseline-warmup", "payments.lua", target, self.payment_env("warm"), duration=2)

        def attempt(n: int) -> tuple[WrkRun, dict[str, Any]]:
            run = self.wrk(f"baseline-{n}", "payments.lua", target, self.payment_env(f"a{n}"))
            return run, run.as_dict()

        run = self.repeat("baseline", attempt)
        self.results["commands"]["wrk_baseline"] = generic_command(run.command, url)
        self.stack.stop(server)
        self.sampler.unwatch("baseline")
        del self.cpu.trees["baseline"]

    def start_api(self) -> None:
        self.api, self.api_url = self.uvicorn("api", "api.asgi:app")
        warm = self.payment_env(f"w{self.token}")
        payments_url, track_url = self.api_url + "/api/payments/manual", self.api_url + "/api/track"
        self.wrk("api-warmup-payments", "payments.lua", payments_url, warm, duration=2)
        self.wrk("api-warmup-track", "track.lua", track_url, self.track_env(), duration=2)
        self.analyze()

    def track(self) -> None:

        def attempt(n: int) -> tuple[WrkRun, dict[str, Any]]:
            since = datetime.now(UTC)
            run = self.wrk(f"track-{n}", "track.lua", self.api_url + "/api/track", self.track_env())
            time.sleep(1)  # requests in flight when wrk stopped finish
            check_track(self.db, run, self.website_id, since)
            self.analyze()
            return run, run.as_dict()

        run = self.repeat("track", attempt)
        self.results["commands"]["wrk_track"] = generic_command(run.command, self.api_url)

    def sessions_file(self) -> str:
        """Recorded sessions for payments to name (three in four do)."""
        path = self.run_dir / "sessions.txt"
        rows = self.db.execute(
            "SELECT visitor_id, id FROM sessions WHERE website_id = %s "
            "ORDER BY random() LIMIT 5000",
            (self.website_id,),
        ).fetchall()
        path.write_text("".join(f"{v} {s}\n" for v, s in rows))
        return str(path)

    def payments(self) -> None:
        self.journeys = self.sessions_file()

        def attempt(n: int) -> tuple[WrkRun, dict[str, Any]]:
            prefix = f"b{n}{self.token}"
            run = self.wrk(
                f"payments-{n}",
                "payments.lua",
                self.api_url + "/api/payments/manual",
                self.payment_env(prefix, self.journeys),
            )
            time.sleep(1)
            check_payments(self.db, run, self.website_id, prefix)
            self.analyze()
            return run, run.as_dict()

        run = self.repeat("payments", attempt)
        self.results["commands"]["wrk_payments"] = generic_command(run.command, self.api_url)

    # -- profiles ------------------------------------------------------------------------

    def profile_api(self) -> None:
        """py-spy on the API's processes during one extra load of each endpoint."""
        assert self.api is not None
        seconds = max(int(self.args.duration), 5)
        loads = {
            "payments": (
                "payments.lua",
                "/api/payments/manual",
                self.payment_env(f"p{self.token}", self.journeys),
            ),
            "track": ("track.lua", "/api/track", self.track_env()),
        }
        for kind, (script, path, env) in loads.items():
            load = partial(
                self.wrk, f"profile-{kind}", script, self.api_url + path, env, duration=seconds + 3
            )
            self.profiled(kind, self.api.pid, "uvicorn", seconds, load)

    def profiled(
        self, kind: str, root: int, what: str, seconds: int, load: Callable[[], Any]
    ) -> None:
        """A flame graph (bench/profile-KIND.svg) and raw stacks (summarized in the report)."""
        svg = ROOT / "bench" / f"profile-{kind}.svg"
        raw = self.run_dir / f"profile-{kind}.txt"
        recorders = [
            profile.record(root, svg, duration=seconds, raw=False),
            profile.record(root, raw, duration=seconds, raw=True),
        ]
        time.sleep(0.5)
        load()
        for recorder in recorders:
            recorder.wait(60)
        if raw.exists():
            summary = profile.summarize(raw)
            self.results["profiles"][kind] = {
                "svg": str(svg.relative_to(ROOT)),
                "summary": summary,
                "text": profile.render(summary),
                "command": profile.command_line(f"{what} main pid", svg.name, seconds),
            }

    # -- attribution -----------------------------------------------------------------------

    def settings(self) -> Settings:
        """Metrivo's settings for this run, for the parts that run in this process."""
        return Settings(
            database_url=self.target.database_url,
            broker_url=self.target.redis_url,
            secret=self.target.secret,
            data_dir=self.run_dir,
        )

    def batch_cost(self) -> None:
        """The intake's batch writers timed in-process, by batch size (bench/batch_cost.py)."""
        # A website of its own: these payments are never queued, and are not the drain's.
        site = environment.metrivo(
            self.env, "website", "create", "--name", "batch-cost", "--domain", "cost.example.com"
        )
        self.results["batch_cost"] = batch_cost.measure(self.settings(), site["id"])
        self.analyze()

    # -- end -------------------------------------------------------------------------------

    def close(self) -> None:
        self.stack.close()
        self.sampler.stop()
        self.results["memory"] = {label: vars(peak) for label, peak in self.sampler.peaks.items()}
        db = getattr(self, "db", None)
        if db is not None:
            db.close()

    def repeat(self, phase: str, attempt: Callable[[int], tuple[WrkRun, dict[str, Any]]]) -> WrkRun:
        """`--repeat` runs of a load; a run disturbed by other work is done again (a few times)."""
        kept, n, spare = 0, 0, self.args.retries
        while True:
            n += 1
            run, record = attempt(n)
            if phase != "lag":
                self._progress(phase, run)
            other = _other_cores(run)
            if other > DISTURBED_CORES and spare > 0:
                spare -= 1
                print(f"    (discarded: other work used {other:.2f} cores; running it again)")
                self.results["discarded"].append({"phase": phase, **run.as_dict()})
                continue
            self.results[phase].append(record)
            kept += 1
            if kept == self.args.repeat:
                return run

    def _progress(self, phase: str, run: WrkRun) -> None:
        lost = "" if run.lost is None else f", lost {run.lost}"
        print(
            f"  {run.label}: {run.requests_per_s:.0f} req/s, {run.ok_per_s:.0f} 2xx/s, "
            f"non-2xx {run.non2xx}, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms{lost}",
            flush=True,
        )


def postmaster_of(backend: int) -> int | None:
    """The PostgreSQL server process of one of its backends, if it runs on this machine."""
    try:
        stat = Path(f"/proc/{backend}/stat").read_text()
    except OSError:
        return None
    if "(postgres" not in stat:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _other_cores(run: WrkRun) -> float:
    cores = run.extra.get("cpu_cores", {})
    return float(cores.get("other", 0.0) + cores.get("other_db", 0.0))


def generic_command(command: str, url: str) -> str:
    """A wrk command line as it can be rerun: the port and run-specific prefixes generalized."""
    port = url.rsplit(":", 1)[1]
    return command.replace(f":{port}", ":$PORT")
