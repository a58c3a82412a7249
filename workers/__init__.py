"""Metrivo's Celery side: the app, the enqueue helpers and the tasks."""
