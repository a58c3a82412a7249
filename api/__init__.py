"""Metrivo's HTTP side: the Starlette intake, the tracker script, the dashboard and the CLI."""
