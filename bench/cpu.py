"""Where the machine's CPU time goes during a load: per process tree, from /proc.

A `CpuMeter` snapshot sums utime + stime of each watched process tree, of every
PostgreSQL and Redis process (with the children PostgreSQL's postmaster reaped),
and of the whole machine (/proc/stat); the load generator's own time comes from
the harness's reaped children. The difference is "other": processes that are not
part of the benchmark.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

from bench.stack import children_of, descendants

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, list[str]] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    return name, raw.rsplit(")", 1)[1].split()


def _seconds(fields: list[str], *, reaped: bool = False) -> float:
    # Fields after the command name: state is [0], utime [11], stime [12], cutime [13], cstime [14].
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def process_seconds(root: int) -> float:
    """CPU seconds of a process and its descendants (the live ones)."""
    total = 0.0
    for pid in (root, *descendants(root)):
        stat = _stat(pid)
        if stat is not None:
            total += _seconds(stat[1])
    return total


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait (guest is in user)
    return busy / TICK


def reaped_children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _backend_database(pid: int) -> str | None:
    """The database of a PostgreSQL backend ("postgres: 15/main: USER DB HOST STATE")."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return None
    words = title.split(": ", 2)[-1].split()
    return words[1] if len(words) >= 3 and "(" in words[2] else None


@dataclass
class CpuMeter:
    """PostgreSQL processes count as "postgres" when they belong to the server at
    `postmaster` (unset: any) and are not backends of another database than
    `database`; the others count as "other_db"."""

    database: str | None = None
    postmaster: int | None = None
    trees: dict[str, int] = field(default_factory=dict)  # label -> root pid

    def processes(self, label: str) -> dict[int, float]:
        """CPU seconds of each process of one tree (to see how the load is spread)."""
        root = self.trees.get(label)
        if root is None:
            return {}
        found = {}
        for pid in (root, *descendants(root)):
            stat = _stat(pid)
            if stat is not None:
                found[pid] = _seconds(stat[1])
        return found

    def snapshot(self) -> dict[str, float]:
        tree = children_of()
        out: dict[str, float] = {}
        for label, root in self.trees.items():
            total = 0.0
            for pid in (root, *descendants(root, tree)):
                stat = _stat(pid)
                if stat is not None:
                    total += _seconds(stat[1])
            out[label] = total
        postgres = other_db = redis = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            stat = _stat(int(entry))
            if stat is None:
                continue
            name, fields = stat
            if name.startswith("postgres"):
                pid, ppid = int(entry), int(fields[1])
                postmaster = ppid == 1 or not (_stat(ppid) or ("",))[0].startswith("postgres")
                server = pid if postmaster else ppid
                database = None if postmaster else _backend_database(pid)
                if (self.postmaster is not None and server != self.postmaster) or (
                    database is not None and self.database and database != self.database
                ):
                    other_db += _seconds(fields, reaped=postmaster)
                else:  # ours, the server's own processes, and backends that exited
                    postgres += _seconds(fields, reaped=postmaster)
            elif name.startswith("redis-server"):
                redis += _seconds(fields)
        out["postgres"] = postgres
        out["other_db"] = other_db
        out["redis"] = redis
        out["wrk"] = reaped_children_seconds()
        me = resource.getrusage(resource.RUSAGE_SELF)
        out["harness"] = me.ru_utime + me.ru_stime  # this process: sampling /proc, SQL checks
        out["machine"] = machine_busy_seconds()
        return out


def usage(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores used on average by each part (and "other") between two snapshots."""
    used = {k: max(after[k] - before.get(k, 0.0), 0.0) / seconds for k in after}
    machine = used.pop("machine")
    used["other"] = max(machine - sum(used.values()), 0.0)
    used["total"] = machine
    return used
