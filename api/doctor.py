"""`metrivo doctor`: is this installation able to do its work?"""

from __future__ import annotations

from typing import Any

from config import Settings, get_settings
from db import migrate
from db.repositories import payments
from db.session import make_engine, make_session_factory, unit_of_work
from workers.app import create_celery
from workers.enqueue import Publisher

# A backlog older than this means the workers are not keeping up (or not running).
STALE_PENDING_SECONDS = 300


def run_checks(settings: Settings | None = None) -> dict[str, Any]:
    checks: list[dict[str, Any]] = []

    def record(name: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    try:
        settings = settings or get_settings()
    except Exception as exc:
        record("config", False, str(exc))
        return {"ok": False, "checks": checks}
    record("config", True, ", ".join(f"{k}={v}" for k, v in settings.safe_summary().items()))

    engine = make_engine(settings)
    database_ok = False
    try:
        current = migrate.current_revision(engine)
        database_ok = True
        record("database", True, "reachable")
        head = migrate.head_revision()
        if current == head:
            record("migrations", True, f"at head {head}")
        else:
            record("migrations", False, f"at {current}, head is {head}: run `metrivo db upgrade`")
            database_ok = False
    except Exception as exc:
        record("database", False, f"unreachable: {type(exc).__name__}: {exc}")

    try:
        Publisher(create_celery(settings)).ping()
        record("broker", True, "reachable")
    except Exception as exc:
        record("broker", False, f"unreachable: {type(exc).__name__}")

    if database_ok:
        with unit_of_work(make_session_factory(engine)) as session:
            backlog = payments.backlog(session)
        oldest = backlog["oldest_pending_seconds"]
        stale = oldest is not None and oldest > STALE_PENDING_SECONDS
        detail = (
            f"{backlog['pending']} pending (oldest {oldest or 0:.0f}s), {backlog['failed']} failed"
        )
        if stale:
            detail += "; pending payments are not being attributed: are the workers running?"
        record("backlog", not stale, detail)
    engine.dispose()
    return {"ok": all(c["ok"] for c in checks), "checks": checks}
