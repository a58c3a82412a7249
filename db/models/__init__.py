"""The tables of Metrivo, one module per part of the product."""

from db.models.key import SCOPES, ApiKey, ApiKeyWebsite
from db.models.payment import (
    ATTRIBUTION_CONFIDENCES,
    ATTRIBUTION_STATUSES,
    PAYMENT_STATUSES,
    Payment,
    PaymentEvent,
)
from db.models.tracking import Identity, Visitor, VisitSession
from db.models.website import ATTRIBUTION_MODELS, Website

__all__ = [
    "ATTRIBUTION_CONFIDENCES",
    "ATTRIBUTION_MODELS",
    "ATTRIBUTION_STATUSES",
    "PAYMENT_STATUSES",
    "SCOPES",
    "ApiKey",
    "ApiKeyWebsite",
    "Identity",
    "Payment",
    "PaymentEvent",
    "VisitSession",
    "Visitor",
    "Website",
]
