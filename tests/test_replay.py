"""`hub replay`: a synthetic week with known incidents, recorded MQTT traffic, and CASAS research data."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.config import load_config_text
from hub.replay import read, read_export, run
from tests import synthetic_week
from tests.test_hub import bridge_devices


async def test_a_week_with_a_fall_a_night_exit_a_stove_and_a_missed_dose_finds_each_and_nothing_else() -> None:
    config = load_config_text(synthetic_week.config_text())
    result = await run(config, read_export(list(synthetic_week.lines())))
    found = [(*synthetic_week.local(a.at), a.kind, a.room, a.severity) for a in result.alerts]
    assert found == synthetic_week.EXPECTED
    # The routine itself raised nothing, but the night path lights did their job every night.
    assert result.actions["night_path_light"] >= 7 * 4
    assert result.summary()["fall"] == {"warning": 1, "alerts": 1, "critical": 1}


def test_hub_replay_command_prints_json_lines_and_a_summary(tmp_path: Path) -> None:
    recording = tmp_path / "week.jsonl"
    recording.write_text("\n".join(synthetic_week.lines()) + "\n")
    config = tmp_path / "devices.yaml"
    config.write_text(synthetic_week.config_text())
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "replay", str(recording), "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    alerts = [json.loads(line) for line in out[:-1]]
    summary = json.loads(out[-1])
    assert [(a["kind"], a["severity"]) for a in alerts] == [(e[2], e[4]) for e in synthetic_week.EXPECTED]
    assert alerts[0]["message"]["zh-CN"].startswith("客厅") or "跌倒" in alerts[0]["message"]["zh-CN"]
    assert summary["summary"]["medication"]["alerts"] == 1
    assert summary["events"] > 900
    table = subprocess.run(
        [sys.executable, "-m", "hub.cli", "replay", str(recording), "-c", str(config), "--lang", "zh-CN"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "药盒" in table
    assert "per rule:" in table


def test_recorded_mqtt_traffic_goes_through_the_adapters(tmp_path: Path) -> None:
    base = "zigbee2mqtt"
    lines = [
        json.dumps(
            {
                "ts": "2026-03-02T23:00:00+08:00",
                "topic": f"{base}/bridge/devices",
                "payload": json.loads(bridge_devices()),
            }
        ),
        # Z2M contact false = open: the window opens at 23:01 and stays open.
        f"2026-03-02T23:01:00+08:00 {base}/livingroom/window " + json.dumps({"contact": False}),
        "not a line at all",
        f"2026-03-02T23:30:00+08:00 {base}/livingroom/window " + json.dumps({"contact": False, "battery": 90}),
    ]
    recording = tmp_path / "capture.txt"
    recording.write_text("\n".join(lines) + "\n")
    config = load_config_text(
        "home: {id: t, name: T}\nrooms: [{id: hallway, name: Hallway}]\n"
        "devices: [{id: z2m-0x00158d0001e1a85a, name: Window, room: hallway, role: exit_door}]\n"
        "rules:\n  - kind: door_left_open\n"
    )
    result = asyncio.run(run(config, read(recording, config)))
    found = [(synthetic_week.local(a.at)[1], a.kind, a.severity) for a in result.alerts]
    assert found == [("23:03", "door_left_open", "info"), ("23:13", "door_left_open", "warning")]
    assert result.skipped["unrouted"] == 1  # the bad line is counted, not fatal


def test_casas_lines_with_a_mapping_file(tmp_path: Path) -> None:
    mapping = tmp_path / "casas.yaml"
    mapping.write_text(
        "sensors:\n"
        "  M003: {room: bedroom, kind: motion}\n"
        "  D001: {room: hallway, kind: contact, role: exit_door}\n"
        "  T101: {room: kitchen, kind: temperature}\n"
    )
    recording = tmp_path / "data"
    recording.write_text(
        "2010-11-04 00:03:50.209589 M003 ON Sleep begin\n"
        "2010-11-04 00:04:10.1 M003 OFF\n"
        "2010-11-04 02:10:00.000 D001 OPEN\n"
        "2010-11-04 02:10:30.000 D001 CLOSE\n"
        "2010-11-04 02:11:00.000 T101 19.5\n"
        "2010-11-04 02:11:01.000 X999 ON\n"
        "garbage\n"
        "2010-11-04 02:30:00.000 M003 ON\n"
    )
    config = load_config_text(
        "home: {id: t, name: T, timezone: America/Los_Angeles}\n"
        "rooms: [{id: bedroom, name: Bedroom}, {id: hallway, name: Hallway}, {id: kitchen, name: Kitchen}]\n"
        "rules:\n  - kind: night_exit\n"
    )
    rec = read(recording, config, casas_map=mapping)
    assert rec.format == "casas"
    assert {d.id for d in rec.devices} == {"casas-m003", "casas-d001", "casas-t101"}
    result = asyncio.run(run(config, rec))
    local = [a.at.astimezone(ZoneInfo("America/Los_Angeles")) for a in result.alerts]
    assert [(f"{t:%H:%M}", a.kind, a.severity) for t, a in zip(local, result.alerts, strict=True)] == [
        ("02:10", "night_exit", "warning"),
        ("02:15", "night_exit", "critical"),
    ]
    assert result.skipped["unmapped.X999"] == 1
    assert result.skipped["bad_line"] == 1
