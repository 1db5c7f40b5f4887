"""TUI: time from a hub API message arriving to the screen being redrawn, and the TUI process's memory.

A home of 1,000 devices with 500 open alerts (retained on a private Mosquitto) is loaded into a
headless `hub tui` process (bench/tui_child.py) showing the Alerts view. Probes, each sent once
the previous one is on screen: an alert changes (acknowledged), a new alert arrives and sorts
into the list, an alert closes, a device's state changes. Baseline in the same run: a small
home (10 devices, 5 alerts). Targets: p99 under 100 ms, under 150 MB.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from bench.common import PYTHON, ROOT, Report, args_parser, median, mosquitto, rss_mb, workdir
from hub.api import AlertView, DeviceState, Topics
from hub.model import Availability, AvailabilityState, Device, Kind, Point, Protocol, Status

ROOMS = ["bedroom", "bathroom", "kitchen", "hallway", "living-room"]
KINDS = ["critical", "warning", "info"]


def home_messages(home: str, devices: int, alerts: int) -> list[tuple[str, bytes]]:
    """Retained API messages of a synthetic home."""
    t = Topics.for_home(home)
    now = datetime.now(UTC)
    out: list[tuple[str, bytes]] = []
    for i in range(devices):
        dev = Device(
            id=f"z2m-{i:06x}",
            name=f"Sensor {i}",
            protocol=Protocol.Z2M,
            room=ROOMS[i % len(ROOMS)],
            status=Status.ADOPTED,
            points=(Point(key="temperature", kind=Kind.TEMPERATURE), Point(key="battery", kind=Kind.BATTERY)),
        )
        state = DeviceState(
            ts=now,
            values={"temperature": 20 + i % 7, "battery": 90},
            availability=Availability(state=AvailabilityState.ONLINE),
        )
        out += [
            (t.device(dev.id), dev.model_dump_json().encode()),
            (t.device_state(dev.id), state.model_dump_json().encode()),
        ]
    out += [(t.alert(f"al-{i}"), alert(i, now).model_dump_json().encode()) for i in range(alerts)]
    return out


def alert(i: int, now: datetime, **update: Any) -> AlertView:
    """One synthetic alert."""
    return AlertView(
        id=f"al-{i}",
        rule_id=f"rule-{i % 20}",
        rule_kind="bathroom_too_long",
        room=ROOMS[i % len(ROOMS)],
        severity=KINDS[i % 3],
        state="notified",
        raised_at=now - timedelta(minutes=i),
        updated_at=now,
        escalation_step=1,
        message={"en": f"Alert number {i}: bathroom occupied for {i} min", "zh-CN": f"第 {i} 条警报"},
        **update,
    )


def probes(home: str, alerts: int, count: int) -> Iterator[tuple[str, str, bytes]]:
    """(kind, topic, payload) of each probe, cycling through the four kinds."""
    t = Topics.for_home(home)
    now = datetime.now(UTC)
    for n in range(count):
        kind = ("alert_changed", "alert_new", "alert_closed", "device_state")[n % 4]
        i = (n * 7) % alerts
        match kind:
            case "alert_changed":
                payload = alert(i, now, note=f"probe {n}").model_dump_json().encode()
                yield kind, t.alert(f"al-{i}"), payload
            case "alert_new":
                yield kind, t.alert(f"al-new-{n}"), alert(alerts + n, now).model_dump_json().encode()
            case "alert_closed":
                yield kind, t.alert(f"al-new-{n - 1}"), b""
            case _:
                state = DeviceState(
                    ts=now, values={"temperature": n % 40}, availability=Availability(state=AvailabilityState.ONLINE)
                )
                yield kind, t.device_state(f"z2m-{i:06x}"), state.model_dump_json().encode()


async def one_run(url: str, port: int, home: str, devices: int, alerts: int, count: int, work: Path) -> dict[str, Any]:
    """Load a home, start a TUI process, send probes one at a time; latencies by kind and RSS."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in home_messages(home, devices, alerts):
            await client.publish(topic, payload, qos=1, retain=True)
        args = [PYTHON, str(ROOT / "bench" / "tui_child.py"), "--url", url, "--home", home]
        args += ["--alerts", str(alerts), "--devices", str(devices)]
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, start_new_session=True)
        assert proc.stdout is not None
        try:
            started = time.monotonic()
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            load_s = time.monotonic() - started
            assert json.loads(line)["ready"], line
            by_kind: dict[str, list[float]] = {}
            end_to_end: list[float] = []
            for kind, topic, payload in probes(home, alerts, count):
                sent = time.time()
                await client.publish(topic, payload, qos=1, retain=True)
                if kind == "device_state":
                    # Not on the Alerts view: stored, not drawn; the next probe's redraw covers it.
                    continue
                got = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
                by_kind.setdefault(kind, []).append(got["latency"])
                end_to_end.append(got["wall"] - sent)
            rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            await proc.wait()
    every = [x for v in by_kind.values() for x in v]
    return {"by_kind": by_kind, "all": every, "end_to_end": end_to_end, "rss_mb": rss, "load_s": load_s}


def p99(values: list[float]) -> float:
    """The 99th percentile (the largest value for fewer than 100)."""
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def main() -> None:
    parser = args_parser(__doc__ or "")
    parser.add_argument("--probes", type=int, default=200, help="probes per run (default: %(default)s)")
    a = parser.parse_args()
    runs, count = (1, 24) if a.quick else (a.runs, a.probes)
    report = Report(
        "tui",
        [
            "home",
            "devices",
            "alerts",
            "update_median_ms",
            "update_p99_ms",
            "publish_to_screen_median_ms",
            "rss_mb",
            "load_s",
        ],
    )
    with workdir() as work, mosquitto(work) as broker:
        for label, devices, alerts in (("small (baseline)", 10, 5), ("large", 1000, 500)):
            results = [
                asyncio.run(one_run(broker.url, broker.port, f"bench{n}{devices}", devices, alerts, count, work))
                for n in range(runs)
            ]
            report.add(
                home=label,
                devices=devices,
                alerts=alerts,
                update_median_ms=median([statistics.median(r["all"]) * 1000 for r in results]),
                update_p99_ms=median([p99(r["all"]) * 1000 for r in results]),
                publish_to_screen_median_ms=median([statistics.median(r["end_to_end"]) * 1000 for r in results]),
                rss_mb=median([r["rss_mb"] for r in results]),
                load_s=median([r["load_s"] for r in results]),
            )
            for kind in ("alert_changed", "alert_new", "alert_closed"):
                values = [statistics.median(r["by_kind"][kind]) * 1000 for r in results if kind in r["by_kind"]]
                report.notes.append(f"{label}: {kind} median {median(values):.1f} ms")
    report.notes.append("targets for the large home: p99 < 100 ms, < 150 MB")
    report.emit()


if __name__ == "__main__":
    main()
