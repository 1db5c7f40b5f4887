"""A synthetic recorded home, as `hub export` writes it: a steady daily routine with known incidents.

Used by the replay tests (a week: a fall, a night exit, a stove left on, a missed medication) and
by the replay benchmark (a month with frequent sensor reports).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.model import Status, Value
from tests.rules_home import DEVICES, MONDAY, ROOMS, TZ, device

# Every rule of the library (routine_change needs 14 days of history: silent in a week).
RULES = """\
  - kind: inactivity
  - kind: no_exit_use
  - kind: morning_check
  - kind: bathroom_too_long
  - kind: night_out_of_bed
  - kind: night_exit
  - kind: door_left_open
  - kind: night_path_light
  - kind: appliance_left_on
  - kind: medication
  - kind: fridge_unused
  - kind: room_temperature
  - kind: smoke_gas_co
  - kind: water_leak
  - kind: sos
  - kind: fall
  - kind: device_health
  - kind: routine_change
"""

# (day, local HH:MM, rule kind, room, severity) of what the incidents must raise, and nothing else.
EXPECTED = [
    (2, "15:20", "fall", "living-room", "warning"),
    (2, "15:21", "fall", "living-room", "critical"),
    (3, "02:10", "night_exit", "hallway", "warning"),
    (3, "02:16", "night_exit", "hallway", "critical"),
    (4, "12:32", "appliance_left_on", "kitchen", "warning"),  # on at 12:02, kitchen empty from 12:05
    (5, "10:30", "medication", "living-room", "warning"),
]


def config_text(home: str = "synthetic") -> str:
    """devices.yaml of the synthetic home (its devices come from the recording)."""
    rooms = "".join(f"  - {{id: {r}, name: {r.replace('-', ' ').capitalize()}}}\n" for r in ROOMS)
    return (
        f"home: {{id: {home}, name: Synthetic home, timezone: Asia/Shanghai, language: en}}\n"
        "people:\n  caregivers:\n    - {id: daughter, name: Daughter, tier: 1}\n"
        f"rooms:\n{rooms}rules:\n{RULES}"
    )


class _Log:
    """State rows with merged values, as the hub's store keeps them."""

    def __init__(self) -> None:
        self.rows: list[tuple[datetime, str, dict[str, Value]]] = []
        self.values: dict[str, dict[str, Value]] = {}

    def set(self, ts: datetime, device_id: str, **values: Value) -> None:
        merged = self.values.setdefault(device_id, {})
        merged.update(values)
        self.rows.append((ts, device_id, dict(merged)))

    def pulse(self, ts: datetime, device_id: str, key: str = "motion") -> None:
        self.set(ts, device_id, **{key: True})
        self.set(ts + timedelta(seconds=60), device_id, **{key: False})

    def door(self, ts: datetime, device_id: str, seconds: float = 20) -> None:
        self.set(ts, device_id, contact=True)
        self.set(ts + timedelta(seconds=seconds), device_id, contact=False)


