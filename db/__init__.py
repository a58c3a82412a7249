"""Metrivo's storage: models, engine and sessions, repositories, migrations."""
