from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Amounts are limited to 15 significant digits, which a double holds exactly.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default)


class JSONResponse(StarletteJSONResponse):
    """JSON via orjson (UUIDs and datetimes natively), exact decimals as JSON numbers."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
