"""A resident's day as data: timed steps over the example home, and incidents that can be injected.

Times are the home's local time of day. A step sets logical values on one simulated device
(`online: False` takes it off the network). The player in hub.sim.runner walks this table in
compressed time; incidents add their own steps and may mute parts of the day (someone who
has fallen does not go on to make tea).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any


@dataclass(frozen=True, slots=True)
class Step:
    """At `at` (local time of day), set `values` on the device the home calls `device`."""

    at: time
    device: str
    values: Mapping[str, Any]


def _t(text: str) -> time:
    return time.fromisoformat(text)


def steps(rows: Iterable[tuple[str, str, Mapping[str, Any]]]) -> tuple[Step, ...]:
    """Steps from (HH:MM[:SS], device, values) rows."""
    return tuple(Step(_t(at), dev, values) for at, dev, values in rows)


def _visit(at: str, room_motion: str, minutes: int = 1) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Motion on, then off again `minutes` later (a PIR's hold time ends)."""
    h, m = (int(x) for x in at.split(":")[:2])
    end = h * 60 + m + minutes
    return [
        (at, room_motion, {"motion": True}),
        (f"{end // 60 % 24:02d}:{end % 60:02d}", room_motion, {"motion": False}),
    ]


def _bathroom(at: str, minutes: int) -> list[tuple[str, str, Mapping[str, Any]]]:
    """A bathroom visit: door shut behind her, motion, door open again on the way out."""
    h, m = (int(x) for x in at.split(":")[:2])
    end = h * 60 + m + minutes
    out = f"{end // 60 % 24:02d}:{end % 60:02d}"
    return [
        (at, "bathroom_motion", {"motion": True}),
        (at + ":20", "bathroom_door", {"open": False}),
        (out, "bathroom_door", {"open": True}),
        (out + ":30", "bathroom_motion", {"motion": False}),
    ]


# Wang Xiuying's ordinary day. The night trips follow RULES.md's CASAS figures (median 4.6 min).
DAY: tuple[Step, ...] = steps(
    [
        ("00:00", "bedroom_climate", {"temperature": 24.0, "humidity": 63.0}),
        *_visit("02:40", "bedroom_motion"),
        ("02:41", "bed", {"presence": False}),
        *_bathroom("02:42", 5),
        ("02:49", "bed", {"presence": True}),
        # waking
        ("06:40", "bed", {"presence": False}),
        *_visit("06:40", "bedroom_motion", 3),
        *_bathroom("06:45", 12),
        ("07:00", "bedroom_climate", {"temperature": 25.0, "humidity": 60.0}),
        # breakfast
        ("07:10", "kettle", {"on": True}),
        ("07:10:30", "fridge", {"open": True}),
        ("07:11", "fridge", {"open": False}),
        ("07:14", "kettle", {"on": False}),
        ("07:15", "cooktop", {"on": True, "power": 1200.0}),
        ("07:15", "kitchen_env", {"temperature": 26.5}),
        ("07:27", "cooktop", {"on": False}),
        ("07:30", "kitchen_env", {"temperature": 25.5}),
        # medication from the pillbox, then the morning TV
        ("08:05", "chair", {"presence": True}),
        ("08:06", "pillbox", {"open": True}),
        ("08:07", "pillbox", {"open": False}),
        ("08:10", "reading_lamp", {"on": True}),
        ("09:30", "reading_lamp", {"on": False}),
        ("09:30", "chair", {"presence": False}),
        *_bathroom("09:35", 6),
        # a walk to the market
        ("09:50", "front_door", {"open": True}),
        ("09:51", "front_door", {"open": False}),
        ("10:55", "front_door", {"open": True}),
        ("10:56", "front_door", {"open": False}),
        # lunch
        ("11:40", "fridge", {"open": True}),
        ("11:41", "fridge", {"open": False}),
        ("11:45", "cooktop", {"on": True, "power": 1500.0}),
        ("12:05", "cooktop", {"on": False}),
        ("12:30", "chair", {"presence": True}),
        ("13:00", "living_env", {"temperature": 27.0, "humidity": 66.0}),
        # nap
        ("13:15", "chair", {"presence": False}),
        *_visit("13:16", "bedroom_motion"),
        ("13:17", "bed", {"presence": True}),
        ("14:20", "bed", {"presence": False}),
        *_visit("14:20", "bedroom_motion"),
        *_bathroom("14:25", 5),
        # visitors: her daughter comes by
        ("15:30", "front_door", {"open": True}),
        ("15:31", "front_door", {"open": False}),
        ("15:35", "kettle", {"on": True}),
        ("15:39", "kettle", {"on": False}),
        ("15:40", "chair", {"presence": True}),
        ("17:00", "front_door", {"open": True}),
        ("17:01", "front_door", {"open": False}),
        # dinner, evening pills, TV
        ("17:30", "fridge", {"open": True}),
        ("17:31", "fridge", {"open": False}),
        ("17:40", "cooktop", {"on": True, "power": 1300.0}),
        ("18:00", "cooktop", {"on": False}),
        ("18:30", "pillbox", {"open": True}),
        ("18:31", "pillbox", {"open": False}),
        ("18:35", "reading_lamp", {"on": True, "brightness": 80}),
        ("19:00", "living_env", {"temperature": 26.0, "humidity": 62.0}),
        ("21:10", "reading_lamp", {"on": False}),
        ("21:10", "chair", {"presence": False}),
        *_bathroom("21:15", 8),
        *_visit("21:25", "bedroom_motion", 2),
        ("21:30", "bed", {"presence": True}),
        # a night trip to the bathroom
        *_visit("23:50", "bedroom_motion"),
        ("23:50", "bed", {"presence": False}),
        *_bathroom("23:51", 4),
        ("23:57", "bed", {"presence": True}),
    ]
)

