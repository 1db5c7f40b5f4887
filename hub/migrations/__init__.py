"""The store's schema migrations (Alembic): what to do with a database, and doing it.

`plan` is pure: from what a database holds (its Alembic revision, or the `meta.schema_version`
of a store written before Alembic) it decides to create, upgrade, leave alone or refuse.
`upgrade` carries the plan out on an engine, calling `before_upgrade` first so that a backup
exists before any table of the family's data is touched.

Alembic itself (9 MB and 0.2 s of imports) is loaded only for an upgrade: every other start
reads and writes its version table directly, the one row Alembic keeps there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

HERE = Path(__file__).parent

# The revisions in versions/, oldest first. Written out so that a start needs no Alembic; a
# test holds it equal to the chain Alembic reads from the scripts.
REVISIONS = ("0001", "0002")

# Alembic's own version table, as it creates it (`alembic_version`, primary key `<table>_pkc`),
# so that a store stamped here is one Alembic upgrades later like any other.
VERSION_TABLE = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)

# Stores written before Alembic recorded only meta.schema_version: the revision each one is.
LEGACY_REVISIONS = {"1": "0001"}


class MigrationRefused(Exception):
    """The database cannot be used by this hub as it is (newer, unknown, or an upgrade failed)."""


@dataclass(frozen=True, slots=True)
class Found:
    """What a database holds, as far as its schema goes."""

    revision: str | None  # the Alembic revision, if any
    legacy_version: str | None  # meta.schema_version of a pre-Alembic store
    has_tables: bool  # any of the hub's tables exist


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with a database: its revision now (None: none) and the revisions to apply."""

    action: Literal["create", "upgrade", "current"]
    start: str | None
    steps: tuple[str, ...] = ()


def alembic_config() -> AlembicConfig:
    """The Alembic configuration of the store's migrations (no alembic.ini needed)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def head() -> str:
    """The newest revision this hub knows."""
    return REVISIONS[-1]


def known_revisions() -> list[str]:
    """Every revision this hub knows, oldest first."""
    return list(REVISIONS)


def plan(found: Found, known: Collection[str], newest: str) -> Plan:
    """Decide what to do with a database; MigrationRefused when this hub must not touch it."""
    order = list(known)
    start = found.revision
    if start is None and found.legacy_version is not None:
        start = LEGACY_REVISIONS.get(found.legacy_version)
        if start is None:
            raise MigrationRefused(
                f"the database has schema version {found.legacy_version}, which this hub "
                f"(schema {newest}) does not know: it was written by a newer hub. Install that "
                "version again, or restore a backup taken before the upgrade (hub restore FILE)."
            )
    if start is None:
        if found.has_tables:
            raise MigrationRefused(
                "the database has tables but no schema version: it is not a hub store, or one "
                "damaged by hand; restore a backup (hub restore FILE) or point store.url elsewhere"
            )
        return Plan("create", None)
    if start not in order:
        raise MigrationRefused(
            f"the database is at schema revision {start}, newer than this hub knows (up to {newest}): "
            "it was written by a newer hub. A downgrade is refused rather than risk the family's data: "
            "install the newer hub again, or restore a backup taken before that upgrade (hub restore FILE)."
        )
    steps = tuple(order[order.index(start) + 1 :])
    return Plan("upgrade" if steps else "current", start, steps)


def inspect(conn: Connection, tables: Collection[str]) -> Found:
    """Read what a database holds: revision, legacy version, whether hub tables exist."""
    names = set(sa.inspect(conn).get_table_names())
    revision = None
    if VERSION_TABLE.name in names:
        rows = conn.execute(sa.select(VERSION_TABLE.c.version_num)).scalars().all()
        if len(rows) > 1:  # Alembic's branches: this hub's chain has none
            raise MigrationRefused(
                f"the database records several schema revisions at once ({', '.join(sorted(rows))}): "
                "it was changed by another tool or by hand; restore a backup (hub restore FILE)"
            )
        revision = rows[0] if rows else None
    legacy = None
    if revision is None and "meta" in names:
        legacy = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
    return Found(revision, None if legacy is None else str(legacy), bool(names & set(tables)))


def stamp(conn: Connection, revision: str) -> None:
    """Record a revision as applied without running it (a database created from the models)."""
    VERSION_TABLE.create(conn, checkfirst=True)
    conn.execute(sa.delete(VERSION_TABLE))
    conn.execute(sa.insert(VERSION_TABLE).values(version_num=revision))


def upgrade(
    engine: Engine,
    create: Callable[[Connection], None],
    tables: Collection[str],
    before_upgrade: Callable[[str, str], object] | None = None,
) -> Plan:
    """Bring the database to the head revision: create it, or back it up then migrate it.

    `create` makes the current tables on an empty database (then stamped at head);
    `before_upgrade(start, head)` runs before any migration and may raise to stop it.
    """
    newest = head()
    with engine.begin() as conn:
        found = inspect(conn, tables)
    todo = plan(found, known_revisions(), newest)
    if todo.action == "create":
        with engine.begin() as conn:
            create(conn)
            stamp(conn, newest)
        return todo
    if todo.action == "current":
        return todo
    assert todo.start is not None
    if before_upgrade is not None:
        try:
            before_upgrade(todo.start, newest)
        except Exception as exc:  # disk full, unwritable folder …: whatever it is, do not migrate
            raise MigrationRefused(
                f"the backup before upgrading the database from schema {todo.start} to {newest} failed, "
                f"so nothing was changed: {type(exc).__name__}: {exc}"
            ) from exc
    log.warning("store: upgrading the database schema %s -> %s (%s)", todo.start, newest, ", ".join(todo.steps))
    from alembic import command

    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            if found.revision is None:
                stamp(conn, todo.start)  # a pre-Alembic store: record what it is
            command.upgrade(cfg, newest)
    except sa.exc.SQLAlchemyError as exc:
        raise MigrationRefused(
            f"the upgrade of the database from schema {todo.start} to {newest} failed and may be "
            f"half done: {exc}. Restore the backup taken just before it (hub restore FILE), then start again."
        ) from exc
    return todo
