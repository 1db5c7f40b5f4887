"""`hub normalize` through the real CLI on captures built from the shared fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.normalize import LineRejected, normalize, parse_line
from hub.wire import Message
from tests import captures

CAPTURES = Path(__file__).parent / "data" / "captures"
SAMPLE = captures.FIXTURES / "zigbee2mqtt" / "bridge_devices_sample.json"


def hub(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "normalize", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_json(*args: str) -> dict[str, Any]:
    done = hub("--json", *args)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def points(report: dict[str, Any], device_id: str) -> dict[str, tuple[Any, ...]]:
    dev = next(d for d in report["devices"] if d["id"] == device_id)
    return {p["key"]: (p["kind"], p["unit"], p["writable"], p["value"]) for p in dev["points"]}


def test_json_lines_capture_normalizes_zigbee2mqtt_and_homie_field_by_field() -> None:
    report = as_json(str(CAPTURES / "zigbee2mqtt_homie.jsonl"))
    aqara = points(report, "z2m-0x00158d0004866f11")
    assert aqara["temperature"] == ("temperature", "°C", False, 32.9)
    assert aqara["pressure"] == ("pressure", "hPa", False, 1009.8)
    assert aqara["voltage"] == ("voltage", "V", False, 2.815)  # 2815 mV at the boundary
    # `contact: false` from Zigbee2MQTT means open: the hub's contact is True = open.
    assert points(report, "z2m-0x00158d0004261dc7")["contact"] == ("contact", None, False, True)
    assert points(report, "z2m-0x00124b001e73227f")["switch"] == ("switch", None, True, True)
    assert points(report, "homie-my-homie-device")["temperature"] == ("temperature", "°C", False, 21.4)
    cov = report["coverage"]
    assert (cov["devices"], cov["mapped"], cov["other"]) == (5, 12, 0)
    # The invalid-JSON climate state and the line without a topic are rejected, by reason.
    assert cov["rejected_reasons"] == {"homeassistant.invalid_json": 1, "bad_capture_line": 1}


def test_mosquitto_sub_capture_normalizes_ha_tasmota_shelly() -> None:
    report = as_json(str(CAPTURES / "ha_tasmota_shelly.txt"))
    assert points(report, "ha-01ad")["garden"] == ("motion", None, False, True)
    assert points(report, "tasmota-DC4F220848A2")["switch"] == ("switch", None, True, True)
    shelly = points(report, "shelly-shellyplus1pm-4417939341dc")
    assert shelly["switch"] == ("switch", None, True, True)
    assert shelly["voltage"] == ("voltage", "V", False, 232.7)
    assert report["coverage"]["rejected"] == 0


def test_readable_table_shows_points_and_the_coverage_summary() -> None:
    done = hub(str(CAPTURES / "ha_tasmota_shelly.txt"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "shelly-shellyplus1pm-4417939341dc" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("voltage"))
    assert row.split()[:5] == ["voltage", "voltage", "V", "-", "232.7"]
    assert "mapped to a kind: 8/8 = 100.0%" in out


def test_two_paths_become_one_device() -> None:
    # Zigbee2MQTT native and its Home Assistant discovery copy of the same plug (same IEEE).
    z2m = json.loads((CAPTURES / "zigbee2mqtt_homie.jsonl").read_text().splitlines()[1])
    ha_copy = {
        "name": None,
        "state_topic": "zigbee2mqtt/0x00124b001e73227f1",
        "command_topic": "zigbee2mqtt/0x00124b001e73227f1/set",
        "value_template": "{{ value_json.state }}",
        "unique_id": "0x00124b001e73227f_switch_zigbee2mqtt",
        "device": {"identifiers": ["zigbee2mqtt_0x00124b001e73227f"], "name": "0x00124b001e73227f1"},
    }
    capture = "\n".join(
        [
            json.dumps(z2m),
            json.dumps({"topic": "homeassistant/switch/0x00124b001e73227f/switch/config", "payload": ha_copy}),
        ]
    )
    done = hub("--json", "-", stdin=capture.encode())
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    ids = [d["id"] for d in report["devices"]]
    assert ids.count("z2m-0x00124b001e73227f") == 1
    assert not any(i.startswith("ha-") for i in ids), ids


def test_oversize_payloads_are_refused_before_parsing_and_counted(tmp_path: Path) -> None:
    big = "x" * 5000
    capture = tmp_path / "big.txt"
    capture.write_text(f"zigbee2mqtt/bridge/devices [{big}]\n" + json.dumps({"topic": "a/b", "payload": big}) + "\n")
    cov = as_json("--max-bytes", "2048", str(capture))["coverage"]
    assert cov["rejected_reasons"] == {"too_large": 2}
    assert cov["messages"] == 0


def test_sample_coverage_printed_by_hub_normalize(tmp_path: Path) -> None:
    capture = tmp_path / "sample.jsonl"
    devices = json.loads(SAMPLE.read_text(encoding="utf-8"))
    capture.write_text(json.dumps({"topic": "zigbee2mqtt/bridge/devices", "payload": devices, "retain": True}))
    done = hub(str(capture))
    assert done.returncode == 0, done.stderr
    summary = done.stdout[done.stdout.index("\ncoverage") :]
    print(summary)
    line = next(x for x in summary.splitlines() if "mapped to a kind" in x)
    mapped, considered = (int(n) for n in line.split(":")[1].split("=")[0].split("/"))
    assert considered > 1400
    assert mapped / considered >= 0.95
    assert "devices: 401" in summary


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a/b hello world\n", Message("a/b", b"hello world")),
        (b'{"topic": "a/b", "payload": {"x": 1}, "retain": true}', Message("a/b", b'{"x":1}', retain=True)),
        (b'{"topic": "a/b", "payload": null}', Message("a/b", b"")),
        (b"   \n", None),
        (b"# a comment\n", None),
        (b"a/# x", LineRejected(1, "bad_capture_line", "not a topic: 'a/#'")),
        (b"\xff\xfe/x y", LineRejected(1, "bad_capture_line", "topic is not UTF-8")),
        (b"{" * 5000, LineRejected(1, "too_large", "5000 bytes > 1024")),
    ],
)
def test_parse_line(raw: bytes, expected: Message | LineRejected | None) -> None:
    assert parse_line(raw, 1, max_bytes=1024) == expected


def test_hostile_lines_are_counted_never_raised() -> None:
    items = [
        parse_line(b"{" * 200 + b'"topic"', 1),
        parse_line(b'{"topic": "zigbee2mqtt/bridge/devices", "payload": "' + b"[" * 500 + b'"}', 2),
        parse_line(b"homeassistant/sensor/x/config \xff\xfe", 3),
        parse_line(b"shellies/x/events/rpc " + b'{"a":' * 300 + b"1" + b"}" * 300, 4),
    ]
    result = normalize([i for i in items if i is not None])
    assert sum(result.rejected.values()) == 4
    assert result.rejected["bad_capture_line"] == 1
    assert not result.registry.devices()
