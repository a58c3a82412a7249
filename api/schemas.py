"""Request and response bodies. The OpenAPI document is generated from these."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
)

from api.currencies import ISO_4217
from db.models import PAYMENT_STATUSES

EARLIEST_PAID_AT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)  # providers' clocks may run ahead of ours
# A JSON number is parsed as a double; up to 15 significant digits it is exact.
MAX_AMOUNT_DIGITS = 15

PaymentStatus = Literal[
    "paid", "pending", "failed", "refunded", "partially_refunded", "disputed", "canceled"
]
Confidence = Literal["pending", "high", "medium", "low", "unknown"]
AttributionStatus = Literal["pending", "attributed", "failed"]
assert set(PaymentStatus.__args__) == set(PAYMENT_STATUSES)  # type: ignore[attr-defined]


class ManualPayment(BaseModel):
    """POST /api/payments/manual: a payment from any provider. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    website_id: uuid.UUID = Field(description="Website ID from the Metrivo dashboard.")
    amount: Decimal = Field(
        ge=0,
        allow_inf_nan=False,
        description="Amount in your reporting unit (e.g. 49 or 4900), stored exactly.",
    )
    currency: str = Field(description="Three-letter ISO 4217 code, any case; stored uppercase.")
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
    metadata: dict[str, Any] | None = None

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
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if not EARLIEST_PAID_AT <= value <= datetime.now(UTC) + MAX_CLOCK_AHEAD:
            raise ValueError("paid_at must be after 2000-01-01 and not in the future")
        return value


class PaymentView(BaseModel):
    """A payment with its current attribution."""

    id: uuid.UUID
    website_id: uuid.UUID
    amount: Decimal
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


class PaymentDetail(PaymentView):
    received_at: AwareDatetime
    evidence: Evidence
    attribution_attempts: int
    attribution_last_error: str | None
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
    url: str = Field(min_length=1, max_length=4096)
    referrer: str | None = Field(default=None, max_length=4096)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    properties: dict[str, Any] | None = None

    _url_is_http = field_validator("url")(_http_url)

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


class Accepted(BaseModel):
    success: Literal[True]
    ignored: str | None = Field(default=None, description="Why nothing was recorded, if so.")
