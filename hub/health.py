"""The hub's own health: a full disk, a broker gone for minutes, a failed backup, told to caregivers.

`evaluate` is pure: facts in, open problems out. `HealthAlerts` turns a problem that appears
into an alert and one that goes away into a resolved alert, through an `AlertSink`: in the
hub that is the rules runtime, so these alerts are stored, escalated and acknowledged like
every other alert.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from hub.api import HubHealth, Language, Severity
from hub.config import Health
from hub.store import StoreError

log = logging.getLogger(__name__)

RULE_PREFIX = "hub.health."
HEALTH_FILE = "health.json"
# History resumes only once this much more than the minimum is free, so that it does not
# flap on and off around the threshold as rows are written and purged.
RESUME_FACTOR = 1.25
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Facts:
    """What the hub knows about itself at one health check."""

    now: datetime
    disk_free_bytes: int | None
    disk_total_bytes: int | None
    broker_connected: bool
    broker_since: datetime  # since when connected or disconnected
    broker_error: str | None
    backup_ok: bool | None  # None: no backup attempted yet
    backup_error: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One health problem, with its plain-language texts for caregivers."""

    key: str
    severity: Severity
    message: dict[Language, str]
    advice: dict[Language, str]


def _mb(value: int | None) -> str:
    return "?" if value is None else f"{value / MB:.0f} MB"


def _disk_low(f: Facts, limits: Health) -> Problem | None:
    if f.disk_free_bytes is None or f.disk_free_bytes >= limits.disk_min_free_mb * MB:
        return None
    return Problem(
        "disk_low",
        "warning",
        {
            "en": f"The hub's disk is nearly full ({_mb(f.disk_free_bytes)} free): it has stopped "
            "recording sensor history. Alerts are still recorded and sent.",
            "zh-CN": f"看护主机磁盘快满了（剩余 {_mb(f.disk_free_bytes)}）：已停止记录传感器历史，警报仍会记录并发送。",
        },
        {
            "en": "Ask the installer to free space (hub purge, or a larger card); hub status shows the details.",
            "zh-CN": "请联系安装人员清理空间（hub purge 或更换更大的存储卡）；hub status 可查看详情。",
        },
    )


def _broker_down(f: Facts, limits: Health) -> Problem | None:
    down_for = f.now - f.broker_since
    if f.broker_connected or down_for < timedelta(minutes=limits.broker_down_minutes):
        return None
    minutes = int(down_for.total_seconds() // 60)
    why = f.broker_error or "no answer"
    return Problem(
        "broker_down",
        "critical",
        {
            "en": f"The hub has not reached its MQTT broker for {minutes} minutes ({why}): "
            "sensors and caregiver screens are not connected.",
            "zh-CN": f"看护主机已 {minutes} 分钟连不上 MQTT 服务（{why}）：传感器和看护端暂时无法连接。",
        },
        {
            "en": "Check that the hub box is powered and Mosquitto runs (systemctl status mosquitto); "
            "after a password change, update the hub's password file.",
            "zh-CN": "请检查主机电源和 Mosquitto 服务（systemctl status mosquitto）；"
            "若改过密码，请更新主机的密码文件。",
        },
    )


def _backup_failed(f: Facts, limits: Health) -> Problem | None:
    if f.backup_ok is not False:
        return None
    return Problem(
        "backup_failed",
        "warning",
        {
            "en": f"The hub's backup failed: {f.backup_error or 'unknown reason'}.",
            "zh-CN": f"看护主机备份失败：{f.backup_error or '原因不明'}。",
        },
        {
            "en": "Ask the installer to run `hub backup` and `hub status` on the box.",
            "zh-CN": "请联系安装人员在主机上运行 `hub backup` 和 `hub status`。",
        },
    )


# Each health problem the hub watches for: a pure check of the facts.
CHECKS: tuple[Callable[[Facts, Health], Problem | None], ...] = (_disk_low, _broker_down, _backup_failed)


def evaluate(facts: Facts, limits: Health) -> list[Problem]:
    """The health problems open at this moment."""
    return [p for check in CHECKS if (p := check(facts, limits)) is not None]


def history_should_pause(free_bytes: int | None, min_free_mb: float, paused: bool) -> bool:
    """Whether state history should be paused, with hysteresis around the free-space minimum."""
    if free_bytes is None:
        return paused
    limit = min_free_mb * MB * (RESUME_FACTOR if paused else 1.0)
    return free_bytes < limit


def disk_usage(path: Path) -> tuple[int, int] | None:
    """(free, total) bytes of the file system holding `path` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        log.warning("health: cannot read the disk usage of %s: %s", probe, exc)
        return None
    return usage.free, usage.total


class AlertSink(Protocol):
    """Where the hub's health alerts go (the rules runtime in the hub)."""

    async def raise_health_alert(self, problem: Problem, now: datetime) -> str:
        """Raise (or refresh) the alert for a problem; its alert id."""
        ...

    async def resolve_health_alert(self, alert_id: str, problem_key: str, now: datetime) -> None:
        """Resolve the alert of a problem that went away."""
        ...


class HealthAlerts:
    """Raises an alert when a problem appears and resolves it when it goes; one per problem."""

    def __init__(self, sink: AlertSink, open_alerts: Mapping[str, str] | None = None) -> None:
        self.sink = sink
        self.open: dict[str, str] = dict(open_alerts or {})  # problem key -> alert id
        self.failures = 0

    async def update(self, problems: list[Problem], now: datetime) -> None:
        """Raise new problems, resolve gone ones; a failed write is logged, counted and retried next time."""
        current = {p.key: p for p in problems}
        for key, problem in current.items():
            if key not in self.open:
                try:
                    self.open[key] = await self.sink.raise_health_alert(problem, now)
                    log.error("health: %s", problem.message["en"])
                except StoreError as exc:
                    self.failures += 1
                    log.error("health: could not raise the %s alert (will retry): %s", key, exc)
        for key in [k for k in self.open if k not in current]:
            try:
                await self.sink.resolve_health_alert(self.open[key], key, now)
                del self.open[key]
                log.warning("health: %s cleared", key)
            except StoreError as exc:
                self.failures += 1
                log.error("health: could not resolve the %s alert (will retry): %s", key, exc)


def open_health_alerts(rows: list[dict[str, object]]) -> dict[str, str]:
    """Problem key -> alert id of health alerts still open in the store (after a restart)."""
    found: dict[str, str] = {}
    for row in rows:
        rule_id = str(row.get("rule_id", ""))
        if rule_id.startswith(RULE_PREFIX):
            found[rule_id.removeprefix(RULE_PREFIX)] = str(row["id"])
    return found


def write_health_file(folder: Path, health: HubHealth) -> bool:
    """Write health.json into the data folder for `hub status` (atomic); False when it cannot."""
    try:
        tmp = folder / f".{HEALTH_FILE}.tmp"
        tmp.write_text(health.model_dump_json(), encoding="utf-8")
        os.replace(tmp, folder / HEALTH_FILE)
    except OSError as exc:  # a full disk among others: the broker copy still goes out
        log.warning("health: cannot write %s: %s", folder / HEALTH_FILE, exc.strerror or exc)
        return False
    return True


def read_health_file(folder: Path) -> HubHealth | None:
    """The hub's last health.json, or None when missing or unreadable."""
    try:
        return HubHealth.model_validate(json.loads((folder / HEALTH_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None
