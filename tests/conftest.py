"""Fixtures: a real database and broker (PostgreSQL + Redis when `DATABASE_URL` and
`REDIS_URL` are set, else the embedded SQLite + SQLAlchemy broker), a real HTTP
server, and keyword-only builders for websites and keys.

Every test makes its own website, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from celery import Celery
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from config import Environment, Settings, normalize_database_url
from db import migrate
from db.models import SCOPES, Website
from db.repositories import keys, websites
from db.session import make_engine, make_session_factory, unit_of_work
from workers.app import create_celery

TEST_SECRET = "test-secret-" + "x" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_postgres_database(base_url: str, name: str) -> str:
    """Create database `name` on the server of `base_url`; returns its URL."""
    url = make_url(normalize_database_url(base_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(base_url: str, name: str) -> None:
    url = make_url(normalize_database_url(base_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def backend() -> str:
    return "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrivo-data")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Iterator[Settings]:
    base_url = os.environ.get("DATABASE_URL")
    name = f"metrivo_test_{os.getpid()}"
    database_url = create_postgres_database(base_url, name) if base_url else None
    yield Settings(
        data_dir=data_dir,
        environment=Environment.DEVELOPMENT,
        database_url=database_url,
        broker_url=os.environ.get("REDIS_URL") or os.environ.get("BROKER_URL"),
        secret=TEST_SECRET,
        pending_requeue_seconds=5,
    )
    if base_url:
        drop_postgres_database(base_url, name)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture(scope="session")
def celery_app(settings: Settings) -> Celery:
    return create_celery(settings)


class LiveServer:
    """The Metrivo app served by uvicorn on a real port, in a thread."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="session")
def server(settings: Settings, engine: Engine, celery_app: Celery) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, celery=celery_app)) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


class Builders:
    """Keyword-only builders of rows, committed right away."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def website(
        self,
        *,
        name: str = "Shop",
        domains: tuple[str, ...] = ("shop.example.com",),
        lookback_days: int = 30,
        attribution_model: str = "last_non_direct",
    ) -> Website:
        with unit_of_work(self.sessions) as session:
            return websites.create(
                session,
                name=name,
                domains=domains,
                lookback_days=lookback_days,
                attribution_model=attribution_model,
            )

    def key(
        self,
        *,
        websites_: tuple[Website, ...] = (),
        scopes: tuple[str, ...] = SCOPES,
        name: str = "test",
    ) -> str:
        with unit_of_work(self.sessions) as session:
            attached = [session.merge(w) for w in websites_]
            _key, secret = keys.create(session, websites=attached, scopes=scopes, name=name)
        return secret


@pytest.fixture
def build(sessions: sessionmaker[Session]) -> Builders:
    return Builders(sessions)


@pytest.fixture
def site(build: Builders) -> Website:
    return build.website()


@pytest.fixture
def secret(build: Builders, site: Website) -> str:
    return build.key(websites_=(site,), scopes=("payments:write", "payments:read"))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def unique(prefix: str = "pay") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"
