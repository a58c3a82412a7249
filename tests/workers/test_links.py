"""The beat links new sessions every few seconds, on the maintenance queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from db.models import Visitor, VisitSession
from db.session import unit_of_work
from tests.conftest import Builders
from workers.app import LINK_SESSIONS_TASK, MAINTENANCE_QUEUE, celery_config


def test_the_beat_schedules_the_linker_on_the_maintenance_queue(settings: Settings) -> None:
    config = celery_config(settings)
    scheduled = {entry["task"] for entry in config["beat_schedule"].values()}
    assert LINK_SESSIONS_TASK in scheduled
    assert config["task_routes"][LINK_SESSIONS_TASK] == {"queue": MAINTENANCE_QUEUE}


def test_the_task_links_waiting_sessions(
    celery_app: Celery, sessions: sessionmaker[Session], build: Builders
) -> None:
    site = build.website()
    visitor = uuid.uuid4()
    with unit_of_work(sessions) as session:
        session.add(Visitor(website_id=site.id, id=visitor))
        session.add(
            VisitSession(
                website_id=site.id,
                id=uuid.uuid4(),
                visitor_id=visitor,
                started_at=datetime.now(UTC),
                source="google",
            )
        )
    linked = celery_app.tasks[LINK_SESSIONS_TASK].apply().get()
    assert linked >= 1
    with unit_of_work(sessions) as session:
        states = session.scalars(
            select(VisitSession.linked).where(VisitSession.website_id == site.id)
        ).all()
    assert states == [True]
