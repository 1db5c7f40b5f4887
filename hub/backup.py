"""One-file backups of a home (configuration, database snapshot, hub version), restore and rotation.

A backup is a gzipped tar: `manifest.json`, `config/` (devices.yaml, the files it names and the
folders `hub install` makes beside it) and the database, either `hub.db` (a SQLite snapshot
by VACUUM INTO: consistent while the hub writes, since it is one read transaction in WAL mode)
or `tables.jsonl` (a logical export of every table, for PostgreSQL; portable across
versions and backends). It is written under a temporary name and renamed, so a backup that
exists is whole.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub import __version__, migrations
from hub.config import Config
from hub.store import TABLES, UTCDateTime, create_current, export_row

log = logging.getLogger(__name__)

FORMAT = 1
SUFFIX = ".tar.gz"
# eldercare-hub-<home>-<UTC stamp>-<reason>.tar.gz; the stamp sorts by time.
NAME = re.compile(r"^eldercare-hub-(?P<home>.+)-(?P<stamp>\d{8}T\d{6}(?:\d{6})?Z)-(?P<reason>[a-z-]+)\.tar\.gz$")
# Folders `hub install` keeps beside devices.yaml; backed up whole so a new box gets the same logins.
INSTALL_DIRS = ("secrets", "tls", "mosquitto")
MAX_CONFIG_FILE = 1024 * 1024
MAIN_CONFIG = "devices.yaml"
LAST = "last.json"  # the outcome of the latest backup attempt, read by `hub status`


class BackupError(Exception):
    """A backup or restore that could not be done, with what to do about it."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds."""

    created_at: datetime
    hub_version: str
    home_id: str
    reason: str
    database: str  # "hub.db" (SQLite snapshot) or "tables.jsonl" (logical export)
    revision: str | None
    rows: dict[str, int] = field(default_factory=dict)
    config_files: tuple[str, ...] = ()
    format: int = FORMAT

    def to_json(self) -> str:
        """The manifest as JSON text."""
        return json.dumps(
            {
                "format": self.format,
                "created_at": self.created_at.isoformat(),
                "hub_version": self.hub_version,
                "home_id": self.home_id,
                "reason": self.reason,
                "database": self.database,
                "revision": self.revision,
                "rows": self.rows,
                "config_files": list(self.config_files),
            },
            indent=2,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; BackupError if it is not one this hub can read."""
        try:
            data = json.loads(text)
            if data["format"] > FORMAT:
                raise BackupError(f"backup format {data['format']} is newer than this hub reads ({FORMAT})")
            return cls(
                created_at=datetime.fromisoformat(data["created_at"]),
                hub_version=str(data["hub_version"]),
                home_id=str(data["home_id"]),
                reason=str(data["reason"]),
                database=str(data["database"]),
                revision=data.get("revision"),
                rows={str(k): int(v) for k, v in data.get("rows", {}).items()},
                config_files=tuple(data.get("config_files", ())),
                format=int(data["format"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"not a hub backup manifest: {type(exc).__name__}: {exc}") from None


def backup_name(home_id: str, when: datetime, reason: str) -> str:
    """The file name of a backup taken at `when` (UTC) for `reason`."""
    return f"eldercare-hub-{home_id}-{when.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{reason}{SUFFIX}"


def list_backups(folder: Path, reason: str | None = None) -> list[Path]:
    """Backups in a folder, oldest first (by the time in their names); only `reason` ones if given."""
    if not folder.is_dir():
        return []
    found = [(m["stamp"], p) for p in folder.iterdir() if (m := NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found) if reason is None or NAME.match(p.name)["reason"] == reason]  # type: ignore[index]


def backup_time(path: Path) -> datetime | None:
    """When a backup was taken, from its name."""
    match = NAME.match(path.name)
    if match is None:
        return None
    stamp = match["stamp"]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ" if len(stamp) > 16 else "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def newest_backup(folder: Path) -> Path | None:
    """The most recent backup in a folder, if any."""
    backups = list_backups(folder)
    return backups[-1] if backups else None


def rotation(backups: list[Path], keep: int) -> list[Path]:
    """Which of these backups (oldest first) to delete so that `keep` remain."""
    return backups[: max(0, len(backups) - keep)]


def config_files(config_path: Path, config: Config | None) -> dict[str, Path]:
    """Files to back up, by their path relative to the config folder."""
    base = config_path.parent
    files: dict[str, Path] = {MAIN_CONFIG: config_path}  # whatever its name on this box
    if config is not None:
        for path in (config.mqtt.password_file, config.mqtt.ca_file, config.mqtt.cert_file, config.mqtt.key_file):
            if path is not None and path.is_relative_to(base.absolute()):
                files[str(path.relative_to(base.absolute()))] = path
    for folder in INSTALL_DIRS:
        root = base / folder
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.stat().st_size <= MAX_CONFIG_FILE:
                    files[str(path.relative_to(base))] = path
    return files


def _sqlite_file(url: sa.URL) -> Path | None:
    return (
        Path(url.database)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        else None
    )


def _revision(conn: Connection) -> str | None:
    return migrations.inspect(conn, TABLES).revision


def _engine(url: str) -> Engine:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        def busy(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=5000")

        sa.event.listen(engine, "connect", busy)
    return engine


def _counts(conn: Connection) -> tuple[str | None, dict[str, int]]:
    count = sa.select(sa.func.count())
    return _revision(conn), {n: int(conn.execute(count.select_from(t)).scalar_one()) for n, t in TABLES.items()}


def _snapshot(url: str, work: Path) -> tuple[str, str | None, dict[str, int]]:
    """Write the database into `work`: (member name, revision, rows per table), all of one moment."""
    engine = _engine(url)
    try:
        if engine.dialect.name == "sqlite":
            target = work / "hub.db"
            with engine.connect() as conn:
                # VACUUM INTO reads in one transaction: a consistent copy while the hub's writer goes on.
                conn.exec_driver_sql("VACUUM INTO ?", (str(target),))
            copy = sa.create_engine(f"sqlite:///{target}")
            try:
                with copy.connect() as conn:
                    revision, rows = _counts(conn)  # of the copy itself, not of the live file
            finally:
                copy.dispose()
            return "hub.db", revision, rows
        target = work / "tables.jsonl"
        # One REPEATABLE READ transaction: every table as of the same moment.
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            revision, rows = _counts(conn)
            with target.open("w", encoding="utf-8") as out:
                for name, table in TABLES.items():
                    query = sa.select(table).order_by(*table.primary_key.columns)
                    for row in conn.execution_options(yield_per=1000).execute(query).mappings():
                        out.write(json.dumps(export_row(name, row), ensure_ascii=False, default=str) + "\n")
        return "tables.jsonl", revision, rows
    except sa.exc.SQLAlchemyError as exc:
        raise BackupError(f"cannot snapshot the database: {exc}") from exc
    finally:
        engine.dispose()


def create_backup(
    store_url: str,
    config_path: Path | None,
    config: Config | None,
    folder: Path,
    *,
    reason: str = "manual",
    now: datetime | None = None,
) -> Path:
    """Write one backup file into `folder` and return its path; BackupError if it cannot."""
    when = now or datetime.now(UTC)
    home = config.home.id if config is not None else "home"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / backup_name(home, when, reason)
    files = config_files(config_path, config) if config_path is not None and config_path.is_file() else {}
    try:
        with tempfile.TemporaryDirectory(dir=folder, prefix=".backup-") as tmp:
            work = Path(tmp)
            member, revision, rows = _snapshot(store_url, work)
            manifest = Manifest(when, __version__, home, reason, member, revision, rows, tuple(sorted(files)))
            partial = work / "partial.tar.gz"
            with tarfile.open(partial, "w:gz") as tar:
                _add_bytes(tar, "manifest.json", manifest.to_json().encode())
                for rel, path in sorted(files.items()):
                    tar.add(path, arcname=f"config/{rel}", recursive=False)
                tar.add(work / member, arcname=member)
            os.chmod(partial, 0o600)  # it holds broker passwords and the family's history
            os.replace(partial, final)
    except OSError as exc:
        raise BackupError(f"cannot write a backup in {folder}: {exc.strerror or exc}") from exc
    return final


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def record_outcome(folder: Path, when: datetime, file: Path | None, error: str | None) -> None:
    """Remember the latest attempt for `hub status` (a failed write is logged, never raised)."""
    data = {"at": when.isoformat(), "ok": error is None, "file": str(file) if file else None, "error": error}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{LAST}.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, folder / LAST)
    except OSError as exc:
        log.error("backup: cannot record the outcome in %s: %s", folder, exc)


def last_outcome(folder: Path) -> dict[str, Any] | None:
    """The latest recorded attempt, or None."""
    try:
        data = json.loads((folder / LAST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def rotate(folder: Path, reason: str, keep: int) -> list[Path]:
    """Delete the oldest `reason` backups beyond `keep`; the deleted paths."""
    doomed = rotation(list_backups(folder, reason), keep)
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


# ---- restore ------------------------------------------------------------------------


def read_manifest(archive: Path) -> Manifest:
    """The manifest of a backup file; BackupError if it is not a readable hub backup."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise BackupError(f"{archive}: no manifest.json")
            return Manifest.from_json(member.read().decode("utf-8"))
    except (OSError, tarfile.TarError, KeyError, UnicodeDecodeError) as exc:
        raise BackupError(f"{archive} is not a readable hub backup: {exc}") from exc


def _safe_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in tar.getmembers():
        if member.isfile() and not member.name.startswith("/") and ".." not in Path(member.name).parts:
            yield member


def _parse_row(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-exported row back in column types (UTC datetimes from ISO text)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name == "table" or name not in table.c:
            continue
        is_time = isinstance(table.c[name].type, UTCDateTime) and isinstance(value, str)
        out[name] = datetime.fromisoformat(value) if is_time else value
    return out


def _rows_from_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            yield str(row["table"]), row


def _rows_from_sqlite(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            for name, table in TABLES.items():
                if name == "meta":
                    continue
                for row in conn.execute(sa.select(table)).mappings():
                    yield name, dict(row)
    finally:
        engine.dispose()


def _load_rows(engine: Engine, rows: Iterator[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """Insert restored rows into an empty, current store; rows per table."""
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for name, row in rows:
            table = TABLES.get(name)
            if table is None or name == "meta":
                continue  # meta is the target's own bookkeeping
            conn.execute(sa.insert(table), [_parse_row(table, row)])
            counts[name] = counts.get(name, 0) + 1
        if conn.dialect.name == "postgresql":
            # Explicit ids were inserted: move each id sequence past them.
            for name, table in TABLES.items():
                key = next(iter(table.primary_key.columns))
                if isinstance(key.type, sa.Integer):
                    conn.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{name}', '{key.name}'), "
                            f"COALESCE((SELECT MAX({key.name}) FROM {name}), 0) + 1, false)"
                        )
                    )
    return counts


@dataclass
class Restored:
    """What a restore wrote."""

    database: str
    config_files: list[Path]
    kept_aside: list[Path]
    rows: dict[str, int]


def _aside(path: Path, stamp: str, kept: list[Path]) -> None:
    if path.exists():
        target = path.with_name(f"{path.name}.before-restore-{stamp}")
        os.replace(path, target)
        kept.append(target)


def restore_backup(archive: Path, store_url: str, config_path: Path) -> Restored:
    """Bring this box to the backup's state: config files beside `config_path`, then the database.

    Files already there are kept aside as `<name>.before-restore-<time>`, never overwritten.
    The hub must be stopped. A SQLite snapshot is put in place as is (the hub upgrades its
    schema on start, after a backup); otherwise the rows are loaded into an empty store.
    """
    manifest = read_manifest(archive)
    if manifest.revision is not None and manifest.revision not in migrations.known_revisions():
        raise BackupError(
            f"{archive} holds database schema {manifest.revision}, written by hub {manifest.hub_version}, "
            f"newer than this hub ({__version__}, schema {migrations.head()}): install that version to restore it"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept: list[Path] = []
    written: list[Path] = []
    url = sa.make_url(store_url)
    target_db = _sqlite_file(url)
    try:
        with tarfile.open(archive, "r:gz") as tar, tempfile.TemporaryDirectory(prefix="hub-restore-") as tmp:
            work = Path(tmp)
            members = {m.name: m for m in _safe_members(tar)}
            if manifest.database not in members:
                raise BackupError(f"{archive} has no {manifest.database}")
            tar.extract(members[manifest.database], work, filter="data")
            snapshot = work / manifest.database
            for name, member in members.items():
                if not name.startswith("config/"):
                    continue
                rel = name.removeprefix("config/")
                dest = config_path if rel == MAIN_CONFIG else config_path.parent / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                _aside(dest, stamp, kept)
                source = tar.extractfile(member)
                assert source is not None  # a regular file, as _safe_members checked
                with source, open(dest, "wb") as out:
                    shutil.copyfileobj(source, out)
                os.chmod(dest, 0o600 if "secrets" in dest.parts or dest.suffix == ".key" else 0o640)
                written.append(dest)
            if target_db is not None and manifest.database == "hub.db":
                target_db.parent.mkdir(parents=True, exist_ok=True)
                for suffix in ("", "-wal", "-shm"):
                    _aside(Path(f"{target_db}{suffix}"), stamp, kept)
                shutil.copyfile(snapshot, target_db)
                return Restored(str(target_db), written, kept, dict(manifest.rows))
            rows = _rows_from_sqlite(snapshot) if manifest.database == "hub.db" else _rows_from_jsonl(snapshot)
            if target_db is not None:
                for suffix in ("", "-wal", "-shm"):
                    _aside(Path(f"{target_db}{suffix}"), stamp, kept)
            return Restored(url.render_as_string(), written, kept, _load_into_empty(store_url, rows))
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot restore {archive}: {exc}") from exc


def _load_into_empty(store_url: str, rows: Iterator[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    engine = _engine(store_url)
    try:
        migrations.upgrade(engine, create_current, list(TABLES))  # today's schema on an empty database
        with engine.connect() as conn:
            count = sa.select(sa.func.count())
            present = {
                n: int(conn.execute(count.select_from(t)).scalar_one()) for n, t in TABLES.items() if n != "meta"
            }
        if any(present.values()):
            busy = ", ".join(f"{k} {v}" for k, v in present.items() if v)
            raise BackupError(f"the target database is not empty ({busy}): restore into an empty one")
        return _load_rows(engine, rows)
    except (migrations.MigrationRefused, sa.exc.SQLAlchemyError) as exc:
        raise BackupError(f"cannot restore into {sa.make_url(store_url).render_as_string()}: {exc}") from exc
    finally:
        engine.dispose()
