"""Microseconds per message to parse and normalize, beside `json.loads` of the same payload.

Cases: a Zigbee2MQTT state message; a Home Assistant discovery config announced for the first
time (cold: a new single-entity device, fed to a fresh adapter per home of HOME configs, as at
start-up; the target applies here); the same configs announced again (warm: HA republishes
every retained config on each restart); first announcements of devices with ten entities
each (the device is rebuilt as each entity arrives); and a Home Assistant state message.
Each run times the baseline and the case back to back on the same payloads, so that a busy
machine slows both alike; the times are medians over the runs, and the ratio is the median of
the runs' own ratios. Garbage collection stays on
and runs as it runs in the hub (hub.heap.tune): what the adapter keeps costs collections there
too. Target: normalization at most 3x json.loads.

    .venv/bin/python bench/normalize.py [--quick] [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub import heap, native
from hub.adapters.homeassistant import HomeAssistantAdapter
from hub.adapters.zigbee2mqtt import Zigbee2MqttAdapter
from hub.model import DeviceDiscovered, StateChanged
from hub.wire import Message

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
TARGET = 3.0
HOME = 500  # discovery configs per adapter in the cold cases: a large home's entities


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@dataclass
class Case:
    """One timed path: a fresh setup per batch, the messages, and what one message must produce."""

    name: str
    setup: Callable[[list[Message]], Any]  # returns the adapter, ready for this batch of messages
    messages: Callable[[int], list[Message]]  # n messages to feed, each once
    expect: type
    batch: int | None = None  # messages per adapter (a fresh one per batch, untimed); None: one for all


def _z2m_adapter(_: list[Message]) -> Zigbee2MqttAdapter:
    a = Zigbee2MqttAdapter()
    network = fixture("zigbee2mqtt/bridge_devices_real_network.json")["payload"]
    a.feed(Message("zigbee2mqtt/bridge/devices", json.dumps(network).encode(), retain=True), NOW)
    return a


def _z2m_states(n: int) -> list[Message]:
    fx = fixture("zigbee2mqtt/state_aqara_temp_hum_pressure_battery0.json")
    return [Message(fx["topic"], fx["payload_raw"].encode())] * n


def _ha_configs(n: int, per_device: int = 1) -> list[Message]:
    # n distinct entities (of n / per_device devices), so every one is a first announcement.
    fx = fixture("ha_discovery/ha_docs_sensor_temperature_full_device.json")
    cfg = json.loads(fx["payload_raw"])
    out = []
    for i in range(n):
        d = i // per_device
        device = {**cfg["device"], "identifiers": [f"bench{d}"], "name": f"Bench {d}"}
        c = {**cfg, "unique_id": f"bench_{i}", "state_topic": f"bench/{i}/state", "device": device}
        out.append(Message(f"homeassistant/sensor/bench{i}/config", json.dumps(c).encode(), retain=True))
    return out


def _ha_fresh(_: list[Message]) -> HomeAssistantAdapter:
    return HomeAssistantAdapter()


def _ha_announced(messages: list[Message]) -> HomeAssistantAdapter:
    a = HomeAssistantAdapter()
    for m in messages:
        a.feed(m, NOW)
    return a


def _ha_state_adapter(_: list[Message]) -> HomeAssistantAdapter:
    a = HomeAssistantAdapter()
    fx = fixture("ha_discovery/ha_docs_sensor_temperature_full_device.json")
    a.feed(Message(fx["topic"], fx["payload_raw"].encode(), retain=True), NOW)
    return a


def _ha_states(n: int) -> list[Message]:
    topic = json.loads(fixture("ha_discovery/ha_docs_sensor_temperature_full_device.json")["payload_raw"])[
        "state_topic"
    ]
    return [Message(topic, b'{"temperature":23.20,"humidity":43.70}')] * n


CASES = [
    Case("zigbee2mqtt state", _z2m_adapter, _z2m_states, StateChanged),
    Case("homeassistant discovery config", _ha_fresh, _ha_configs, DeviceDiscovered, batch=HOME),
    Case("homeassistant config re-announced", _ha_announced, _ha_configs, DeviceDiscovered, batch=HOME),
    Case(
        "homeassistant config, 10/device",
        _ha_fresh,
        lambda n: _ha_configs(n, per_device=10),
        DeviceDiscovered,
        batch=HOME,
    ),
    Case("homeassistant state", _ha_state_adapter, _ha_states, StateChanged),
]


def _time(fn: Callable[[Message], Any], messages: list[Message]) -> float:
    """Seconds to pass every message to fn."""
    start = time.perf_counter()
    for m in messages:
        fn(m)
    return time.perf_counter() - start


def _feeder(adapter: Any) -> Callable[[Message], Any]:
    """One Python-level call per message, as the json.loads baseline makes."""
    return lambda m: adapter.feed(m, NOW)


def _run(case: Case, messages: list[Message]) -> float:
    """µs per message through the adapter, a fresh one (set up untimed) per batch."""
    size = case.batch or len(messages)
    total = 0.0
    for i in range(0, len(messages), size):
        batch = messages[i : i + size]
        total += _time(_feeder(case.setup(batch)), batch)
    return total / len(messages) * 1e6


def measure(case: Case, runs: int, n: int) -> dict[str, Any]:
    """Median µs per message of json.loads and of the adapter over `runs` runs of n messages."""
    messages = case.messages(n)
    first = messages[: case.batch or n]
    probe = case.setup(first).feed(messages[0], NOW)
    if not any(isinstance(e, case.expect) for e in probe):
        raise SystemExit(f"{case.name}: the adapter produced {probe!r}, not a {case.expect.__name__}")
    base, norm = [], []
    for _ in range(runs):
        base.append(_time(lambda m: json.loads(m.payload), messages) / len(messages) * 1e6)
        norm.append(_run(case, messages))
    b, v = statistics.median(base), statistics.median(norm)
    # The ratio of each run's own pair, then their median: a shared machine's speed drifts
    # between runs, and a run's case and baseline ran back to back at the same speed.
    ratio = statistics.median(n / d for d, n in zip(base, norm, strict=True))
    return {
        "case": case.name,
        "payload_bytes": len(messages[0].payload),
        "json_loads_us": round(b, 2),
        "normalize_us": round(v, 2),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET,
        "runs": runs,
        "messages_per_run": n,
        "messages_per_adapter": case.batch or n,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every case and print a table (and one JSON document with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few messages per run (for the test suite)")
    p.add_argument("--runs", type=int, default=7, help="runs per case (median; at least 5)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document too")
    args = p.parse_args(argv)
    runs = max(5, args.runs)
    heap.tune()
    n = 200 if args.quick else 20_000
    results = [measure(c, runs, n) for c in CASES]
    print(f"{'case':<34} {'bytes':>6} {'json.loads µs':>14} {'normalize µs':>13} {'ratio':>6}  target ≤ {TARGET:g}x")
    for r in results:
        flag = "ok" if r["ratio"] <= TARGET else "OVER"
        print(
            f"{r['case']:<34} {r['payload_bytes']:>6} {r['json_loads_us']:>14.2f} "
            f"{r['normalize_us']:>13.2f} {r['ratio']:>5.2f}x  {flag}"
        )
    how = "compiled (mypyc, tools/compile-adapters)" if native.running_compiled() else "interpreted"
    print(f"median of {runs} runs × {n} messages{' (quick: timings are indicative only)' if args.quick else ''}")
    print(f"adapters: {how}")
    if args.json:
        print(json.dumps({"bench": "normalize", "quick": args.quick, "adapters": how, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
