"""What the running app holds: settings, the database, the queue, the batchers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from config import Settings
from workers.enqueue import BackgroundPublisher, Publisher

if TYPE_CHECKING:
    from api.auth import KeyCache
    from api.batching import GroupCommitter
    from api.sites import SiteCache
    from api.track import Visit
    from db.repositories.payments import NewPayment, RecordResult


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    publisher: Publisher
    background_publisher: BackgroundPublisher
    key_cache: KeyCache
    payment_committer: GroupCommitter[NewPayment, RecordResult]
    site_cache: SiteCache
    visit_committer: GroupCommitter[Visit, None]


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.metrivo
    return state
