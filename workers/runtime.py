"""Per-process resources of a worker: settings, engine, session factory, publisher."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from db.session import make_engine, make_session_factory
from workers.enqueue import Publisher


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    publisher: Publisher


@cache
def runtime_for(app: Celery) -> Runtime:
    settings: Settings = app.conf.metrivo_settings
    engine = make_engine(settings)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        publisher=Publisher(app),
    )
