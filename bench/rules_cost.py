"""Rule evaluation cost per state change, with the whole rule library loaded, beside normalizing the message.

One real Zigbee2MQTT contact message (a door sensor with role exit_door, in a home with every
role) goes through the hub's path step by step: the adapter normalizes it, the registry merges
it, and the rules engine evaluates it. Each step is timed over the same messages in the same run
(median µs per message over --runs); the engine is timed with the whole library and with no
configured rule (device health only) as its own baseline.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import ROOT, Report, args_parser, median
from hub.adapters.zigbee2mqtt import Zigbee2MqttAdapter
from hub.config import Config, load_config_text
from hub.model import DeviceDiscovered, Event
from hub.registry import Forward, Named, Registry
from hub.rules.engine import Engine
from hub.rules.spec import parse_rules
from hub.wire import Message
from tests import synthetic_week
from tests.rules_home import DEVICES, device

FIXTURE = ROOT.parent / "shared" / "fixtures" / "zigbee2mqtt" / "bridge_devices_real_network.json"
DOOR = "z2m-0x00158d0001e1a85a"  # MCCGQ01LM contact, friendly name livingroom/window
TOPIC = "zigbee2mqtt/livingroom/window"


def _home(config: Config, start: datetime) -> tuple[Zigbee2MqttAdapter, Registry, Engine]:
    named = {DOOR: Named("Front door", "hallway", "exit_door")} | {d.id: Named(d.id, d.room, d.role) for d in DEVICES}
    registry = Registry(named)
    for d in DEVICES:
        if d.id != "z2m-front-door":
            registry.apply(DeviceDiscovered(ts=start, device=device(d)))
    adapter = Zigbee2MqttAdapter("zigbee2mqtt")
    bridge = json.dumps(json.loads(Path(FIXTURE).read_text())["payload"]).encode()
    for event in adapter.feed(Message("zigbee2mqtt/bridge/devices", bridge, retain=True), start):
        registry.apply(event)
    engine = Engine(config, parse_rules(config), registry, now=start, notify=False, views=False)
    engine.start()
    return adapter, registry, engine


def _measure(config: Config, count: int) -> dict[str, float]:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    adapter, registry, engine = _home(config, start)
    messages = [Message(TOPIC, json.dumps({"contact": n % 2 == 0, "battery": 90}).encode()) for n in range(count)]
    times = [start + timedelta(seconds=n) for n in range(count)]
    t0 = time.perf_counter()
    normalized = [adapter.feed(m, ts) for m, ts in zip(messages, times, strict=True)]
    t1 = time.perf_counter()
    forwarded: list[Event] = []
    for events in normalized:
        for event in events:
            forwarded += [e.event for e in registry.apply(event) if isinstance(e, Forward)]
    t2 = time.perf_counter()
    for event in forwarded:
        engine.feed(event)
        engine.out.clear()
    t3 = time.perf_counter()
    assert len(forwarded) >= count, "every message should change the door's state"
    return {"normalize": (t1 - t0) / count, "registry": (t2 - t1) / count, "rules": (t3 - t2) / len(forwarded)}


def main() -> None:
    """Run the benchmark and print JSON and a table."""
    args = args_parser(__doc__ or "").parse_args()
    count = 500 if args.quick else 20_000
    runs = 1 if args.quick else max(5, args.runs)
    text = synthetic_week.config_text()
    full = load_config_text(text)
    bare = load_config_text(text.split("rules:")[0])
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        for label, config in (("whole library", full), ("no rules", bare)):
            for step, seconds in _measure(config, count).items():
                samples.setdefault(f"{step} ({label})" if step == "rules" else step, []).append(seconds * 1e6)
    report = Report("rule evaluation per state change", ["step", "us_per_message", "rules_loaded"])
    for step in ("normalize", "registry", "rules (no rules)", "rules (whole library)"):
        loaded = {"rules (whole library)": len(parse_rules(full)), "rules (no rules)": 0}.get(step)
        report.add(step=step, us_per_message=round(median(samples[step]) or 0.0, 2), rules_loaded=loaded)
    report.notes.append(f"{count} messages of a Zigbee2MQTT door contact per run, medians of {runs} runs")
    report.emit()


if __name__ == "__main__":
    main()