def _at(day: int, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return MONDAY.replace(hour=hour, minute=minute) + timedelta(days=day)


def _day(log: _Log, d: int, incidents: bool) -> None:
    at = lambda hhmm: _at(d, hhmm)  # noqa: E731 - local shorthand for this day's times
    # Getting up, bathroom, breakfast.
    log.set(at("06:45"), "z2m-bed", occupancy=False)
    log.pulse(at("06:46"), "z2m-bedroom-motion")
    log.set(at("06:50"), "z2m-bath-door", contact=True)
    log.pulse(at("06:50"), "z2m-bath-motion")
    log.set(at("06:51"), "z2m-bath-door", contact=False)
    log.set(at("07:01"), "z2m-bath-door", contact=True)
    log.pulse(at("07:05"), "z2m-kitchen-motion")
    log.door(at("07:06"), "z2m-fridge")
    log.set(at("07:10"), "tasmota-cooktop", power=1200.0)
    log.set(at("07:25"), "tasmota-cooktop", power=0.0)
    missed = incidents and d == 5
    if not missed:
        log.door(at("08:30"), "z2m-pillbox")
    # The day: something every 45 min in the living room or the kitchen, the radar sees her sit.
    for n in range(19):
        ts = at("07:30") + timedelta(minutes=45 * n)
        if at("10:00") <= ts < at("11:40"):
            continue  # out
        if n % 2:
            log.pulse(ts, "z2m-kitchen-motion")
        else:
            log.pulse(ts, "z2m-living-motion")
            log.set(ts, "homie-radar", presence=True)
            log.set(ts + timedelta(minutes=20), "homie-radar", presence=False)
    # Out for a walk 10:00-11:30.
    log.pulse(at("09:58"), "z2m-hall-motion")
    log.door(at("10:00"), "z2m-front-door")
    log.door(at("11:30"), "z2m-front-door")
    log.pulse(at("11:31"), "z2m-hall-motion")
    # Lunch; on day 4 the stove is left on and she goes to the living room.
    log.pulse(at("12:00"), "z2m-kitchen-motion")
    log.door(at("12:01"), "z2m-fridge")
    log.set(at("12:02"), "tasmota-cooktop", power=1500.0)
    log.pulse(at("12:05"), "z2m-kitchen-motion")
    stove = incidents and d == 4
    log.set(at("13:10" if stove else "12:25"), "tasmota-cooktop", power=0.0)
    if stove:
        log.pulse(at("12:45"), "z2m-living-motion")
    # Bathroom at noon and in the afternoon, a rest in the bedroom.
    for hhmm in ("12:40", "17:10"):
        log.set(at(hhmm), "z2m-bath-door", contact=True)
        log.pulse(at(hhmm), "z2m-bath-motion")
        log.set(at(hhmm) + timedelta(minutes=1), "z2m-bath-door", contact=False)
        log.set(at(hhmm) + timedelta(minutes=8), "z2m-bath-door", contact=True)
    # Through the bedroom and the hallway now and then (motion sensors report at least every 6 daytime hours).
    for hhmm in ("09:30", "13:30", "18:30"):
        log.pulse(at(hhmm), "z2m-bedroom-motion")
    for hhmm in ("07:20", "15:00", "19:00"):
        log.pulse(at(hhmm), "z2m-hall-motion")
    if incidents and d == 2:
        log.set(at("15:20"), "homie-radar", fall=True)
        log.set(at("15:35"), "homie-radar", fall=False)
    # Temperature through the day.
    for hour in range(24):
        log.set(at(f"{hour:02d}:15"), "ha-kitchen-climate", temperature=23.5 + (hour % 5) / 10, humidity=55.0)
    # Evening: to bed at 22:00 in the dark.
    log.set(at("21:40"), "z2m-bedroom-motion", illuminance=3.0)
    log.pulse(at("21:45"), "z2m-bedroom-motion")
    log.set(at("22:00"), "z2m-bed", occupancy=True)
    # A night trip to the bathroom (path lights come on); on night 3 a walk out of the door at 02:10.
    night = _at(d + 1, "02:30")
    log.set(night, "z2m-bed", occupancy=False)
    log.pulse(night + timedelta(minutes=1), "z2m-bedroom-motion")
    log.set(night + timedelta(minutes=2), "z2m-bath-door", contact=True)
    log.pulse(night + timedelta(minutes=2), "z2m-bath-motion")
    log.set(night + timedelta(minutes=3), "z2m-bath-door", contact=False)
    log.set(night + timedelta(minutes=7), "z2m-bath-door", contact=True)
    log.set(night + timedelta(minutes=10), "z2m-bed", occupancy=True)
    if incidents and d == 2:
        out = _at(d + 1, "02:05")
        log.set(out, "z2m-bed", occupancy=False)
        log.pulse(out + timedelta(minutes=2), "z2m-hall-motion")
        log.door(out + timedelta(minutes=5), "z2m-front-door", seconds=60)  # 02:10 open, 02:11 closed
        log.door(out + timedelta(minutes=35), "z2m-front-door")  # back at 02:40
        log.pulse(out + timedelta(minutes=36), "z2m-hall-motion")
        log.set(out + timedelta(minutes=38), "z2m-bed", occupancy=True)


def rows(days: int = 7, *, incidents: bool = True, reports_per_hour: int = 0, seed: int = 7) -> list[dict[str, Any]]:
    """The export rows of the synthetic home: devices, then state rows in time order.

    `reports_per_hour` adds that many extra temperature reports per hour (a busy home's sensor
    traffic, for the benchmark); they change nothing the rules care about.
    """
    log = _Log()
    start = MONDAY.replace(hour=6)
    log.set(start, "z2m-bed", occupancy=True)
    for d in range(days):
        _day(log, d, incidents)
    noise = random.Random(seed)
    if reports_per_hour:
        step = timedelta(hours=1) / reports_per_hour
        ts = start
        while ts < start + timedelta(days=days):
            log.set(ts, "ha-kitchen-climate", temperature=round(23.0 + noise.random(), 2))
            ts += step
    out: list[dict[str, Any]] = [
        {
            "table": "device",
            "id": d.id,
            "description": device(d).model_copy(update={"status": Status.ADOPTED}).model_dump(mode="json"),
            "status": "adopted",
            "room": d.room,
            "updated_at": start.astimezone(UTC).isoformat(),
        }
        for d in DEVICES
    ]
    log.rows.sort(key=lambda r: r[0])
    out += [
        {"table": "state", "device_id": dev, "ts": ts.astimezone(UTC).isoformat(), "values": values}
        for ts, dev, values in log.rows
    ]
    return out


def lines(days: int = 7, **kw: Any) -> Iterator[str]:
    """The recording as `hub export` JSON lines."""
    for row in rows(days, **kw):
        yield json.dumps(row, ensure_ascii=False)


def local(ts: datetime) -> tuple[int, str]:
    """(day from the start Monday, HH:MM) of a moment."""
    here = ts.astimezone(TZ)
    return (here.date() - MONDAY.date()).days, f"{here:%H:%M}"
