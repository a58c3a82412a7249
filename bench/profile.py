"""py-spy profiles of a loaded process, and a text summary of where the time goes.

.venv/bin/python -m bench.profile RAW_FILE   # summarize a `py-spy record --format raw` file
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.stack import ROOT

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")


# Sample the thread holding the GIL (where each process's Python CPU time goes), in every
# process of the tree, without pausing them (so two recorders can watch the same tree).
OPTIONS = ("--subprocesses", "--gil", "--nonblocking", "--rate", "100")


def record(root: int, output: Path, *, duration: int, raw: bool) -> subprocess.Popen[bytes]:
    """Start `py-spy record` on a process tree: a flame graph SVG, or raw stacks to summarize."""
    command = [str(PY_SPY), "record", "--pid", str(root), "--duration", str(duration), *OPTIONS]
    command += ["--format", "raw", "--full-filenames"] if raw else ["--format", "flamegraph"]
    command += ["-o", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def command_line(root: str, output: str, duration: int) -> str:
    return (
        f".venv/bin/py-spy record --pid <{root}> --duration {duration} {' '.join(OPTIONS)} "
        f"-o {output}"
    )


# Frames every sample passes through (process, thread and server start-up): not shown
# in the inclusive lists.
SCAFFOLDING = (
    "threading.py",
    "multiprocessing/",
    "uvicorn/_subprocess",
    "uvicorn/supervisors",
    "uvicorn/server.py",
    "uvicorn/_compat",
    "asyncio/runners",
    "asyncio/base_events",
    "anyio/_backends",
    "click/",
    "celery/bootsteps",
    "celery/bin",
    "celery/__main__",
    "celery/worker/worker.py",
    "celery/concurrency",
    "billiard/",
    "<string>",
)


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _ours(path: str) -> bool:
    return path.startswith(str(ROOT)) and "/.venv/" not in path


def _package(path: str) -> str:
    short = _short(path)
    if _ours(path):
        return "metrivo " + short.split("/", 1)[0]
    if "site-packages/" in path:
        return short.split("/", 1)[0].removesuffix(".py")
    if "lib/python3" in path:
        return "stdlib " + short.split("/", 1)[0].removesuffix(".py")
    return short


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function (short path), full path) of each frame, root first; process labels dropped."""
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        if match and match["line"] is not None:
            frames.append((f"{match['name']} ({_short(match['path'])})", match["path"]))
    return frames


def summarize(raw_file: Path, top: int = 20) -> dict[str, Any]:
    """Self time per package and function, inclusive time per function, as % of samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours: set[str] = set()
    scaffolding: set[str] = set()
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = _frames(stack)
        if not frames or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for name, path in set(frames):
            inclusive[name] += count
            if _ours(path):
                ours.add(name)
            elif any(part in path for part in SCAFFOLDING):
                scaffolding.add(name)
        leaf_name, leaf_path = frames[-1]
        own[leaf_name] += count
        packages[_package(leaf_path)] += count

    def share(counter: Counter[str], n: int, keep: Any = None) -> list[tuple[str, float]]:
        if not total:
            return []
        items = [(k, c) for k, c in counter.most_common() if keep is None or keep(k)]
        return [(name, 100 * c / total) for name, c in items[:n]]

    return {
        "samples": total,
        "packages": share(packages, 15),
        "self": share(own, top),
        "inclusive_ours": share(inclusive, top, lambda k: k in ours),
        "inclusive_libraries": share(
            inclusive, top, lambda k: k not in ours and k not in scaffolding
        ),
    }


def render(summary: dict[str, Any]) -> str:
    def block(title: str, rows: list[tuple[str, float]]) -> list[str]:
        return ["", title, "", *(f"    {pct:5.1f}%  {name}" for name, pct in rows)]

    lines = [f"{summary['samples']} samples (100 per second per process, GIL holder only)"]
    lines += block("Self time by package:", summary["packages"])
    lines += block("Self time by function:", summary["self"][:15])
    lines += block("Inclusive time, Metrivo's functions:", summary["inclusive_ours"])
    lines += block("Inclusive time, library functions:", summary["inclusive_libraries"][:15])
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(summarize(Path(sys.argv[1]))))