ACTIVITY = frozenset({"bed", "bedroom_motion", "bathroom_motion", "bathroom_door", "fridge", "kettle", "cooktop"})
ACTIVITY |= {"pillbox", "chair", "front_door", "reading_lamp"}


@dataclass(frozen=True, slots=True)
class Incident:
    """Something going wrong: steps relative to the moment it starts, and what of the day it silences."""

    title: str
    steps: tuple[tuple[float, str, Mapping[str, Any]], ...]  # (sim seconds after start, device, values)
    mutes: frozenset[str] = frozenset()  # devices whose day steps stop
    until: time | None = None  # when the muting ends (None: the rest of the run)
    key: str = ""  # the function key that injects it in `hub demo`


INCIDENTS: dict[str, Incident] = {
    "fall": Incident(
        "a fall in the bathroom: she went in, shut the door, and nothing moves since",
        (
            (0, "bathroom_motion", {"motion": True}),
            (20, "bathroom_door", {"open": False}),
            (90, "bathroom_motion", {"motion": False}),
        ),
        mutes=ACTIVITY,
        key="f1",
    ),
    "no_movement": Incident(
        "no movement all morning: she has not got out of bed",
        ((0, "bed", {"presence": True}),),
        mutes=ACTIVITY,
        until=_t("12:00"),
        key="f2",
    ),
    "stove": Incident(
        "the stove left on with nobody in the kitchen",
        ((0, "cooktop", {"on": True, "power": 1800.0}), (1, "kitchen_env", {"temperature": 29.0})),
        mutes=frozenset({"cooktop"}),
        key="f3",
    ),
    "night_exit": Incident(
        "a night exit: the front door opens and she does not come back",
        ((0, "bed", {"presence": False}), (60, "front_door", {"open": True}), (90, "front_door", {"open": False})),
        mutes=ACTIVITY,
        key="f4",
    ),
    "sos": Incident("an SOS press on the button by the bed", ((0, "sos", {"sos": "emergency"}),), key="f5"),
    "water_leak": Incident(
        "water leaking under the basin", ((0, "leak", {"leak": True}),), mutes=frozenset({"leak"}), key="f6"
    ),
    "battery": Incident(
        "the leak sensor's battery dying, then the sensor going silent",
        (
            (0, "leak", {"battery": 9, "battery_low": True}),
            (600, "leak", {"battery": 2}),
            (1200, "leak", {"online": False}),
        ),
        mutes=frozenset({"leak"}),
        key="f7",
    ),
}

BY_KEY: dict[str, str] = {inc.key: name for name, inc in INCIDENTS.items()}

_SCHEDULE_ITEM = re.compile(r"^\s*([a-z_]+)\s*@\s*(\d+(?:\.\d+)?)\s*(s|m|min)?\s*$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0}


@dataclass(frozen=True, slots=True)
class Scheduled:
    """An incident to inject after this many real seconds."""

    incident: str
    after: float


def parse_schedule(text: str) -> list[Scheduled]:
    """`sos@20s,fall@2m` -> scheduled incidents; ValueError names the bad item and the known incidents."""
    out: list[Scheduled] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        m = _SCHEDULE_ITEM.match(item)
        if m is None or m.group(1) not in INCIDENTS:
            known = ", ".join(INCIDENTS)
            raise ValueError(f"incident {item!r}: write NAME@SECONDS (e.g. sos@20s, fall@2m); incidents: {known}")
        out.append(Scheduled(m.group(1), float(m.group(2)) * _UNIT_SECONDS[m.group(3)]))
    return sorted(out, key=lambda s: s.after)


def seconds_of_day(t: time) -> float:
    """Seconds since midnight."""
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


@dataclass
class Mutes:
    """Which devices' day steps are silenced, and until which time of day."""

    active: dict[str, float | None] = field(default_factory=dict)  # device -> until (seconds of day) or None

    def add(self, incident: Incident) -> None:
        """Silence what the incident mutes."""
        until = seconds_of_day(incident.until) if incident.until else None
        for dev in incident.mutes:
            self.active[dev] = until

    def allows(self, step: Step) -> bool:
        """Whether a day step still runs; a mute with an end lifts once the step's time reaches it."""
        if step.device not in self.active:
            return True
        until = self.active[step.device]
        if until is not None and seconds_of_day(step.at) >= until:
            del self.active[step.device]
            return True
        return False
