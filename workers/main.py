"""The Celery app of this process, configured from the environment (`celery -A workers.main`)."""

from workers.app import create_celery

app = create_celery()
