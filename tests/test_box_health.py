"""Health on a home box: sd_notify, health problems and alerts, a full disk (tmpfs), `hub status`."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub import sdnotify
from hub.config import Health
from hub.health import MB, Facts, evaluate, history_should_pause
from tests.hubctl import WAIT, config_text, hub_process, make_config, running_hub, watching

T0 = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
LIMITS = Health(disk_min_free_mb=100, broker_down_minutes=5)


def facts(**kw: Any) -> Facts:
    base: dict[str, Any] = {
        "now": T0,
        "disk_free_bytes": 10_000 * MB,
        "disk_total_bytes": 20_000 * MB,
        "broker_connected": True,
        "broker_since": T0 - timedelta(hours=1),
        "broker_error": None,
        "backup_ok": True,
        "backup_error": None,
    }
    return Facts(**(base | kw))


@pytest.mark.parametrize(
    ("changes", "keys"),
    [
        ({}, []),
        ({"disk_free_bytes": 99 * MB}, ["disk_low"]),
        ({"broker_connected": False, "broker_since": T0 - timedelta(minutes=4)}, []),
        ({"broker_connected": False, "broker_since": T0 - timedelta(minutes=6)}, ["broker_down"]),
        ({"backup_ok": False, "backup_error": "No space left on device"}, ["backup_failed"]),
        ({"backup_ok": None}, []),
        ({"disk_free_bytes": 1, "backup_ok": False}, ["disk_low", "backup_failed"]),
    ],
)
def test_evaluate(changes: dict[str, Any], keys: list[str]) -> None:
    problems = evaluate(facts(**changes), LIMITS)
    assert [p.key for p in problems] == keys
    for p in problems:
        assert p.message["en"]
        assert p.message["zh-CN"]
        assert p.advice["en"]


def test_broker_down_names_a_refused_login() -> None:
    error = "broker 127.0.0.1:8883 refused the login as 'hub': not authorised [code:135]"
    (problem,) = evaluate(
        facts(broker_connected=False, broker_since=T0 - timedelta(minutes=9), broker_error=error), LIMITS
    )
    assert problem.severity == "critical"
    assert "code:135" in problem.message["en"]
    assert "9 minutes" in problem.message["en"]


@pytest.mark.parametrize(
    ("free_mb", "paused", "expected"),
    [(150, False, False), (99, False, True), (110, True, True), (126, True, False), (None, True, True)],
)
def test_history_pause_has_hysteresis(free_mb: float | None, paused: bool, expected: bool) -> None:
    free = None if free_mb is None else int(free_mb * MB)
    assert history_should_pause(free, 100, paused) is expected


def test_sd_notify_sends_datagrams_to_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(WAIT)
        env = {"NOTIFY_SOCKET": str(path)}
        assert sdnotify.notify("READY=1", env)
        assert sdnotify.notify("WATCHDOG=1", env)
        assert [server.recv(100), server.recv(100)] == [b"READY=1", b"WATCHDOG=1"]
    assert sdnotify.notify("READY=1", {}) is False  # not under systemd: nothing to do
    assert sdnotify.socket_address("@abstract") == "\0abstract"
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({}) is None


@pytest.mark.mosquitto
def test_hub_run_tells_systemd_ready_then_feeds_the_watchdog(mosquitto: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(config_text(mosquitto.url, extra="backup: {enabled: false}\n"))
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(WAIT)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}  # a ping every 0.1 s
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "-c", str(cfg), "--data-dir", str(tmp_path / "data")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            got = [server.recv(100) for _ in range(3)]
        finally:
            proc.terminate()
            proc.wait(WAIT)
    assert got == [b"READY=1", b"WATCHDOG=1", b"WATCHDOG=1"]
    assert proc.returncode == 0


# ---- a full disk, for real: a small tmpfs ----------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fill the disk until only about leave_bytes are free."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    try:
        with filler.open("ab") as out:
            out.write(b"\0" * max(0, free - leave_bytes))
    except OSError as exc:
        # The hub writes to the same disk meanwhile; running out first is the point anyway.
        if exc.errno != errno.ENOSPC:
            raise
    return filler


@pytest.mark.mosquitto
async def test_full_disk_stops_history_and_still_records_and_delivers_alerts(mosquitto: Any, small_disk: Path) -> None:
    home = f"t{uuid.uuid4().hex[:8]}"
    extra = "health: {check_seconds: 0.1, disk_min_free_mb: 2}\nbackup: {enabled: false}\n"
    config = make_config(config_text(mosquitto.url, home=home, extra=extra), small_disk)
    root = f"hub/{home}"
    async with (
        running_hub(config, small_disk / "data") as hub,
        watching("127.0.0.1", mosquitto.port, f"{root}/health", f"{root}/alerts/+") as watch,
    ):
        await watch.wait_for(f"{root}/health", lambda h: h["history_paused"] is None)
        filler = fill(small_disk, 1 * MB)
        health = await watch.wait_for(f"{root}/health", lambda h: "disk_low" in h["problems"])
        assert health["history_paused"]
        assert "below 2" in health["history_paused"]
        alert_id = hub.care._alerts.open["disk_low"] if hub.care._alerts else ""
        view = await watch.wait_for(f"{root}/alerts/{alert_id}", lambda a: a is not None)
        assert view["rule_id"] == "hub.health.disk_low"
        assert "nearly full" in view["message"]["en"]
        stored = {a["id"]: a for a in hub.store.load_open_alerts()}
        assert stored[alert_id]["state"] == "raised"  # recorded before it was shown

        # History is not written now; an alert of the rules still is, and committed.
        states_before = hub.store.count("state")
        for i in range(500):
            hub.store.record_state("z2m-0xabc", {"n": i, "pad": "x" * 200}, T0 + timedelta(seconds=i))
        await hub.store.flush()
        assert hub.store.count("state") == states_before
        assert hub.store.stats["history_paused_rows"] >= 500
        await hub.store.save_alert("sos-1", "sos", "bedroom", "critical", "raised", T0, {"message": {"en": "SOS"}})
        assert "sos-1" in {a["id"] for a in hub.store.load_open_alerts()}

        # Space comes back: history resumes and the disk alert is resolved (taken off the alerts).
        filler.unlink()
        await watch.wait_for(f"{root}/health", lambda h: h["history_paused"] is None and not h["problems"])
        await watch.wait_for(f"{root}/alerts/{alert_id}", lambda a: a is None)
        hub.store.record_state("z2m-0xabc", {"n": 1}, T0)
        await hub.store.flush()
        assert hub.store.count("state") == states_before + 1
        assert hub.store.history_paused is None


@pytest.mark.mosquitto
async def test_a_disk_full_error_pauses_history_at_once(mosquitto: Any, small_disk: Path) -> None:
    extra = "health: {check_seconds: 3600, disk_min_free_mb: 0}\nbackup: {enabled: false}\n"
    config = make_config(config_text(mosquitto.url, extra=extra), small_disk)
    async with running_hub(config, small_disk / "data") as hub:
        fill(small_disk, 0)
        for i in range(3000):
            hub.store.record_state("z2m-0xabc", {"n": i, "pad": "x" * 500}, T0 + timedelta(seconds=i))
        await hub.store.flush()
        assert hub.store.history_paused is not None
        assert "disk is full" in hub.store.history_paused
        assert hub.store.stats["failed_batches"] >= 1


def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.mosquitto
async def test_hub_status_reports_a_running_hub(mosquitto: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    home = f"t{uuid.uuid4().hex[:8]}"
    cfg.write_text(config_text(mosquitto.url, home=home, extra="health: {check_seconds: 0.2}\n"))
    data = tmp_path / "data"
    status = ("status", "-c", str(cfg), "--data-dir", str(data), "--json")
    async with watching("127.0.0.1", mosquitto.port, f"hub/{home}/health") as watch:
        with hub_process(cfg, data):
            await watch.wait_for(f"hub/{home}/health", lambda h: h["broker_connected"])  # its first check
            backup = await asyncio.to_thread(hub_cli, "backup", "-c", str(cfg), "--data-dir", str(data))
            assert backup.returncode == 0, backup.stderr
            out = await asyncio.to_thread(hub_cli, *status)
    report = json.loads(out.stdout)
    assert report["broker_ok"], out.stdout
    assert report["hub_state"] == "online", out.stdout
    assert report["health"]["broker_connected"] is True
    assert report["last_backup_file"] == backup.stdout.strip()
    assert report["db_bytes"] > 0
    assert report["disk_free_bytes"] > 0
    assert out.returncode == {"OK": 0, "WARNING": 1}[report["level"]], out.stdout
    # The hub stopped (killed: its last will says offline): status is critical.
    out = await asyncio.to_thread(hub_cli, *status[:-1])
    assert out.returncode == 2, out.stdout
    assert out.stdout.startswith("CRITICAL")
    assert "the hub is offline" in out.stdout


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("newest", "failed", "due"),
    [
        (None, False, T0 + timedelta(minutes=2)),  # a new box: soon after start
        (T0 - timedelta(hours=3), False, T0 + timedelta(hours=21)),  # daily
        (T0 - 5 * DAY, False, T0),  # the clock jumped forward (or the box was off): one backup now
        (T0 + 30 * DAY, False, T0 + DAY),  # the clock jumped back: still one a day, not a month's pause
        (T0 - timedelta(hours=3), True, T0 + timedelta(hours=1)),  # a failure is retried within the hour
    ],
)
def test_next_backup_survives_clock_jumps(newest: datetime | None, failed: bool, due: datetime) -> None:
    from hub.care import next_backup

    assert next_backup(T0, newest, DAY, failed) == due
