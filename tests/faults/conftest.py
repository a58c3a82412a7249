"""Fault-injection fixtures: a private PostgreSQL cluster and Redis server, and the
Metrivo stack (migrations, API, Celery workers, beat) run as real processes on them.

The group runs only in the PostgreSQL + Redis pass (when `DATABASE_URL` is set),
but never touches the servers those URLs name: it starts servers of its own on
free ports, so stopping and restarting them cannot disturb anyone else. Every
process runs in a process group of its own and is ended in teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
DATABASE_NAME = "metrivo"

FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection tests driving real processes")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


# Figures printed by the scenarios, repeated in the terminal summary (visible without -s).
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("fault scenarios")
        for line in FIGURES:
            terminalreporter.write_line(line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL server installation with initdb and pg_ctl."""
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    for bindir in sorted(candidates, key=lambda p: int(p.parent.name), reverse=True):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def unavailable_reason() -> str | None:
    """Why the group cannot run here, or None."""
    if not os.environ.get("DATABASE_URL"):
        return "faults: runs in the PostgreSQL + Redis pass only (DATABASE_URL is not set)"
    if postgres_bin_dir() is None:
        return "faults: PostgreSQL server binaries (initdb, pg_ctl) not found"
    if shutil.which("redis-server") is None:
        return "faults: redis-server not found"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "faults: running as root, and there is no `postgres` user to run PostgreSQL"
        if shutil.which("runuser") is None:
            return "faults: running as root, and `runuser` is missing"
    for tool in ("metrivo", "uvicorn", "celery"):
        if not (VENV_BIN / tool).exists():
            return f"faults: {VENV_BIN / tool} is missing (run scripts/bootstrap)"
    return None


