"""The store as hub 0.1.0 created it (schema version 1).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types of that time: a migration never imports today's models.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the seven tables of schema version 1."""
    op.create_table(
        "device",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("description", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("room", sa.String(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "state",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
    )
    op.create_index("ix_state_device_ts", "state", ["device_id", "ts"])
    op.create_table(
        "event",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("device_id", sa.String(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_event_ts", "event", ["ts"])
    op.create_table(
        "alert",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("room", sa.String(), nullable=True),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
    )
    op.create_table(
        "alert_audit",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("transition", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
    )
    op.create_index("ix_alert_audit_alert_ts", "alert_audit", ["alert_id", "ts"])
    op.create_table(
        "rule_timer",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    """Refused: the hub never downgrades a store; restore the backup taken before the upgrade."""
    raise NotImplementedError("restore the backup taken before the upgrade")
