"""`metrivo dev`: the whole stack on one machine with no servers to install.

SQLite and kombu's SQLAlchemy broker live in the data directory; the API, one
worker and beat run as child processes of this one. Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from sqlalchemy import Engine

from config import Environment, Settings
from db import migrate
from db.models import SCOPES
from db.repositories import keys, websites
from db.session import make_engine, make_session_factory, unit_of_work

DEV_KEY_NAME = "metrivo dev"
DEMO_DOMAINS = ("localhost", "127.0.0.1")
STOP_TIMEOUT_SECONDS = 15


def run_dev(*, host: str, port: int) -> int:
    settings = Settings(environment=Environment.DEVELOPMENT)
    if not settings.is_embedded:
        print("metrivo dev: DATABASE_URL is set; using it instead of the embedded SQLite file.")
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    migrate.upgrade(engine)
    try:
        website, secret = _demo_credentials(engine)
    finally:
        engine.dispose()

    env = {**os.environ, "METRIVO_DATA_DIR": str(data_dir), "METRIVO_ENV": "development"}
    python = sys.executable
    commands = {
        "api": [
            python,
            "-m",
            "uvicorn",
            "api.asgi:app",
            "--host",
            host,
            "--port",
            str(port),
            "--no-access-log",
        ],
        "worker": [
            python,
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
            "dev@%h",
        ],
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "workers.main",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(data_dir / "celerybeat-schedule"),
        ],
    }
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, command in commands.items():
            # A session of their own: Ctrl-C reaches only us, and we stop them in order.
            children[name] = subprocess.Popen(command, env=env, start_new_session=True)
        url = f"http://{host}:{port}"
        if _wait_healthy(url, children["api"], lambda: stopping):
            _banner(url, website, secret, data_dir)
        while not stopping:
            exited = [n for n, p in children.items() if p.poll() is not None]
            if exited:
                print(f"metrivo dev: {', '.join(exited)} exited; stopping the others.")
                break
            time.sleep(0.2)
    finally:
        _stop_all(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopping else 1


def _demo_credentials(engine: Engine) -> tuple[dict[str, str], str]:
    """The demo website (made on first run) and a fresh dev key (older ones revoked)."""
    with unit_of_work(make_session_factory(engine)) as session:
        existing = websites.list_all(session)
        site = (
            existing[0]
            if existing
            else websites.create(session, name="Demo site", domains=list(DEMO_DOMAINS))
        )
        for old in keys.list_all(session, include_revoked=False):
            if old.name == DEV_KEY_NAME:
                keys.revoke(session, old)
        _key, secret = keys.create(session, websites=[site], scopes=SCOPES, name=DEV_KEY_NAME)
        return {"id": str(site.id), "public_key": site.public_key, "name": site.name}, secret


def _wait_healthy(url: str, api: subprocess.Popen[bytes], stopped: object) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api.poll() is not None or (callable(stopped) and stopped()):
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _banner(url: str, website: dict[str, str], secret: str, data_dir: Path) -> None:
    print(
        f"""
Metrivo is running at {url}   (Ctrl-C stops it; data in {data_dir})

  website      {website["name"]}  {website["id"]}
  public key   {website["public_key"]}
  secret key   {secret}
               (all scopes; a new one each run, the previous one is revoked)

Try it end to end:
  1. browse the demo page (it carries the tracker):
     {url}/demo?key={website["public_key"]}&website={website["id"]}&utm_source=newsletter&utm_medium=email&utm_campaign=launch
  2. run the curl it shows (with the secret key above)
  3. open {url}/dashboard, paste the secret key: the payment is under "newsletter"

Or pay without a visit:
  curl -s -X POST {url}/api/payments/manual \\
    -H "Content-Type: application/json" -H "Authorization: Bearer {secret}" \\
    -d '{{"website_id": "{website["id"]}", "amount": 49, "currency": "USD",
         "provider_payment_id": "pay_demo_1"}}'
""",
        flush=True,
    )


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    # The API first (no new work), then beat, then the worker (finishes its task).
    order = [n for n in ("api", "beat", "worker") if n in children]
    for name in order:
        if children[name].poll() is None:
            children[name].send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name in order:
        try:
            children[name].wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"metrivo dev: {name} did not stop in time; killing it.")
            children[name].kill()
            children[name].wait()
