"""`hub status`: a short health report of a home box for installers and monitoring, with an exit code.

It reads the retained hub API from the broker (the hub's status and health, devices, open
alerts) logging in as the hub does, and the data folder (the hub's health.json, backups,
disk, database). Exit codes follow the monitoring convention: 0 OK, 1 warning, 2 critical.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from hub.api import AlertView, DeviceState, HubHealth, HubStatus, Topics
from hub.backup import backup_time, last_outcome, newest_backup
from hub.config import Config
from hub.health import MB, disk_usage, read_health_file
from hub.mqtt import Link, LinkSettings
from hub.wire import Message

OK, WARNING, CRITICAL = 0, 1, 2
LEVELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}
QUIET = 0.3  # seconds without a new retained message before the broker's copy is taken as read
STALE_HEALTH = timedelta(minutes=5)  # a health.json older than this: the hub is not running
OLD_BACKUP = timedelta(days=2)


@dataclass
class StatusReport:
    """Everything `hub status` found."""

    home: str
    broker: str
    broker_ok: bool = False
    broker_error: str | None = None
    hub_state: str | None = None  # online / offline, from the retained status
    hub_version: str | None = None
    devices: dict[str, int] = field(default_factory=dict)  # availability -> count
    open_alerts: int = 0
    critical_alerts: int = 0
    health: dict[str, Any] | None = None  # the hub's own report (broker copy, else health.json)
    health_source: str | None = None
    last_backup_at: str | None = None
    last_backup_file: str | None = None
    last_backup_error: str | None = None
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    db_bytes: int | None = None
    problems: list[tuple[int, str]] = field(default_factory=list)  # (level, text)

    def level(self) -> int:
        """The worst level among the problems (OK when there are none)."""
        return max((lvl for lvl, _ in self.problems), default=OK)

    def to_json(self) -> str:
        """The report as JSON, with its level."""
        data = asdict(self)
        data["problems"] = [{"level": LEVELS[lvl], "text": text} for lvl, text in self.problems]
        data["level"] = LEVELS[self.level()]
        return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def read_retained(topics: Topics, retained: dict[str, bytes], report: StatusReport) -> None:
    """Fill the report from the retained hub API messages (bad payloads are skipped and named)."""
    root = topics.root + "/"
    adopted: set[str] = set()
    states: dict[str, str] = {}
    for topic, payload in retained.items():
        if not payload:
            continue  # a cleared retained message
        try:
            match topic.removeprefix(root).split("/"):
                case ["status"]:
                    status = HubStatus.model_validate_json(payload)
                    report.hub_state, report.hub_version = status.state, status.version
                case ["health"]:
                    report.health = HubHealth.model_validate_json(payload).model_dump(mode="json")
                    report.health_source = "broker"
                case ["devices", ident]:
                    adopted.add(ident)
                case ["devices", ident, "state"]:
                    states[ident] = DeviceState.model_validate_json(payload).availability.state.value
                case ["alerts", _ident]:
                    alert = AlertView.model_validate_json(payload)
                    report.open_alerts += 1
                    report.critical_alerts += alert.severity == "critical"
        except ValidationError as exc:
            report.problems.append((WARNING, f"unreadable retained message on {topic}: {exc.errors()[0]['msg']}"))
    report.devices = dict(Counter(states.get(ident, "unknown") for ident in adopted))


def read_data_dir(data_dir: Path, backup_dir: Path, store_url: str, report: StatusReport) -> None:
    """Fill the report from the data folder: disk, database size, backups, the hub's health.json."""
    usage = disk_usage(data_dir)
    if usage is not None:
        report.disk_free_bytes, report.disk_total_bytes = usage
    report.db_bytes = database_size(store_url)
    newest = newest_backup(backup_dir)
    if newest is not None:
        when = backup_time(newest)
        report.last_backup_at = when.isoformat() if when else None
        report.last_backup_file = str(newest)
    outcome = last_outcome(backup_dir)
    if outcome is not None and not outcome.get("ok"):
        report.last_backup_error = f"{outcome.get('at')}: {outcome.get('error')}"
    if report.health is None and (local := read_health_file(data_dir)) is not None:
        report.health = local.model_dump(mode="json")
        report.health_source = "health.json"


def database_size(store_url: str) -> int | None:
    """Bytes of the SQLite file (with its WAL), or of the PostgreSQL database; None if unknown."""
    url = sa.make_url(store_url)
    if url.get_backend_name() == "sqlite":
        base = Path(url.database or "")
        files = [Path(f"{base}{suffix}") for suffix in ("", "-wal", "-shm")]
        return sum(p.stat().st_size for p in files if p.is_file()) if base.is_file() else None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def _age(ts: str | None, now: datetime) -> timedelta | None:
    return None if ts is None else now - datetime.fromisoformat(ts)


