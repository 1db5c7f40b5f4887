"""Index alerts by state: start-up, `hub status` and the TUI ask for the open ones.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ix_alert_state and record schema version 2 in meta."""
    op.create_index("ix_alert_state", "alert", ["state"])
    # Hubs from before Alembic read only meta.schema_version: bumping it makes an old hub
    # started on this database refuse it ("schema version 2, this hub knows 1") instead of using it.
    meta = sa.table("meta", sa.column("key", sa.String()), sa.column("value", sa.String()))
    op.execute(meta.update().where(meta.c.key == "schema_version").values(value="2"))


def downgrade() -> None:
    """Refused: the hub never downgrades a store; restore the backup taken before the upgrade."""
    raise NotImplementedError("restore the backup taken before the upgrade")
