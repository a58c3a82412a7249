"""Sessions remember when the visitor's previous session started, so reports count
visitors without a DISTINCT over every session of the range.

Existing sessions start out unlinked; the linker (a beat task, or `metrivo links
backfill`) fills them in. Reports stay exact meanwhile, only slower.

Revision ID: 7c4e2a9d3b10
Revises: 5b1f0c7e2a91
Create Date: 2026-12-04 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = "7c4e2a9d3b10"
down_revision: str | None = "5b1f0c7e2a91"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREVIOUS = [
    "previous_started_at",
    "previous_source_started_at",
    "previous_medium_started_at",
    "previous_campaign_started_at",
    "previous_channel_started_at",
    "previous_landing_started_at",
]
REPORT_COLUMNS = ["visitor_id", "source", "medium", "campaign", "channel", "landing_path"]


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("linked", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    for name in PREVIOUS:
        op.add_column(
            "sessions", sa.Column(name, db.base.UTCDateTime(timezone=True), nullable=True)
        )
    op.drop_index("ix_sessions_report", table_name="sessions")
    op.create_index(
        "ix_sessions_report",
        "sessions",
        ["website_id", "started_at"],
        postgresql_include=[*REPORT_COLUMNS, "linked", *PREVIOUS],
    )
    op.create_index(
        "ix_sessions_unlinked",
        "sessions",
        ["started_at", "website_id"],
        postgresql_where=sa.text("NOT linked"),
        sqlite_where=sa.text("NOT linked"),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_unlinked", table_name="sessions")
    op.drop_index("ix_sessions_report", table_name="sessions")
    op.create_index(
        "ix_sessions_report",
        "sessions",
        ["website_id", "started_at"],
        postgresql_include=REPORT_COLUMNS,
    )
    with op.batch_alter_table("sessions") as batch:
        for name in reversed(PREVIOUS):
            batch.drop_column(name)
        batch.drop_column("linked")
