"""Request and response bodies. The OpenAPI document is generated from these."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from api.currencies import ISO_4217
from db.models import PAYMENT_STATUSES
from db.repositories.reports import GROUPS

EARLIEST_PAID_AT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)  # providers' clocks may run ahead of ours
# A JSON number is parsed as a double; up to 15 significant digits it is exact.
MAX_AMOUNT_DIGITS = 15
MAX_AMOUNT = 10**12
MAX_AMOUNT_DECIMALS = 12
# metadata and properties: free-form JSON objects, bounded.
MAX_DOCUMENT_BYTES = 16 * 1024
MAX_DOCUMENT_DEPTH = 5
MAX_DOCUMENT_INTEGER = 2**63 - 1

PaymentStatus = Literal[
    "paid", "pending", "failed", "refunded", "partially_refunded", "disputed", "canceled"
]
Confidence = Literal["pending", "high", "medium", "low", "unknown"]
AttributionStatus = Literal["pending", "attributed", "failed"]
ReportGroup = Literal[
    "source", "medium", "campaign", "channel", "landing_page", "confidence", "day"
]
assert set(PaymentStatus.__args__) == set(PAYMENT_STATUSES)  # type: ignore[attr-defined]
assert set(ReportGroup.__args__) == set(GROUPS)  # type: ignore[attr-defined]


def _plain_text(value: str | None) -> str | None:
    """No NUL characters: PostgreSQL cannot store them in text or JSON."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def _document_error(value: Any, path: str = "", depth: int = 1) -> str | None:
    """What is wrong with a JSON value inside metadata or properties, and where, if anything."""
    where = f" (at {path})" if path else ""
    if isinstance(value, dict | list):
        if depth > MAX_DOCUMENT_DEPTH:
            return f"may nest objects and arrays at most {MAX_DOCUMENT_DEPTH} levels deep{where}"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return f"keys must not contain NUL (\\u0000) characters{where}"
            if error := _document_error(item, inner, depth + 1):
                return error
    elif isinstance(value, str) and "\x00" in value:
        return f"strings must not contain NUL (\\u0000) characters{where}"
    elif isinstance(value, float) and not math.isfinite(value):
        return f"numbers must be finite{where}"
    elif isinstance(value, int) and abs(value) > MAX_DOCUMENT_INTEGER:
        return f"integers must be within ±(2^63 - 1){where}"
    return None


