"""A real Celery worker process on the backends under test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from celery import Celery
from sqlalchemy import Engine

from config import Settings
from tests.conftest import TEST_SECRET


class WorkerProcess:
    def __init__(self, settings: Settings, name: str = "test") -> None:
        env = {
            **os.environ,
            "METRIVO_DATA_DIR": str(settings.data_dir),
            "DATABASE_URL": settings.sqlalchemy_url,
            "METRIVO_SECRET": TEST_SECRET,
            "METRIVO_ENV": "development",
            "METRIVO_LOG_LEVEL": "INFO",
        }
        env.pop("BROKER_URL", None)
        env.pop("REDIS_URL", None)
        if settings.broker_url:
            env["BROKER_URL"] = settings.broker_url
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.main",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "1",
                "-Q",
                "attribution,maintenance",
                "-n",
                f"{name}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(r"\bready\.", line) for line in self.output):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("worker did not start:\n" + "".join(self.output))

    def stop(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
        self.process.wait(timeout=60)
        self.reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture(scope="module")
def worker(settings: Settings, engine: Engine, celery_app: Celery) -> Iterator[WorkerProcess]:
    # Jobs left by earlier tests (which ran without a worker) would only delay these.
    celery_app.control.purge()
    process = WorkerProcess(settings)
    process.wait_ready()
    yield process
    process.stop()
