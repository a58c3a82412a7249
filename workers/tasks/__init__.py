"""Celery tasks. Importing this package registers them (as shared tasks)."""

from workers.tasks import attribute, links, sweep

__all__ = ["attribute", "links", "sweep"]
