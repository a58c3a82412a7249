"""`metrivo dev` in a subprocess: it comes up, takes a payment, stops cleanly, keeps its data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.subprocess


class DevStack:
    def __init__(self, cwd: Path, port: int) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {
                "DATABASE_URL",
                "REDIS_URL",
                "BROKER_URL",
                "METRIVO_SECRET",
                "METRIVO_ENV",
                "METRIVO_DATA_DIR",
            }
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "dev", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, "".join(self.output))
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen; output:\n{''.join(self.output)}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self.reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def test_dev_runs_the_stack_and_stops_every_child(tmp_path: Path) -> None:
    port = free_port()
    stack = DevStack(tmp_path, port)
    try:
        website_id = stack.wait_for(r"website\s+Demo site\s+(\S+)").group(1)
        secret = stack.wait_for(r"secret key\s+(mk_live_\S+)").group(1)
        assert httpx.get(f"{stack.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{stack.url}/readyz").status_code == 200
        response = httpx.post(
            f"{stack.url}/api/payments/manual",
            json={
                "website_id": website_id,
                "amount": 49,
                "currency": "USD",
                "provider_payment_id": "pay_dev_1",
            },
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status_code == 200, response.text
    finally:
        code = stack.stop()
    assert code == 0, "".join(stack.output)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.url}/healthz", timeout=2)
    assert (tmp_path / ".metrivo" / "metrivo.db").exists()

    # A second run reuses the data: same demo website, the payment is still there,
    # and the previous dev key was replaced by a new one.
    again = DevStack(tmp_path, port)
    try:
        assert again.wait_for(r"website\s+Demo site\s+(\S+)").group(1) == website_id
        new_secret = again.wait_for(r"secret key\s+(mk_live_\S+)").group(1)
        assert new_secret != secret
        old = httpx.get(
            f"{again.url}/api/payments",
            params={"website_id": website_id},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert old.status_code == 401
        listing = httpx.get(
            f"{again.url}/api/payments",
            params={"website_id": website_id},
            headers={"Authorization": f"Bearer {new_secret}"},
        )
        assert [p["provider_payment_id"] for p in listing.json()["payments"]] == ["pay_dev_1"]
    finally:
        assert again.stop() == 0