class PrivatePostgres:
    """A throwaway cluster in a temporary directory (owned by `postgres` when we are root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # Short path: the unix socket lives here too (108-byte limit).
        self.root = Path(tempfile.mkdtemp(prefix="mvf-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 90) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        # Output to a file, not a pipe: the server pg_ctl forks must not inherit a pipe
        # that we would wait on.
        out_path = self.root.parent / f"{self.root.name}.out"
        with out_path.open("wb") as out:
            result = subprocess.run(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        output = out_path.read_text(errors="replace")
        out_path.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{output}")

    @property
    def options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8",
            "--locale=C",
        )  # fmt: skip

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self.options, "-l", str(self.log), "-w",
            "-t", "60", "start",
        )  # fmt: skip

    def restart(self) -> None:
        """A fast restart: open sessions are ended, then the server comes back."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self.options, "-l", str(self.log), "-m", "fast",
            "-w", "-t", "60", "restart",
        )  # fmt: skip

    def running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.data), "status", timeout=30)
        except RuntimeError:
            return False
        return True

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def destroy(self, keep_log: Path | None = None) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if self.data.exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        if keep_log is not None and self.log.exists():
            shutil.copyfile(self.log, keep_log)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server child process without persistence, restartable on the same port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15) -> None:
        assert self.process is None, "redis-server already running"
        with (self.root / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(
                [
                    "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--dir", str(self.root),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start:\n" + self.log_tail())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.stop()
            self.start()

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "redis.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Servers:
    """The private PostgreSQL and Redis, and the environment Metrivo processes get."""

    def __init__(self, postgres: PrivatePostgres, redis_server: PrivateRedis) -> None:
        self.postgres = postgres
        self.redis = redis_server
        self.secret = secrets.token_hex(32)

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.postgres.port}/{DATABASE_NAME}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def env(self, data_dir: Path) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("METRIVO_") and k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")
        }
        return {
            **base,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "METRIVO_SECRET": self.secret,
            "METRIVO_PENDING_REQUEUE_SECONDS": "5",
            "METRIVO_SWEEP_INTERVAL_SECONDS": "2",
            "METRIVO_DATA_DIR": str(data_dir),
            "METRIVO_LOG_LEVEL": "INFO",
            # The limiter stays on (it counts in this Redis, and must fail open when Redis
            # is down) but never refuses the load's few hundred payments a second.
            "METRIVO_RATE_LIMIT_SECRET_PER_MINUTE": "10000000",
            "PYTHONUNBUFFERED": "1",
        }


class Proc:
    """One Metrivo process in a process group of its own, its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL to the whole group (a Celery worker's pool children die with it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self.kill_group()  # whatever a clean shutdown left behind


class Stack:
    """API, workers and beat of one scenario, with a website and a key of their own."""

    def __init__(self, servers: Servers, directory: Path) -> None:
        self.servers = servers
        self.dir = directory
        self.env = servers.env(directory / "data")
        self.procs: list[Proc] = []
        self.api: Proc | None = None
        self.api_url = ""
        self.website_id = ""
        self.secret = ""

    def cli(self, *args: str) -> Any:
        result = subprocess.run(
            [str(VENV_BIN / "metrivo"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"metrivo {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return json.loads(result.stdout) if "--json" in args else result.stdout

    def provision(self) -> None:
        site = self.cli(
            "website", "create", "--name", "Faults", "--domain", "shop.example.com", "--json"
        )
        key = self.cli(
            "key", "create", "--website", site["id"], "--scope", "payments:write",
            "--scope", "payments:read", "--name", "faults", "--json",
        )  # fmt: skip
        self.website_id = site["id"]
        self.secret = key["key"]

    def spawn(self, name: str, command: list[str]) -> Proc:
        proc = Proc(name, command, self.env, self.dir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def start_api(self) -> Proc:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = self.spawn(
            "api",
            [
                str(VENV_BIN / "uvicorn"), "api.asgi:app", "--host", "127.0.0.1",
                "--port", str(port), "--no-access-log",
            ],
        )  # fmt: skip
        return self.api

    def start_worker(self, name: str) -> Proc:
        return self.spawn(
            name,
            [
                str(VENV_BIN / "celery"), "-A", "workers.main", "worker",
                "-Q", "attribution,maintenance", "--concurrency", "1", "--loglevel", "INFO",
                "-n", f"{name}@%h",
            ],
        )  # fmt: skip

    def start_beat(self) -> Proc:
        return self.spawn(
            "beat",
            [
                str(VENV_BIN / "celery"), "-A", "workers.main", "beat", "--loglevel", "INFO",
                "--schedule", str(self.dir / "beat-schedule"),
            ],
        )  # fmt: skip

    def up(self, workers: int = 1) -> None:
        """Start API, workers and beat together, then wait until each is ready."""
        api = self.start_api()
        started = [self.start_worker(f"w{i + 1}") for i in range(workers)]
        beat = self.start_beat()
        self.wait_api(api)
        for worker in started:
            self.wait_worker(worker)
        self.wait_log(beat, r"beat: Starting")

    def wait_api(self, proc: Proc, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.api_url, timeout=2) as client:
            while time.monotonic() < deadline:
                if not proc.alive():
                    break
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        return
                time.sleep(0.1)
        raise AssertionError(f"the API did not start:\n{tail(proc.output())}")

    def wait_worker(self, proc: Proc, timeout: float = 60) -> None:
        self.wait_log(proc, rf"{re.escape(proc.name)}@\S+ ready\.", timeout)

    @staticmethod
    def wait_log(proc: Proc, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, proc.output()):
                return
            if not proc.alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"{proc.name} did not become ready:\n{tail(proc.output())}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def logs(self, lines: int = 40) -> str:
        parts = [f"--- {p.name} ({p.log})\n{tail(p.output(), lines)}" for p in self.procs]
        parts.append(f"--- redis\n{self.servers.redis.log_tail(lines)}")
        parts.append(f"--- postgres\n{self.servers.postgres.log_tail(lines)}")
        return "\n".join(parts)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def fault_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    bindir = postgres_bin_dir()
    assert bindir is not None
    postgres = PrivatePostgres(bindir)
    logs = tmp_path_factory.mktemp("faults-servers")
    redis_server = PrivateRedis(logs)
    try:
        postgres.init()
        postgres.start()
        postgres.create_database(DATABASE_NAME)
        redis_server.start()
        servers = Servers(postgres, redis_server)
        Stack(servers, tmp_path_factory.mktemp("faults-migrate")).cli("db", "upgrade")
        yield servers
    finally:
        redis_server.stop()
        postgres.destroy(keep_log=logs / "postgres.log")


@pytest.fixture
def stack(
    fault_servers: Servers, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """A provisioned website and key; the test starts the processes it needs (`stack.up()`)."""
    # A scenario that failed half way may have left a server down.
    fault_servers.postgres.ensure_running()
    fault_servers.redis.ensure_running()
    with fault_servers.redis.client() as client:
        client.flushall()
    stack = Stack(fault_servers, tmp_path)
    stack.provision()
    try:
        yield stack
    finally:
        stack.close()
        if request.node.stash.get(FAILED, False):
            print(f"\nprocess logs of {request.node.name}:\n{stack.logs()}")
