"""Upgrades that keep the family's data: store migrations, devices.yaml versions, backups and restore."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from hub import migrations
from hub.backup import (
    BackupError,
    create_backup,
    list_backups,
    newest_backup,
    read_manifest,
    restore_backup,
    rotation,
)
from hub.config import ConfigError
from hub.config_upgrade import load_upgrading, upgrade_text
from hub.store import TABLES, Store, StoreError
from tests.hubctl import WAIT, config_text, make_config, running_hub

DATA = Path(__file__).parent / "data"
V1_SQL = DATA / "store" / "hub-v1.sql"
V0_YAML = DATA / "upgrade" / "devices-v0.yaml"


def v1_database(path: Path) -> None:
    """A store as hub 0.1.0 wrote it, from the SQL dump kept as a fixture."""
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SQL.read_text())


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every hub table except the bookkeeping, in key order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for name, t in TABLES.items()
                if name != "meta"
            }
    finally:
        engine.dispose()


# ---- the migration plan (pure) ---------------------------------------------------------

KNOWN = ["0001", "0002"]


@pytest.mark.parametrize(
    ("found", "action", "start", "steps"),
    [
        (migrations.Found(None, None, False), "create", None, ()),
        (migrations.Found(None, "1", True), "upgrade", "0001", ("0002",)),
        (migrations.Found("0001", None, True), "upgrade", "0001", ("0002",)),
        (migrations.Found("0002", "2", True), "current", "0002", ()),
    ],
)
def test_plan(found: migrations.Found, action: str, start: str | None, steps: tuple[str, ...]) -> None:
    plan = migrations.plan(found, KNOWN, "0002")
    assert (plan.action, plan.start, plan.steps) == (action, start, steps)


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (migrations.Found("0009", None, True), "newer than this hub knows"),
        (migrations.Found(None, "7", True), "written by a newer hub"),
        (migrations.Found(None, None, True), "no schema version"),
    ],
)
def test_plan_refuses(found: migrations.Found, words: str) -> None:
    with pytest.raises(migrations.MigrationRefused, match=words):
        migrations.plan(found, KNOWN, "0002")


def test_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    # An empty database gets the tables from the models; an old one gets them from the
    # migrations. Both must be the same schema, or an upgraded home differs from a new one.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    cfg = migrations.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        from alembic import command

        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    ours = [d for d in diff if not (isinstance(d, tuple) and d[0] == "add_table" and d[1].name not in TABLES)]
    assert ours == [], f"add a migration in hub/migrations/versions for: {ours}"


def test_the_written_out_chain_is_the_one_alembic_reads_from_the_scripts() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrations.alembic_config())
    assert migrations.known_revisions() == [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert migrations.head() == scripts.get_current_head()


def test_a_store_the_hub_created_without_alembic_is_at_head_for_alembic(tmp_path: Path) -> None:
    # Start-up stamps a new store itself; Alembic must read that stamp as its own, or the
    # first real upgrade would start from nothing.
    db = tmp_path / "hub.db"
    code = (
        "import sys; from hub.store import Store; Store(sys.argv[1]).open(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    out = subprocess.run([sys.executable, "-c", code, f"sqlite:///{db}"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", "a new store loaded Alembic"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == migrations.head()
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == []


# ---- the store at start --------------------------------------------------------------
# ---- the store at start --------------------------------------------------------------


async def test_v1_database_is_backed_up_then_migrated_with_data_intact(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    v1_database(db)
    url = f"sqlite:///{db}"
    before = rows(url)
    assert before["state"]
    assert before["alert"]
    assert before["alert_audit"]
    assert before["device"]
    backups: list[tuple[str, str]] = []
    store = Store(url, before_upgrade=lambda start, head: backups.append((start, head)))
    store.open()
    try:
        assert backups == [("0001", migrations.head())]
        assert rows(url) == before
        with store.engine.connect() as conn:
            assert migrations.inspect(conn, TABLES).revision == migrations.head()
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("alert")}
            assert "ix_alert_state" in indexes
            version = conn.execute(sa.text("SELECT value FROM meta WHERE key='schema_version'")).scalar()
        assert version == "2"
        assert [d.id for d in store.load_devices()] == ["z2m-0x00158d0001a2b3c4"]
        assert [a["id"] for a in store.load_open_alerts()] == ["a-1", "a-2"]
    finally:
        await store.close()
    # Opened again: nothing left to do, no second backup.
    again = Store(url, before_upgrade=lambda start, head: backups.append((start, head)))
    again.open()
    await again.close()
    assert len(backups) == 1


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        ("UPDATE alembic_version SET version_num = '0099'", r"newer than this hub knows .* downgrade is refused"),
        # An Alembic branch: not this hub's.
        ("INSERT INTO alembic_version VALUES ('0001')", r"several schema revisions at once \(0001, 0002\)"),
    ],
)
async def test_a_database_of_a_schema_this_hub_cannot_know_is_refused_not_touched(
    tmp_path: Path, tamper: str, words: str
) -> None:
    db = tmp_path / "hub.db"
    store = Store(f"sqlite:///{db}")
    store.open()
    await store.close()
    with sqlite3.connect(db) as conn:
        conn.execute(tamper)
    before = db.read_bytes()
    with pytest.raises(StoreError, match=words):
        Store(f"sqlite:///{db}").open()
    assert db.read_bytes() == before


async def test_interrupted_upgrade_is_refused_and_the_backup_restores_it(tmp_path: Path) -> None:
    data, cfg_dir = tmp_path / "data", tmp_path / "etc"
    data.mkdir()
    cfg_dir.mkdir()
    cfg = cfg_dir / "devices.yaml"
    cfg.write_text(config_text(None))
    config = make_config(cfg.read_text(), cfg_dir)
    db = data / "hub.db"
    v1_database(db)
    url = f"sqlite:///{db}"
    before = rows(url)

    def backup_then_power_cut(start: str, head: str) -> None:
        create_backup(url, cfg, config, data / "backups", reason="pre-upgrade")
        # What a power cut in the middle of 0002 leaves (SQLite DDL outside a transaction
        # here): its index made, the revision not recorded. The next start trips over it.
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE INDEX ix_alert_state ON alert (state)")

    with pytest.raises(StoreError, match=r"(?s)failed and may be half done.*Restore the backup"):
        Store(url, before_upgrade=backup_then_power_cut).open()
    with pytest.raises(StoreError, match=r"(?s)already exists.*Restore the backup"):
        Store(url).open()  # every later start refuses too, rather than run on a half-made schema
    saved = newest_backup(data / "backups")
    assert saved is not None
    assert read_manifest(saved).revision is None
    done = restore_backup(saved, url, cfg)
    assert db.with_name("hub.db.before-restore-" + done.kept_aside[0].name.rsplit("-", 1)[1]).exists()
    store = Store(url)
    store.open()  # the restored v1 store upgrades cleanly now
    await store.close()
    assert rows(url) == before


def test_corrupt_database_refuses_to_start_naming_the_newest_backup(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "backups").mkdir(parents=True)
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(config_text("mqtt://127.0.0.1:1"))
    for when in ("20260101T000000Z", "20260301T000000Z"):
        (data / "backups" / f"eldercare-hub-x-{when}-daily.tar.gz").write_bytes(b"")
    (data / "hub.db").write_bytes(b"this is not SQLite, a card that lost power" * 100)
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "-c", str(cfg), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1, out.stderr
    assert "file is not a database" in out.stderr
    assert "hub restore " + str(data / "backups" / "eldercare-hub-x-20260301T000000Z-daily.tar.gz") in out.stderr


# ---- devices.yaml versions -----------------------------------------------------------


def test_v0_devices_yaml_is_upgraded_and_the_original_kept(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    shutil.copy(V0_YAML, path)
    config, notes = load_upgrading(path)
    assert (tmp_path / "devices.yaml.v0.bak").read_bytes() == V0_YAML.read_bytes()
    assert "upgraded from version 0 to 1" in notes[0]
    assert config.version == 1
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"
    assert config.mqtt.username == "hub"
    assert config.home.timezone == "Asia/Shanghai"
    assert [(c.id, c.tier) for c in config.people.caregivers] == [("zhao-ming", 1), ("neighbour", 2)]
    assert [(d.id, d.room) for d in config.devices] == [
        ("z2m-0x00158d0001a2b3c4", "bedroom"),
        ("tasmota-kettle01", "kitchen"),
    ]
    text = path.read_text()
    assert "# rule time windows are local to this zone" in text  # comments survive
    assert load_upgrading(path)[1] == []  # now current: nothing more to do


def test_newer_devices_yaml_is_refused(tmp_path: Path) -> None:
    text = V0_YAML.read_text().replace("version: 0", "version: 2")
    with pytest.raises(ConfigError, match=r"written for a newer hub.*downgrade is refused"):
        upgrade_text(text, "devices.yaml")


def test_read_only_devices_yaml_is_upgraded_in_memory(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "devices.yaml"
    shutil.copy(V0_YAML, path)
    # As under ProtectSystem=strict: the folder cannot be written (root bypasses modes, so use
    # a read-only bind mount when allowed; otherwise this case cannot be shown here).
    ro = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True, check=False)
    if ro.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {ro.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        config, notes = load_upgrading(path)
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert config.people.caregivers[0].tier == 1
    assert "in memory only" in notes[0]
    assert path.read_text() == V0_YAML.read_text()


# ---- backups -------------------------------------------------------------------------


def test_rotation_keeps_the_newest() -> None:
    paths = [Path(f"b{i}") for i in range(5)]
    assert rotation(paths, 3) == paths[:2]
    assert rotation(paths, 9) == []


async def test_backup_while_the_hub_writes_then_restore_on_an_empty_box(mosquitto: Any, tmp_path: Path) -> None:
    home = f"t{uuid.uuid4().hex[:8]}"
    cfg_dir = tmp_path / "etc"
    cfg_dir.mkdir()
    (cfg_dir / "devices.yaml").write_text(config_text(mosquitto.url, home=home))
    config = make_config((cfg_dir / "devices.yaml").read_text(), cfg_dir)
    data = tmp_path / "data"
    async with running_hub(config, data) as hub:
        t0 = datetime(2026, 5, 1, tzinfo=UTC)

        async def writer() -> None:
            for i in range(3000):
                hub.store.record_state("z2m-0xabc", {"n": i}, t0 + timedelta(seconds=i))
                if i % 100 == 0:
                    await hub.store.save_alert(f"a{i}", "r", None, "warning", "raised", t0, {"i": i})
                    await asyncio.sleep(0)

        writing = asyncio.create_task(writer())
        await asyncio.sleep(0.05)
        archive = await asyncio.to_thread(
            create_backup, hub.store.url, cfg_dir / "devices.yaml", config, tmp_path / "out"
        )
        await asyncio.wait_for(writing, WAIT)
        await hub.store.flush()
        manifest = read_manifest(archive)
        assert manifest.revision == migrations.head()
        assert manifest.database == "hub.db"
        assert manifest.home_id == home
    # The snapshot is one consistent moment: its row counts are what the manifest says.
    new_box = tmp_path / "new-box"
    done = restore_backup(archive, f"sqlite:///{new_box / 'data' / 'hub.db'}", new_box / "etc" / "devices.yaml")
    restored = rows(f"sqlite:///{new_box / 'data' / 'hub.db'}")
    assert {k: len(v) for k, v in restored.items()} == {k: v for k, v in manifest.rows.items() if k != "meta"}
    assert (new_box / "etc" / "devices.yaml").read_text() == (cfg_dir / "devices.yaml").read_text()
    assert done.kept_aside == []
    # A backup taken after the writes, restored on another empty box, equals the live data.
    full = create_backup(f"sqlite:///{data / 'hub.db'}", cfg_dir / "devices.yaml", config, tmp_path / "out")
    third = tmp_path / "third"
    restore_backup(full, f"sqlite:///{third / 'hub.db'}", third / "devices.yaml")
    assert rows(f"sqlite:///{third / 'hub.db'}") == rows(f"sqlite:///{data / 'hub.db'}")
    assert len(rows(f"sqlite:///{third / 'hub.db'}")["state"]) == 3000
    assert len(list_backups(tmp_path / "out")) == 2


def test_hub_backup_and_restore_commands(tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(config_text(None))
    data = tmp_path / "data"
    db = data / "hub.db"
    data.mkdir()
    v1_database(db)  # the CLI upgrades it first (after its own pre-upgrade backup)
    store = Store(f"sqlite:///{db}")
    store.open()
    asyncio.run(store.close())

    def hub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, check=False)

    out = hub("backup", "-c", str(cfg), "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    archive = Path(out.stdout.strip())
    assert archive.parent == data / "backups"
    assert archive.stat().st_mode & 0o077 == 0
    box = tmp_path / "box"
    out = hub("restore", str(archive), "-c", str(box / "devices.yaml"), "--data-dir", str(box / "data"))
    assert out.returncode == 0, out.stderr
    assert "rows: " in out.stdout
    assert "state 20" in out.stdout
    assert rows(f"sqlite:///{box / 'data' / 'hub.db'}") == rows(f"sqlite:///{db}")
    out = hub("restore", str(cfg), "-c", str(box / "devices.yaml"), "--data-dir", str(box / "data"))
    assert out.returncode == 1
    assert "not a readable hub backup" in out.stderr


def test_restore_refuses_a_backup_from_a_newer_hub(tmp_path: Path) -> None:
    import json
    import tarfile

    archive = tmp_path / "eldercare-hub-x-20260101T000000Z-manual.tar.gz"
    manifest = {"format": 1, "created_at": "2026-01-01T00:00:00+00:00", "hub_version": "9.0", "home_id": "x",
                "reason": "manual", "database": "hub.db", "revision": "0099"}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "manifest.json", arcname="manifest.json")
    with pytest.raises(BackupError, match="newer than this hub"):
        restore_backup(archive, f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "devices.yaml")


@pytest.mark.postgres
async def test_postgres_logical_backup_restores_into_sqlite_and_postgres(pg_url: str, tmp_path: Path) -> None:
    base = sa.make_url(pg_url)
    schemas = [f"box_test_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    urls = [
        base.update_query_dict({"options": f"-csearch_path={s}"}).render_as_string(hide_password=False) for s in schemas
    ]
    try:
        source = Store(urls[0], batch_seconds=0.01)
        source.open()
        t0 = datetime(2026, 5, 1, tzinfo=UTC)
        for i in range(50):
            source.record_state("z2m-0xabc", {"n": i}, t0 + timedelta(seconds=i))
        await source.save_alert("a1", "r", "kitchen", "critical", "raised", t0, {"message": {"en": "x"}})
        await source.audit("a1", "raised", None, None, None, t0)
        await source.close()
        archive = create_backup(urls[0], None, None, tmp_path / "out")
        assert read_manifest(archive).database == "tables.jsonl"
        restore_backup(archive, urls[1], tmp_path / "devices.yaml")
        assert rows(urls[1]) == rows(urls[0])
        restore_backup(archive, f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "devices.yaml")
        assert len(rows(f"sqlite:///{tmp_path / 'hub.db'}")["state"]) == 50
        # Ids continue after the restored ones.
        target = Store(urls[1], batch_seconds=0.01)
        target.open()
        target.record_state("z2m-0xabc", {"n": 50}, t0)
        await target.close()
        assert len(rows(urls[1])["state"]) == 51
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
