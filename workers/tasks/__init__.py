"""Celery tasks. Importing this package registers them (as shared tasks)."""

from workers.tasks import attribute, sweep

__all__ = ["attribute", "sweep"]
