"""Celery tasks. Importing this package registers them (as shared tasks)."""

from workers.tasks import sweep

__all__ = ["sweep"]
