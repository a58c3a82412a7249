"""Logging setup shared by the API processes: one line per record, with the request id."""

from __future__ import annotations

import logging

from api.middleware import RequestIdFilter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_metrivo", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler._metrivo = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
