"""The Celery app, configured for at-least-once delivery without losing work.

Run with `celery -A workers.app worker` and `celery -A workers.app beat`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from config import Settings, get_settings

ATTRIBUTION_QUEUE = "attribution"
MAINTENANCE_QUEUE = "maintenance"
ATTRIBUTE_TASK = "metrivo.attribute_payments"
SWEEP_PENDING_TASK = "metrivo.sweep_pending"
LINK_SESSIONS_TASK = "metrivo.link_sessions"
# New sessions wait at most about this long to be linked (reports count them either way).
LINK_INTERVAL_SECONDS = 5.0

# A message not acknowledged within this time is redelivered by Redis; tasks
# must finish (or be retried with a shorter countdown) well within it.
VISIBILITY_TIMEOUT_SECONDS = 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.celery_broker_url
    transport_options: dict[str, Any] = {}
    if broker.startswith(("redis://", "rediss://")):
        transport_options.update(
            visibility_timeout=VISIBILITY_TIMEOUT_SECONDS,
            socket_timeout=5,
            socket_connect_timeout=3,
            retry_on_timeout=True,
            health_check_interval=30,
        )
    elif broker.startswith("sqla+sqlite"):
        # kombu's SQLAlchemy transport hands its options to create_engine: wait for
        # the file lock (API, worker and beat share it) instead of failing.
        transport_options["connect_args"] = {"timeout": 30}
    return {
        "broker_url": broker,
        "broker_transport_options": transport_options,
        "broker_connection_timeout": 3,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_pool_limit": 10,
        # Acknowledge only after the task ran; a lost worker puts the message back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # JSON only, no result backend: the payment row is the record of the job.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        # Publishing must not hang the caller: a few quick retries, then give up
        # (the pending sweeper queues the work again later).
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "task_default_queue": ATTRIBUTION_QUEUE,
        "task_routes": {
            ATTRIBUTE_TASK: {"queue": ATTRIBUTION_QUEUE},
            SWEEP_PENDING_TASK: {"queue": MAINTENANCE_QUEUE},
            LINK_SESSIONS_TASK: {"queue": MAINTENANCE_QUEUE},
        },
        "task_time_limit": 300,
        "task_soft_time_limit": 240,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "sweep-pending-payments": {
                "task": SWEEP_PENDING_TASK,
                "schedule": settings.sweep_interval_seconds,
                # A sweep that could not run in time is replaced by the next one.
                "options": {"expires": settings.sweep_interval_seconds},
            },
            "link-sessions": {
                "task": LINK_SESSIONS_TASK,
                "schedule": LINK_INTERVAL_SECONDS,
                "options": {"expires": LINK_INTERVAL_SECONDS},
            },
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "timezone": "UTC",
        "enable_utc": True,
    }


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("metrivo", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.metrivo_settings = settings
    import workers.tasks  # noqa: F401  (registers the shared tasks)

    return app
