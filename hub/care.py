"""Living on a home box: the systemd watchdog, health checks that tell caregivers, daily backups.

The daily backup is a task in the hub rather than a systemd timer: the hub takes it while it
writes (one SQLite read transaction, so the snapshot is consistent), knows at once when it
fails and raises an alert to caregivers through the same path as any other, shows the last
one in `hub status`, and works the same outside systemd (a laptop, another init system).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hub import sdnotify
from hub.api import HubHealth, Topics
from hub.backup import (
    BackupError,
    backup_time,
    create_backup,
    last_outcome,
    list_backups,
    record_outcome,
    rotate,
)
from hub.clock import Clock
from hub.config import Config
from hub.health import (
    MB,
    AlertSink,
    Facts,
    HealthAlerts,
    disk_usage,
    evaluate,
    history_should_pause,
    open_health_alerts,
    write_health_file,
)
from hub.mqtt import Link
from hub.store import Store

log = logging.getLogger(__name__)

RETRY_FAILED_BACKUP = timedelta(hours=1)
# The first backup of a box that has none waits this long after start, off the busy start-up.
FIRST_BACKUP_DELAY = timedelta(minutes=2)


def next_backup(now: datetime, newest: datetime | None, every: timedelta, last_failed: bool) -> datetime:
    """When the next daily backup is due.

    A clock that jumped back (the newest backup seems to be from the future) must not stop
    backups until it catches up, and one that jumped forward gives one backup, not many.
    """
    if last_failed:
        return now + min(every, RETRY_FAILED_BACKUP)
    if newest is None:
        return now + FIRST_BACKUP_DELAY
    return max(now, min(newest + every, now + every))


class BoxCare:
    """Watchdog, health and backups of one running hub (owned by the supervisor's TaskGroup)."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        config_path: Path | None,
        store: Store,
        topics: Topics,
        clock: Clock,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.config_path = config_path
        self.store = store
        self.topics = topics
        self.clock = clock
        # Where health alerts go; the hub sets its rules runtime here before running.
        self.sink: AlertSink | None = None
        self.backup_dir = data_dir / (config.backup.dir or "backups")
        self.last_backup: dict[str, Any] | None = last_outcome(self.backup_dir)
        self.health: HubHealth | None = None
        self.counters: Counter[str] = Counter()
        self._alerts: HealthAlerts | None = None
        self.checked = asyncio.Event()  # set after each health check (tests await it)

    # -- backups -------------------------------------------------------------------------

    def before_upgrade(self, start: str, head: str) -> Path:
        """The store's hook: a full backup before its schema is upgraded (blocking)."""
        path = create_backup(
            self.store.url, self.config_path, self.config, self.backup_dir, reason="pre-upgrade", now=self.clock.now()
        )
        log.warning("backup before the schema upgrade %s -> %s: %s", start, head, path)
        return path

    async def backup_now(self, reason: str = "daily") -> Path | None:
        """Take a backup, rotate old ones, record the outcome; None (logged, counted) if it failed."""
        now = self.clock.now()
        try:
            path = await asyncio.to_thread(
                create_backup, self.store.url, self.config_path, self.config, self.backup_dir, reason=reason, now=now
            )
        except BackupError as exc:
            self.counters["backup_failed"] += 1
            log.error("backup failed: %s", exc)
            self.last_backup = {"at": now.isoformat(), "ok": False, "file": None, "error": str(exc)}
            await asyncio.to_thread(record_outcome, self.backup_dir, now, None, str(exc))
            return None
        deleted = await asyncio.to_thread(rotate, self.backup_dir, reason, self.config.backup.keep)
        log.info("backup written: %s (%d old ones deleted)", path, len(deleted))
        self.last_backup = {"at": now.isoformat(), "ok": True, "file": str(path), "error": None}
        await asyncio.to_thread(record_outcome, self.backup_dir, now, path, None)
        return path

    def _next_backup(self, now: datetime) -> datetime:
        done = [t for p in list_backups(self.backup_dir, "daily") if (t := backup_time(p)) is not None]
        failed = self.last_backup is not None and not self.last_backup.get("ok")
        return next_backup(now, max(done, default=None), timedelta(hours=self.config.backup.every_hours), failed)

    async def _backups(self) -> None:
        due = self._next_backup(self.clock.now())
        while True:
            await self.clock.sleep_until(due)
            await self.backup_now("daily")
            due = self._next_backup(self.clock.now())

    # -- health --------------------------------------------------------------------------

    def _db_dir(self) -> Path:
        database = self.store.engine.url.database if self.store.engine.dialect.name == "sqlite" else None
        return Path(database).parent if database and database != ":memory:" else self.data_dir

    async def check(self, link: Link) -> HubHealth:
        """One health check: pause or resume history, raise or resolve alerts, publish the report."""
        now = self.clock.now()
        usage = await asyncio.to_thread(disk_usage, self._db_dir())
        free, total = usage if usage is not None else (None, None)
        limits = self.config.health
        pause = history_should_pause(free, limits.disk_min_free_mb, self.store.history_paused is not None)
        if pause and self.store.history_paused is None:
            self.store.pause_history(f"{(free or 0) / MB:.1f} MB free, below {limits.disk_min_free_mb} MB")
        elif not pause and self.store.history_paused is not None:
            self.store.resume_history()
        backup = self.last_backup or {}
        status = link.status
        facts = Facts(
            now=now,
            disk_free_bytes=free,
            disk_total_bytes=total,
            broker_connected=link.connected,
            broker_since=status.since,
            broker_error=status.last_error,
            backup_ok=backup.get("ok"),
            backup_error=backup.get("error"),
        )
        problems = evaluate(facts, limits)
        alerts = await self._health_alerts()
        await alerts.update(problems, now)
        try:
            db_bytes: int | None = await asyncio.to_thread(self.store.db_size_bytes)
        except Exception as exc:  # the database unreachable is itself worth showing, not a crash
            self.counters["db_size_failed"] += 1
            log.warning("health: cannot read the database size: %s", exc)
            db_bytes = None
        health = HubHealth(
            ts=now,
            broker_connected=link.connected,
            broker_since=status.since,
            broker_error=status.last_error,
            broker_attempts=status.attempts,
            disk_free_bytes=free,
            disk_total_bytes=total,
            db_bytes=db_bytes,
            history_paused=self.store.history_paused,
            history_dropped=self.store.stats["history_paused_rows"],
            last_backup_at=datetime.fromisoformat(backup["at"]) if backup.get("at") else None,
            last_backup_ok=backup.get("ok"),
            last_backup_error=backup.get("error"),
            last_backup_file=backup.get("file"),
            problems=tuple(p.key for p in problems),
        )
        self.health = health
        await asyncio.to_thread(write_health_file, self.data_dir, health)
        await link.set_retained(self.topics.health, health.model_dump_json().encode())
        self.checked.set()
        return health

    async def _health_alerts(self) -> HealthAlerts:
        if self.sink is None:
            raise RuntimeError("BoxCare.sink must be set before the hub runs")
        if self._alerts is None:
            opened = open_health_alerts(await asyncio.to_thread(self.store.load_open_alerts))
            self._alerts = HealthAlerts(self.sink, opened)
        return self._alerts

    async def _health(self, link: Link) -> None:
        while True:
            self.checked.clear()
            try:
                await self.check(link)
            except Exception:
                # A check that breaks must not stop the hub it watches over.
                self.counters["health_check_failed"] += 1
                log.exception("health check failed")
            await self.clock.sleep(self.config.health.check_seconds)

    # -- systemd -------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        # READY once the store is open and every task runs, without waiting for the broker:
        # a box whose broker is down still runs, records, retries and tells (systemd would
        # otherwise kill and restart it in a loop). WATCHDOG=1 comes from the event loop
        # itself, so a blocked loop stops the pings and systemd restarts the hub.
        sdnotify.notify("READY=1")
        interval = sdnotify.watchdog_interval()
        if interval is None:
            return
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)  # systemd's real time, not the hub's (maybe simulated) clock

    async def run(self, link: Link) -> None:
        """Run the watchdog, the health checks and (if enabled) the daily backups."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watchdog(), name="watchdog")
            tg.create_task(self._health(link), name="health")
            if self.config.backup.enabled:
                tg.create_task(self._backups(), name="backups")