def assess(report: StatusReport, now: datetime, min_free_mb: float) -> None:
    """Add the problems an installer must know about, each with its level."""
    add = report.problems.append
    if not report.broker_ok:
        add((CRITICAL, f"broker {report.broker}: {report.broker_error or 'unreachable'}"))
    elif report.hub_state != "online":
        add((CRITICAL, f"the hub is {report.hub_state or 'not publishing its status'}: is `hub run` running?"))
    health = report.health or {}
    if not health:
        add((WARNING, "no health report from the hub yet"))
    else:
        age = _age(health.get("ts"), now)
        if report.health_source == "health.json" and age is not None and age > STALE_HEALTH:
            add(
                (
                    CRITICAL,
                    f"the hub's last health report is {int(age.total_seconds() // 60)} min old: it is not running",
                )
            )
        if health.get("broker_error") and not health.get("broker_connected"):
            add((CRITICAL, f"the hub cannot reach its broker: {health['broker_error']}"))
        if health.get("history_paused"):
            add((WARNING, f"history recording paused: {health['history_paused']} (alerts are still recorded)"))
    if report.devices.get("offline"):
        add((WARNING, f"{report.devices['offline']} device(s) offline"))
    if report.devices.get("stale"):
        add((WARNING, f"{report.devices['stale']} device(s) stale (silent past their interval)"))
    if report.critical_alerts:
        add((WARNING, f"{report.critical_alerts} critical alert(s) open"))
    if report.disk_free_bytes is not None and report.disk_free_bytes < min_free_mb * MB:
        add((WARNING, f"disk nearly full: {report.disk_free_bytes / MB:.0f} MB free (minimum {min_free_mb:.0f} MB)"))
    if report.last_backup_error:
        add((WARNING, f"the last backup failed: {report.last_backup_error}"))
    backup_age = _age(report.last_backup_at, now)
    if backup_age is None:
        add((WARNING, "no backup yet (hub backup, or wait for the daily one)"))
    elif backup_age > OLD_BACKUP:
        add((WARNING, f"the newest backup is {backup_age.days} days old"))


def _size(value: int | None) -> str:
    return "?" if value is None else f"{value / MB:.1f} MB"


def render(report: StatusReport) -> str:
    """The report as a few lines of text, headed by its level."""
    devices = ", ".join(f"{n} {state}" for state, n in sorted(report.devices.items())) or "none adopted"
    disk = (
        f"{_size(report.disk_free_bytes)} free of {_size(report.disk_total_bytes)}"
        if report.disk_free_bytes is not None
        else "?"
    )
    lines = [
        f"{LEVELS[report.level()]}: home {report.home}",
        f"broker     {report.broker}: {'connected' if report.broker_ok else report.broker_error or 'unreachable'}",
        f"hub        {report.hub_state or '?'}" + (f" (version {report.hub_version})" if report.hub_version else ""),
        f"devices    {devices}",
        f"alerts     {report.open_alerts} open ({report.critical_alerts} critical)",
        f"backup     {report.last_backup_at or 'none'}"
        + (f"  {report.last_backup_file}" if report.last_backup_file else ""),
        f"disk       {disk}",
        f"database   {_size(report.db_bytes)}",
    ]
    lines += [f"{LEVELS[lvl]:<9}  {text}" for lvl, text in report.problems]
    return "\n".join(lines)


async def read_broker(settings: LinkSettings, topics: Topics, timeout: float) -> tuple[dict[str, bytes], str | None]:  # noqa: ASYNC109
    """The retained hub API of one home, or the reason the broker could not be read."""
    retained: dict[str, bytes] = {}
    arrived = asyncio.Event()

    async def collect(msg: Message) -> None:
        retained[msg.topic] = msg.payload
        if msg.retain:  # live updates (the hub's health every few seconds) never end the quiet wait
            arrived.set()

    link = Link(settings)
    link.subscribe(f"{topics.root}/#", collect)
    task = asyncio.create_task(link.run())
    try:
        await link.wait_connected(timeout)
        await link.wait_subscribed()
        # Retained messages follow the subscription at once; stop after a quiet moment, or at
        # the timeout whatever happens.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    arrived.clear()
                    try:
                        await asyncio.wait_for(arrived.wait(), QUIET)
                    except TimeoutError:
                        break
        return retained, None
    except TimeoutError:
        return retained, link.status.last_error or f"no answer within {timeout:.0f} s"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def link_settings(config: Config) -> LinkSettings:
    """Log in to the home's broker as the hub does (its URL, user, password and TLS files)."""
    m = config.mqtt
    url = m.url or f"mqtt://127.0.0.1:{m.local_port}"
    return LinkSettings.from_url(
        url,
        username=m.username,
        password=m.password_text(),
        ca_file=m.ca_file,
        cert_file=m.cert_file,
        key_file=m.key_file,
        client_id=f"hub-status-{random.randrange(16**6):06x}",
        timeout=5.0,
        backoff_initial=0.2,
        backoff_max=1.0,
    )


async def gather(config: Config, data_dir: Path, store_url: str, timeout: float = 5.0) -> StatusReport:  # noqa: ASYNC109
    """Read the broker and the data folder, then assess: the full report."""
    topics = Topics.for_home(config.home.id, config.mqtt.topic_root)
    settings = link_settings(config)
    report = StatusReport(home=config.home.id, broker=settings.where)
    retained, error = await read_broker(settings, topics, timeout)
    report.broker_ok, report.broker_error = error is None, error
    read_retained(topics, retained, report)
    backup_dir = data_dir / (config.backup.dir or "backups")
    await asyncio.to_thread(read_data_dir, data_dir, backup_dir, store_url, report)
    assess(report, datetime.now(UTC), config.health.disk_min_free_mb)
    return report
