"""Covering indexes for revenue reports.

Revision ID: 5b1f0c7e2a91
Revises: d95321d0f1ac
Create Date: 2026-12-04 21:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b1f0c7e2a91"
down_revision: str | None = "d95321d0f1ac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSION_COLUMNS = ["visitor_id", "source", "medium", "campaign", "channel", "landing_path"]
PAYMENT_COLUMNS = [
    "status",
    "currency",
    "amount",
    "attribution_confidence",
    "attributed_source",
    "attributed_medium",
    "attributed_campaign",
    "attributed_channel",
    "attributed_landing_page",
    "matched_visitor_id",
]


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_website_started")
        batch.create_index(
            "ix_sessions_report", ["website_id", "started_at"], postgresql_include=SESSION_COLUMNS
        )
    with op.batch_alter_table("payments") as batch:
        batch.drop_index("ix_payments_website_paid")
        batch.create_index(
            "ix_payments_report", ["website_id", "paid_at"], postgresql_include=PAYMENT_COLUMNS
        )


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_index("ix_payments_report")
        batch.create_index("ix_payments_website_paid", ["website_id", "paid_at"])
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_report")
        batch.create_index("ix_sessions_website_started", ["website_id", "started_at"])
