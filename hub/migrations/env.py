"""Alembic environment: runs the store's migrations on the connection the hub hands over."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

# The hub passes its own open connection (hub.migrations.upgrade); the alembic command line
# (`alembic -x url=sqlite:///hub.db upgrade head`, for developers) gives a URL instead.
connection = context.config.attributes.get("connection")
if connection is None:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=sqlite:///path/hub.db")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    # render_as_batch: SQLite can only ALTER a table by copying it, which batch mode does.
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
