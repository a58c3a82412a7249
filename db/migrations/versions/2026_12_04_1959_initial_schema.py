"""initial schema

Revision ID: d95321d0f1ac
Revises:
Create Date: 2026-12-04 19:59:48.574169
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import db.base

revision: str = "d95321d0f1ac"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=24), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "websites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "domains",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("lookback_days", sa.Integer(), nullable=False),
        sa.Column("attribution_model", sa.String(length=32), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "attribution_model IN ('last_non_direct', 'first_touch', 'last_touch')",
            name=op.f("ck_websites_attribution_model_known"),
        ),
        sa.CheckConstraint(
            "lookback_days BETWEEN 1 AND 365", name=op.f("ck_websites_lookback_days_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_websites")),
        sa.UniqueConstraint("public_key", name=op.f("uq_websites_public_key")),
    )
    op.create_table(
        "api_key_websites",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("website_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_websites_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["website_id"],
            ["websites.id"],
            name=op.f("fk_api_key_websites_website_id_websites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "website_id", name=op.f("pk_api_key_websites")),
    )
    with op.batch_alter_table("api_key_websites", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_key_websites_website_id"), ["website_id"], unique=False
        )

    op.create_table(
        "identities",
        sa.Column("website_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("visitor_id", sa.Uuid(), nullable=False),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("first_seen_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["website_id"],
            ["websites.id"],
            name=op.f("fk_identities_website_id_websites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "website_id", "kind", "value_hash", "visitor_id", name=op.f("pk_identities")
        ),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_identities_website_visitor", ["website_id", "visitor_id"], unique=False
        )

    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("website_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=False),
        sa.Column("amount", db.base.ExactDecimal(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("customer_email_hash", sa.String(length=64), nullable=True),
        sa.Column("paid_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("visitor_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attribution_status", sa.String(length=16), nullable=False),
        sa.Column("attribution_confidence", sa.String(length=16), nullable=False),
        sa.Column("attribution_method", sa.String(length=32), nullable=True),
        sa.Column("attribution_model", sa.String(length=32), nullable=True),
        sa.Column("attributed_source", sa.String(length=255), nullable=True),
        sa.Column("attributed_medium", sa.String(length=255), nullable=True),
        sa.Column("attributed_campaign", sa.String(length=255), nullable=True),
        sa.Column("attributed_landing_page", sa.Text(), nullable=True),
        sa.Column("attributed_channel", sa.String(length=64), nullable=True),
        sa.Column("matched_session_id", sa.Uuid(), nullable=True),
        sa.Column("matched_visitor_id", sa.Uuid(), nullable=True),
        sa.Column("attributed_at", db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("enqueued_at", db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attribution_attempts", sa.Integer(), nullable=False),
        sa.Column("attribution_last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "attribution_confidence IN ('pending', 'high', 'medium', 'low', 'unknown')",
            name=op.f("ck_payments_confidence_known"),
        ),
        sa.CheckConstraint(
            "attribution_status IN ('pending', 'attributed', 'failed')",
            name=op.f("ck_payments_attribution_known"),
        ),
        sa.CheckConstraint(
            "status IN ('paid', 'pending', 'failed', 'refunded', 'partially_refunded', 'disputed', 'canceled')",
            name=op.f("ck_payments_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["website_id"],
            ["websites.id"],
            name=op.f("fk_payments_website_id_websites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "website_id",
            "provider",
            "provider_payment_id",
            name=op.f("uq_payments_website_id_provider_provider_payment_id"),
        ),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payments_attribution_queue", ["attribution_status", "enqueued_at"], unique=False
        )
        batch_op.create_index(
            "ix_payments_website_email", ["website_id", "customer_email_hash"], unique=False
        )
        batch_op.create_index("ix_payments_website_paid", ["website_id", "paid_at"], unique=False)
        batch_op.create_index(
            "ix_payments_website_received", ["website_id", "received_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_payments_website_session", ["website_id", "session_id"], unique=False
        )
        batch_op.create_index(
            "ix_payments_website_visitor", ["website_id", "visitor_id"], unique=False
        )

    op.create_table(
        "sessions",
        sa.Column("website_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("visitor_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("landing_url", sa.Text(), nullable=True),
        sa.Column("landing_path", sa.Text(), nullable=True),
        sa.Column("referrer", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("medium", sa.String(length=255), nullable=True),
        sa.Column("campaign", sa.String(length=255), nullable=True),
        sa.Column("term", sa.String(length=255), nullable=True),
        sa.Column("content", sa.String(length=255), nullable=True),
        sa.Column("click_id", sa.String(length=255), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["website_id"],
            ["websites.id"],
            name=op.f("fk_sessions_website_id_websites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("website_id", "id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sessions_website_started", ["website_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_sessions_website_visitor_started",
            ["website_id", "visitor_id", "started_at"],
            unique=False,
        )

    op.create_table(
        "visitors",
        sa.Column("website_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("first_seen_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["website_id"],
            ["websites.id"],
            name=op.f("fk_visitors_website_id_websites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("website_id", "id", name=op.f("pk_visitors")),
    )
    op.create_table(
        "payment_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("previous_status", sa.String(length=32), nullable=True),
        sa.Column("recorded_at", db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_events_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
    )
    with op.batch_alter_table("payment_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_events_payment_id"), ["payment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_events_payment_id"))

    op.drop_table("payment_events")
    op.drop_table("visitors")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_website_visitor_started")
        batch_op.drop_index("ix_sessions_website_started")

    op.drop_table("sessions")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_website_visitor")
        batch_op.drop_index("ix_payments_website_session")
        batch_op.drop_index("ix_payments_website_received")
        batch_op.drop_index("ix_payments_website_paid")
        batch_op.drop_index("ix_payments_website_email")
        batch_op.drop_index("ix_payments_attribution_queue")

    op.drop_table("payments")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index("ix_identities_website_visitor")

    op.drop_table("identities")
    with op.batch_alter_table("api_key_websites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_websites_website_id"))

    op.drop_table("api_key_websites")
    op.drop_table("websites")
    op.drop_table("api_keys")
