"""The processes a benchmark run starts, and a sampler of their memory.

Every server runs in a process group of its own; `Stack.close()` ends them all,
and the live groups are listed in a pid file so `bench/run`'s EXIT trap can end
whatever a crashed harness left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process on the machine."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    tree = children_of() if tree is None else tree
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Server:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[int]:
        return descendants(self.pid)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class Stack:
    def __init__(self, run_dir: Path, pidfile: Path | None) -> None:
        self.run_dir = run_dir
        self.pidfile = pidfile
        self.servers: list[Server] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Server:
        log = self.run_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(name, command, process, log)
        self.servers.append(server)
        self._write_pidfile()
        return server

    def stop(self, server: Server, timeout: float = 20.0) -> None:
        """SIGTERM to the server's main process, then SIGKILL to its group if it lingers."""
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)  # children a clean shutdown left behind
        server.process.wait()
        if server in self.servers:
            self.servers.remove(server)
        self._write_pidfile()

    def close(self) -> None:
        for server in reversed(list(self.servers)):
            self.stop(server)

    def _write_pidfile(self) -> None:
        if self.pidfile is not None:
            self.pidfile.write_text("".join(f"{s.pid}\n" for s in self.servers))


def wait_http(url: str, server: Server, *, ready_lines: int = 0, timeout: float = 60.0) -> None:
    """Until `url` answers 200 and the log shows `ready_lines` uvicorn workers started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {server.log}:\n{server.log_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
                started = server.log_text().count("Application startup complete")
                if response.status == 200 and started >= ready_lines:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not become ready; see {server.log}")


@dataclass
class MemoryPeak:
    """Peak resident memory of a process tree: its largest process and the whole tree."""

    largest_process_mb: float = 0.0
    tree_mb: float = 0.0
    processes: int = 0
    samples: int = 0


@dataclass
class MemorySampler:
    """Samples VmRSS of labelled process trees every `interval` seconds, in a thread."""

    interval: float = 0.5
    peaks: dict[str, MemoryPeak] = field(default_factory=dict)
    _watched: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, label: str, pid: int) -> None:
        with self._lock:
            self._watched[label] = pid
            self.peaks.setdefault(label, MemoryPeak())

    def unwatch(self, label: str) -> None:
        with self._lock:
            self._watched.pop(label, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            watched = dict(self._watched)
        tree = children_of()
        for label, pid in watched.items():
            sizes = [
                size for p in (pid, *descendants(pid, tree)) if (size := rss_mb(p)) is not None
            ]
            if not sizes:
                continue
            with self._lock:
                peak = self.peaks[label]
                peak.largest_process_mb = max(peak.largest_process_mb, max(sizes))
                peak.tree_mb = max(peak.tree_mb, sum(sizes))
                peak.processes = max(peak.processes, len(sizes))
                peak.samples += 1