def _bounded_document(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JSON object of at most `MAX_DOCUMENT_BYTES` and `MAX_DOCUMENT_DEPTH` levels."""
    if value is None:
        return None
    if error := _document_error(value):
        raise ValueError(error)
    if len(orjson.dumps(value)) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"must be at most {MAX_DOCUMENT_BYTES} bytes as JSON")
    return value


class ManualPayment(BaseModel):
    """POST /api/payments/manual: a payment from any provider. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    website_id: uuid.UUID = Field(description="Website ID from the Metrivo dashboard.")
    amount: Annotated[
        Decimal,
        WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": MAX_AMOUNT}),
    ] = Field(
        ge=0,
        lt=MAX_AMOUNT,
        decimal_places=MAX_AMOUNT_DECIMALS,
        allow_inf_nan=False,
        description="Amount in your reporting unit (e.g. 49 or 4900), stored exactly.",
    )
    currency: str = Field(
        description="Three-letter ISO 4217 code, any case; stored uppercase.",
        json_schema_extra={"pattern": "^[A-Za-z]{3}$"},
    )
    provider_payment_id: str = Field(
        min_length=1, max_length=255, description="Unique payment ID from your provider."
    )
    status: PaymentStatus = "paid"
    provider: str = Field(default="manual", min_length=1, max_length=64)
    customer_email: EmailStr | None = None
    paid_at: datetime | None = Field(
        default=None, description="ISO 8601; without an offset it is read as UTC."
    )
    visitor_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    metadata: dict[str, Any] | None = Field(
        default=None,
        description=f"A JSON object, stored as is: at most {MAX_DOCUMENT_BYTES} bytes, "
        f"{MAX_DOCUMENT_DEPTH} levels deep.",
    )

    _text = field_validator("provider_payment_id", "provider")(_plain_text)
    _metadata = field_validator("metadata")(_bounded_document)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_is_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError("amount must be a JSON number, e.g. 49.99")
        return value

    @field_validator("amount")
    @classmethod
    def _amount_exact(cls, value: Decimal) -> Decimal:
        if len(value.normalize().as_tuple().digits) > MAX_AMOUNT_DIGITS:
            raise ValueError(f"amount may have at most {MAX_AMOUNT_DIGITS} significant digits")
        return value

    @field_validator("currency")
    @classmethod
    def _currency_iso(cls, value: str) -> str:
        code = value.upper()
        if code not in ISO_4217:
            raise ValueError("currency must be a three-letter ISO 4217 code, e.g. USD, EUR, GBP")
        return code

    @field_validator("provider")
    @classmethod
    def _provider_lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("paid_at")
    @classmethod
    def _paid_at_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        out_of_range = ValueError("paid_at must be after 2000-01-01 and not in the future")
        try:  # a time near year 1 or 9999 may not exist in UTC
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise out_of_range from None
        if not EARLIEST_PAID_AT <= value <= datetime.now(UTC) + MAX_CLOCK_AHEAD:
            raise out_of_range
        return value


# Exact decimals are answered as JSON numbers (see api/responses.py).
JsonDecimal = Annotated[Decimal, WithJsonSchema({"type": "number"})]


class PaymentView(BaseModel):
    """A payment with its current attribution."""

    id: uuid.UUID
    website_id: uuid.UUID
    amount: JsonDecimal
    currency: str
    provider: str
    provider_payment_id: str
    status: PaymentStatus
    paid_at: AwareDatetime
    attributed_source: str | None
    attributed_medium: str | None
    attributed_campaign: str | None
    attributed_landing_page: str | None
    attributed_channel: str | None
    attribution_confidence: Confidence
    attribution_status: AttributionStatus
    attribution_method: str | None


class PaymentResponse(BaseModel):
    success: Literal[True]
    duplicate: bool = Field(description="True when this request changed nothing.")
    payment: PaymentView


class Evidence(BaseModel):
    method: str | None
    model: str | None
    matched_session_id: uuid.UUID | None
    matched_visitor_id: uuid.UUID | None
    attributed_at: AwareDatetime | None


class StatusChange(BaseModel):
    status: PaymentStatus
    previous_status: PaymentStatus | None
    recorded_at: AwareDatetime


class PaymentWithEvidence(PaymentView):
    received_at: AwareDatetime
    evidence: Evidence
    attribution_attempts: int
    attribution_last_error: str | None


class PaymentDetail(PaymentWithEvidence):
    history: list[StatusChange]


class PaymentDetailResponse(BaseModel):
    success: Literal[True]
    payment: PaymentDetail


class PaymentPage(BaseModel):
    success: Literal[True]
    payments: list[PaymentView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    success: Literal[False]
    error: ErrorBody


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """One entry per offending field; never echoes the submitted value."""
    details = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = error["msg"]
        if error["type"] == "literal_error" and field == "status":
            message = f"status must be one of: {', '.join(PAYMENT_STATUSES)}"
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        details.append({"field": field, "message": message})
    return details


def _http_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value


class TrackEvent(BaseModel):
    """POST /api/track: one page view or custom event from the tracker."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    public_key: str = Field(alias="publicKey", min_length=1, max_length=64)
    visitor_id: uuid.UUID = Field(alias="visitorId")
    session_id: uuid.UUID = Field(alias="sessionId")
    type: Literal["pageview", "event"] = "pageview"
    url: str = Field(
        min_length=1,
        max_length=4096,
        description="The page's http(s) URL.",
        json_schema_extra={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
    )
    referrer: str | None = Field(default=None, max_length=4096)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    properties: dict[str, Any] | None = None

    _url_is_http = field_validator("url")(_http_url)
    _text = field_validator("public_key", "url", "referrer", "name")(_plain_text)
    _properties = field_validator("properties")(_bounded_document)

    @field_validator("referrer")
    @classmethod
    def _empty_referrer(cls, value: str | None) -> str | None:
        return value or None


class Identify(BaseModel):
    """POST /api/identify: link a visitor to an email or your own user id."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)

    public_key: str | None = Field(default=None, alias="publicKey", max_length=64)
    website_id: uuid.UUID | None = Field(
        default=None, alias="websiteId", description="With a secret key: the website."
    )
    visitor_id: uuid.UUID = Field(alias="visitorId")
    email: EmailStr | None = None
    user_id: str | None = Field(default=None, alias="userId", min_length=1, max_length=255)
    properties: dict[str, Any] | None = None

    _text = field_validator("public_key", "user_id")(_plain_text)
    _properties = field_validator("properties")(_bounded_document)


class Accepted(BaseModel):
    success: Literal[True]
    ignored: str | None = Field(default=None, description="Why nothing was recorded, if so.")


class Success(BaseModel):
    success: Literal[True]


class RevenueFigures(BaseModel):
    revenue: dict[str, JsonDecimal] = Field(description="Per currency: gross minus refunded.")
    gross: dict[str, JsonDecimal]
    refunded: dict[str, JsonDecimal]
    payments: int
    refunds: int
    paying_visitors: int
    visitors: int | None
    conversion_rate: float | None
    revenue_per_visitor: dict[str, JsonDecimal] | None


class RevenueRow(RevenueFigures):
    key: str | None = Field(description="The group's value (a day is YYYY-MM-DD).")
    unattributed: bool


class RevenueReport(BaseModel):
    success: Literal[True]
    website_id: uuid.UUID
    from_: date = Field(alias="from")
    to: date
    timezone: str
    group_by: Literal[
        "source", "medium", "campaign", "channel", "landing_page", "confidence", "day"
    ]
    currencies: list[str]
    rows: list[RevenueRow]
    totals: RevenueFigures


class RecentPayments(BaseModel):
    success: Literal[True]
    payments: list[PaymentWithEvidence]
    next_cursor: None


class WebsiteSummary(BaseModel):
    id: uuid.UUID
    name: str
    domains: list[str]
    timezone: str


class WebsiteList(BaseModel):
    success: Literal[True]
    websites: list[WebsiteSummary]


class ReplayResponse(BaseModel):
    success: Literal[True]
    dry_run: bool
    matched: int = Field(description="Payments the filter selected.")
    queued: int = Field(description="Payments put back in the attribution queue.")
    unpublished: int = Field(description="Marked pending but not sent; the sweeper sends them.")


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="`ok`, or why the check failed.")
