"""The API with a probe on Python's cyclic garbage collector, for measuring its pauses.

    METRIVO_GC_PROBE_DIR=/tmp/gc .venv/bin/uvicorn bench.gc_probe:app --workers 2 ...

Every second each process rewrites `<dir>/gc-<pid>.json`: the duration of every
collection so far, per generation. Load it with wrk (bench/lua/payments.lua), then read
the files (`python -m bench.gc_probe <dir>` prints a summary). Set
`METRIVO_GC_PROBE_NO_FREEZE=1` to undo the app's `gc.freeze()` at startup and see the
pauses without it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

_started: list[float] = [0.0]
_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}


def _probe(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _pauses[info["generation"]].append(time.perf_counter() - _started[0])


def _write(directory: Path) -> None:
    while True:
        time.sleep(1)
        if os.environ.get("METRIVO_GC_PROBE_NO_FREEZE"):
            gc.unfreeze()
        (directory / f"gc-{os.getpid()}.json").write_text(json.dumps(_pauses))


def summary(directory: Path) -> str:
    lines = []
    for path in sorted(directory.glob("gc-*.json")):
        for generation, pauses in json.loads(path.read_text()).items():
            if pauses:
                pauses.sort()
                lines.append(
                    f"{path.stem} gen{generation}: {len(pauses)} collections, "
                    f"{sum(pauses) * 1000:.0f} ms in all, longest {pauses[-1] * 1000:.1f} ms"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
else:
    from api.asgi import app

    __all__ = ["app"]
    if os.environ.get("METRIVO_GC_PROBE_DIR"):
        gc.callbacks.append(_probe)
        threading.Thread(
            target=_write, args=(Path(os.environ["METRIVO_GC_PROBE_DIR"]),), daemon=True
        ).start()
