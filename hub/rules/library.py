"""The age-friendly rule library (RULES.md): one class per rule kind, plus the generic rule.

Each rule picks its inputs by point kind, room and role (`select`), keeps the little state it
needs, and keeps every pending deadline in the engine's timer table with the data needed to act
on it after a restart. Rules never do I/O and never read a clock: time is the event's or the
deadline's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, ClassVar

from typing_extensions import override

from hub.api import HouseMode, Language, Severity
from hub.config import Role
from hub.model import Availability, AvailabilityState, Kind, Value
from hub.rules.alerts import AlertRequest
from hub.rules.engine import Engine, Input
from hub.rules.messages import LANGUAGES
from hub.rules.routine import LABELS, Category, Change, Digest, describe, weekly_digest
from hub.rules.spec import (
    ApplianceLeftOn,
    BathroomTooLong,
    Condition,
    DeviceHealth,
    DoorLeftOpen,
    Fall,
    FridgeUnused,
    Generic,
    Inactivity,
    Match,
    Medication,
    MorningCheck,
    NightExit,
    NightOutOfBed,
    NightPathLight,
    NoExitUse,
    RoomTemperature,
    RoutineChange,
    RuleBase,
    SmokeGasCo,
    Sos,
    WaterLeak,
)
from hub.rules.timeutil import NEVER, at_local, local_hhmm, next_local, window_deadline

PRESENCE_KINDS = frozenset({Kind.MOTION, Kind.OCCUPANCY, Kind.PRESENCE})
ACTIVITY_KINDS = PRESENCE_KINDS | {Kind.CONTACT, Kind.BUTTON, Kind.DOORBELL}
APPLIANCE_ROLES = frozenset({Role.COOKTOP.value, Role.KETTLE.value, Role.HEATER.value, Role.IRON.value})
ALARM_KINDS = frozenset({Kind.SMOKE, Kind.GAS, Kind.CARBON_MONOXIDE})
LIGHT_KINDS = frozenset({Kind.LIGHT, Kind.SWITCH})
SAFETY_INPUT_KINDS = ALARM_KINDS | {Kind.WATER_LEAK, Kind.SOS, Kind.FALL}
POWER_ON_WATTS = 20.0  # an appliance drawing more than this is in use: someone switched it on
LONG_PRESS = frozenset({"long", "hold", "long_press", "long_click", "hold_release", "long_release"})
# Words in a room's id or names that say what the room is, when no device role says it.
ROOM_WORDS: dict[str, tuple[str, ...]] = {
    "bathroom": ("bath", "toilet", "wc", "washroom", "卫生间", "浴室", "厕所", "洗手间"),
    "bedroom": ("bed", "卧室", "睡房"),
    "kitchen": ("kitchen", "厨房"),
}
ROOM_ROLES: dict[str, frozenset[str]] = {
    "bathroom": frozenset({Role.BATHROOM_DOOR.value}),
    "bedroom": frozenset({Role.BED.value}),
    "kitchen": frozenset({Role.COOKTOP.value, Role.FRIDGE.value, Role.KETTLE.value}),
}


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _minutes(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() / 60))


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _light_on(value: Value) -> bool:
    if isinstance(value, dict):
        return value.get("on") is True
    return value is True


class Rule:
    """What every rule does by default: nothing; subclasses say what they watch and how they react."""

    kind: ClassVar[str]
    # Tags of devices a rule acts on rather than reads: their health is not the rules' concern.
    ACTION_TAGS: ClassVar[frozenset[str]] = frozenset({"light", "valve", "switch"})

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        self.spec = spec
        self.e = engine
        self.id = spec.rule_id
        self._only = frozenset(spec.devices)
        self._cache: dict[str, tuple[int, Any]] = {}

    # -- inputs ------------------------------------------------------------------------

    def accepts(self, inp: Input) -> str | None:
        """The tag this rule gives an input, or None when it does not use it."""
        if self.spec.room is not None and inp.room != self.spec.room:
            return None
        if self._only and inp.device_id not in self._only:
            return None
        return self.select(inp)

    def select(self, inp: Input) -> str | None:
        """The tag for an input in scope (room and device limits already applied)."""
        return None

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """A value derived from the set of devices, recomputed when devices change.

        Only from inputs that some rule accepts, or that have a role: a change to any other
        device does not bump the engine's version (see Engine._see).
        """
        hit = self._cache.get(name)
        if hit is None or hit[0] != self.e.version:
            hit = (self.e.version, compute())
            self._cache[name] = hit
        return hit[1]

    def my_inputs(self) -> list[tuple[str, Input]]:
        """Every (tag, input) this rule uses now."""
        return self.cached(  # type: ignore[no-any-return]
            "inputs", lambda: [(t, i) for i in self.e.inputs() if (t := self.accepts(i)) is not None]
        )

    def has_inputs(self, *tags: str) -> bool:
        """Whether any device feeds this rule (with one of these tags, if given)."""
        return any(not tags or t in tags for t, _ in self.my_inputs())

    def rooms(self, what: str) -> frozenset[str]:
        """The rooms that are bathrooms, bedrooms or kitchens: by device roles, else by their names."""

        def compute() -> frozenset[str]:
            found = {i.room for i in self.e.inputs() if i.room and i.role in ROOM_ROLES[what]}
            for room in self.e.config.rooms:
                text = f"{room.id} {room.name} {room.name_zh or ''}".lower()
                if any(word in text for word in ROOM_WORDS[what]):
                    found.add(room.id)
            return frozenset(found)

        return self.cached(f"rooms.{what}", compute)  # type: ignore[no-any-return]

    # -- reactions (default: none) -----------------------------------------------------

    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        """A value (state change or momentary event) of one of this rule's inputs."""

    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        """One of this rule's deadlines came."""

    def on_availability(self, device_id: str, availability: Availability, ts: datetime) -> None:
        """An adopted device came online, went offline or went stale."""

    def on_report(self, device_id: str, ts: datetime) -> None:
        """A device that feeds some rule reported (device health listens)."""

    def on_command(self, device_id: str, values: dict[str, Value], ts: datetime) -> None:
        """A person (not a rule) sent a command to one of this rule's devices."""

    def on_mode(self, old: HouseMode, new: HouseMode) -> None:
        """The house mode changed."""

    def restored(self, name: str, deadline: datetime, data: dict[str, Any]) -> None:
        """A stored deadline of this rule was put back after a restart."""

    def start(self) -> None:
        """Arm the first deadlines that were not restored."""

    # -- helpers -----------------------------------------------------------------------

    def alert(self, room: str | None, severity: Severity, code: str, **params: Any) -> None:
        """Raise this rule's alert (the engine applies modes, snoozes and the alert book's rules)."""
        devices = tuple(params.pop("devices", ()))
        resident: timedelta | None = params.pop("resident_first", None)
        self.e.alert(self, room, severity, code, params, devices=devices, resident_first=resident)

    def clear(self, room: str | None, note: str | None = None) -> None:
        """This rule's condition in a room is over."""
        self.e.clear(self, room, note)

    def hhmm(self, ts: datetime | None = None) -> str:
        """A moment as local HH:MM."""
        return local_hhmm(ts or self.e.now, self.e.tz)

    def is_activity(self, tag: str, inp: Input, value: Value, last: dict[str, float]) -> bool:
        """Whether a value shows a person doing something (motion, a door, a button, an appliance switched on)."""
        if inp.kind in PRESENCE_KINDS:
            return value is True
        if inp.kind == Kind.POWER:
            watts = _number(value)
            before = last.get(inp.device_id, 0.0)
            if watts is None:
                return False
            last[inp.device_id] = watts
            return watts > POWER_ON_WATTS >= before
        return inp.kind in ACTIVITY_KINDS and value is not None


def _activity_tag(inp: Input) -> str | None:
    if inp.role == Role.EXIT_DOOR.value and inp.kind == Kind.CONTACT:
        return "exit"
    if inp.kind in ACTIVITY_KINDS:
        return "activity"
    if inp.kind == Kind.POWER and inp.role in APPLIANCE_ROLES:
        return "activity"
    return None


class InactivityRule(Rule):
    """No activity for 4 h in the daytime while home (2 h with presence or chair sensors); away is inferred."""

    kind = "inactivity"
    spec: Inactivity

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._power: dict[str, float] = {}
        self._door_open = False

    @override
    def select(self, inp: Input) -> str | None:
        return _activity_tag(inp)

    def limit(self) -> timedelta:
        """4 h, or 2 h where presence or chair sensors see a person sitting still."""
        sharp = self.cached(
            "sharp", lambda: any(i.kind == Kind.PRESENCE or i.role == Role.CHAIR.value for _, i in self.my_inputs())
        )
        return self.spec.after_with_presence if sharp else self.spec.after

    def _count_from(self, since: datetime) -> None:
        limit = self.limit()
        deadline = window_deadline(since, limit, self.spec.window, self.e.tz)
        self.e.arm(self, "silence", deadline, {"since": _iso(since), "limit": limit.total_seconds()})

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if tag == "exit":
            opened = value is True
            if self._door_open and not opened:
                # A door cycle: if nobody moves inside for a while, the resident went out.
                self.e.arm(self, "away", ts + self.spec.away_after, {"closed": _iso(ts)})
            self._door_open = opened
        elif not self.is_activity(tag, inp, value, self._power):
            return
        else:
            self.e.disarm(self, "away")
        self.e.disarm(self, "away_state")
        self._count_from(ts)
        self.clear(self.spec.room, "activity")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        if name == "away":
            # Gone out: nothing to count until someone is back inside.
            self.e.disarm(self, "silence")
            self.e.arm(self, "away_state", NEVER, {"since": data.get("closed")})
            self.clear(self.spec.room, "away inferred")
            return
        if name != "silence":
            return
        since = _at(data["since"])
        self.alert(
            self.spec.room,
            "warning",
            "inactivity",
            since=self.hhmm(since),
            minutes=_minutes(self.e.now - since),
            limit=_minutes(timedelta(seconds=float(data.get("limit", self.limit().total_seconds())))),
            resident_first=self.spec.resident_first,
        )

    @override
    def restored(self, name: str, deadline: datetime, data: dict[str, Any]) -> None:
        if name != "silence":
            return
        # A motion seen after the stored countdown started (its write may not have landed) moves it on.
        since = _at(data["since"])
        for _, inp in self.my_inputs():
            seen = self.e.last_report(inp.device_id)
            if inp.kind in PRESENCE_KINDS and seen and seen > since and self.e.value(inp.device_id, inp.key) is True:
                since = seen
        if since != _at(data["since"]):
            self._count_from(since)

    @override
    def start(self) -> None:
        if self.e.armed(self, "silence") or self.e.armed(self, "away_state") or not self.has_inputs():
            return
        seen = [t for _, i in self.my_inputs() if (t := self.e.last_report(i.device_id)) is not None]
        self._count_from(max(seen) if seen else self.e.now)

    @override
    def on_mode(self, old: HouseMode, new: HouseMode) -> None:
        if new == "home" and old != "home" and self.has_inputs():
            # Back from away, or the visitors left: the silence counts from now.
            self.e.disarm(self, "away_state")
            self._count_from(self.e.now)


class NoExitUseRule(Rule):
    """The exit door not used for 48 h."""

    kind = "no_exit_use"
    spec: NoExitUse

    @override
    def select(self, inp: Input) -> str | None:
        return "exit" if inp.role == Role.EXIT_DOOR.value and inp.kind == Kind.CONTACT else None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        self.e.arm(self, "unused", ts + self.spec.after, {"since": _iso(ts), "room": inp.room})
        self.clear(inp.room, "door used")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        since = _at(data["since"])
        hours = round((self.e.now - since).total_seconds() / 3600)
        self.alert(data.get("room"), "info", "no_exit_use", since=self.hhmm(since), hours=hours)

    @override
    def start(self) -> None:
        if not self.e.armed(self, "unused") and self.has_inputs():
            door = self.my_inputs()[0][1]
            since = self.e.last_report(door.device_id) or self.e.now
            self.e.arm(self, "unused", since + self.spec.after, {"since": _iso(since), "room": door.room})


class MorningCheckRule(Rule):
    """No activity outside the bedroom (or in the kitchen, fridge, kettle) between 05:00 and 10:00."""

    kind = "morning_check"
    spec: MorningCheck

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._power: dict[str, float] = {}

    @override
    def select(self, inp: Input) -> str | None:
        if _activity_tag(inp) is None:
            return None
        if inp.role in (Role.FRIDGE.value, Role.KETTLE.value) or inp.room in self.rooms("kitchen"):
            return "activity"
        return "activity" if inp.room not in self.rooms("bedroom") else None

    def _arm_next(self, after: datetime) -> None:
        self.e.arm(self, "deadline", next_local(after, self.spec.deadline, self.e.tz))

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if not self.is_activity(tag, inp, value, self._power):
            return
        self.clear(None, "up and about")
        armed = self.e.armed(self, "deadline")
        day = self.e.local(ts).date()
        start = at_local(day, self.spec.start, self.e.tz)
        deadline = at_local(day, self.spec.deadline, self.e.tz)
        if start <= ts < deadline and armed is not None and armed[0] == deadline:
            self._arm_next(deadline)  # today is fine: check again tomorrow

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        self._arm_next(self.e.now)
        if self.has_inputs():
            self.alert(
                None,
                "warning",
                "morning_check",
                start=f"{self.spec.start:%H:%M}",
                deadline=f"{self.spec.deadline:%H:%M}",
                resident_first=self.spec.resident_first,
            )

    @override
    def start(self) -> None:
        if not self.e.armed(self, "deadline"):
            self._arm_next(self.e.now)


class BathroomTooLongRule(Rule):
    """Occupied too long: 20 min at night, 45 min by day; critical 10 min later."""

    kind = "bathroom_too_long"
    spec: BathroomTooLong

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._closed: dict[str, datetime] = {}  # room -> when its door closed (absent: open)
        self._motion: dict[str, datetime] = {}
        self._since: dict[str, datetime] = {}

    @override
    def select(self, inp: Input) -> str | None:
        if inp.room not in self.rooms("bathroom"):
            return None
        if inp.kind == Kind.CONTACT and (inp.role == Role.BATHROOM_DOOR.value or inp.role is None):
            return "door"
        if inp.kind == Kind.MOTION:
            return "motion"
        if inp.kind in (Kind.PRESENCE, Kind.OCCUPANCY):
            return "presence"
        return None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        room = inp.room or ""
        if tag == "door":
            if value is True:
                self._closed.pop(room, None)
                self._end(room, "door opened")
            elif value is False:
                self._closed[room] = ts
                motion = self._motion.get(room)
                if motion is not None and ts - motion <= timedelta(minutes=1):
                    self._begin(room, ts)  # walked in and closed the door behind them
        elif tag == "motion" and value is True:
            self._motion[room] = ts
            if room in self._closed and room not in self._since:
                self._begin(room, self._closed[room])
        elif tag == "presence":
            if value is True and room not in self._since:
                self._begin(room, ts)
            elif value is False and not self._door_says_occupied(room):
                self._end(room, "left")

    def _door_says_occupied(self, room: str) -> bool:
        return room in self._closed and room in self._motion and self._motion[room] >= self._closed[room]

    def _begin(self, room: str, since: datetime) -> None:
        self._since[room] = since
        night = self.spec.night.contains(since, self.e.tz)
        limit = self.spec.night_limit if night else self.spec.day_limit
        data = {"since": _iso(since), "room": room, "limit": limit.total_seconds(), "night": night}
        self.e.arm(self, f"long:{room}", since + limit, {**data, "severity": "warning"})

    def _end(self, room: str, why: str) -> None:
        if self._since.pop(room, None) is not None or self.e.armed(self, f"long:{room}"):
            self.e.disarm(self, f"long:{room}")
        self.clear(room, why)

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        room, since = data["room"], _at(data["since"])
        limit = timedelta(seconds=float(data["limit"]))
        severity: Severity = "critical" if data.get("severity") == "critical" else "warning"
        self.alert(
            room,
            severity,
            "bathroom_too_long",
            minutes=_minutes(self.e.now - since),
            limit=_minutes(limit),
            period="night" if data.get("night") else "day",
            since=self.hhmm(since),
            resident_first=self.spec.resident_first if severity == "warning" else None,
        )
        if severity == "warning":
            self.e.arm(self, name, since + limit + self.spec.critical_after, {**data, "severity": "critical"})

    @override
    def restored(self, name: str, deadline: datetime, data: dict[str, Any]) -> None:
        self._since[data["room"]] = _at(data["since"])


class NightOutOfBedRule(Rule):
    """Out of bed for 45 min between 22:00 and 06:30."""

    kind = "night_out_of_bed"
    spec: NightOutOfBed

    @override
    def select(self, inp: Input) -> str | None:
        if inp.role == Role.BED.value and inp.kind in PRESENCE_KINDS | {Kind.CONTACT}:
            return "bed"
        if inp.kind == Kind.PRESENCE and inp.room in self.rooms("bedroom") and not self.has_bed():
            return "bed"
        return None

    def has_bed(self) -> bool:
        """Whether a bed sensor exists (it is preferred over bedroom presence)."""
        return self.cached(  # type: ignore[no-any-return]
            "bed", lambda: any(i.role == Role.BED.value for i in self.e.inputs())
        )

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if value is True:
            self.e.disarm(self, "up")
            self.clear(inp.room, "back in bed")
            return
        if value is not False or self.e.armed(self, "up"):
            return
        occurrence = self.spec.window.occurrence(ts, self.e.tz)
        if occurrence is not None and ts + self.spec.after <= occurrence[1]:
            self.e.arm(self, "up", ts + self.spec.after, {"since": _iso(ts), "room": inp.room})

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        since = _at(data["since"])
        self.alert(
            data.get("room"),
            "warning",
            "night_out_of_bed",
            since=self.hhmm(since),
            minutes=_minutes(self.e.now - since),
            limit=_minutes(self.spec.after),
            resident_first=self.spec.resident_first,
        )


def light_values(inp: Input, on: bool, brightness: int = 100, color_temp: int | None = None) -> dict[str, Value]:
    """The normalized value that switches a light or a switch point on (dimmed, warm) or off."""
    if inp.kind == Kind.LIGHT:
        if not on:
            return {inp.key: {"on": False}}
        value: dict[str, bool | int | float | str | None] = {"on": True, "brightness": brightness}
        if color_temp is not None:
            value["color_temp"] = color_temp
        return {inp.key: value}
    return {inp.key: on}


class NightExitRule(Rule):
    """The exit door opens at night: warning, hallway light on; critical if nobody moves inside after."""

    kind = "night_exit"
    spec: NightExit

    @override
    def select(self, inp: Input) -> str | None:
        if inp.role == Role.EXIT_DOOR.value and inp.kind == Kind.CONTACT:
            return "exit"
        if inp.kind in PRESENCE_KINDS and inp.role != Role.BED.value:
            return "indoor"
        if inp.kind in LIGHT_KINDS and inp.writable and inp.role == Role.HALLWAY_LIGHT.value:
            return "light"
        return None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if tag == "exit" and value is True and self.spec.window.contains(ts, self.e.tz):
            self.e.disarm(self, "gone")
            self.alert(inp.room, "warning", "night_exit", time=self.hhmm(ts), devices=(inp.device_id,))
            self.e.arm(self, "open", NEVER, {"room": inp.room, "opened": _iso(ts)})
            if self.spec.hallway_light:
                for t, light in self.my_inputs():
                    if t == "light":
                        self.e.act(self, light.device_id, light_values(light, True))
        elif tag == "exit" and value is False and (opened := self.e.armed(self, "open")) is not None:
            self.e.disarm(self, "open")
            self.e.arm(self, "gone", ts + self.spec.no_return, {"room": opened[1]["room"], "closed": _iso(ts)})
        elif tag == "indoor" and value is True and (gone := self.e.armed(self, "gone")) is not None:
            self.e.disarm(self, "gone")
            self.clear(gone[1]["room"], "someone moved inside")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        if name == "gone":
            closed = _at(data["closed"])
            self.alert(
                data["room"],
                "critical",
                "night_exit_gone",
                time=self.hhmm(closed),
                minutes=_minutes(self.e.now - closed),
            )


class DoorLeftOpenRule(Rule):
    """The exit door open 5 min (2 min at night): info, then warning."""

    kind = "door_left_open"
    spec: DoorLeftOpen

    @override
    def select(self, inp: Input) -> str | None:
        return "exit" if inp.role == Role.EXIT_DOOR.value and inp.kind == Kind.CONTACT else None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        name = f"open:{inp.device_id}"
        if value is True:
            if not self.e.armed(self, name):
                night = self.spec.night.contains(ts, self.e.tz)
                after = self.spec.night_after if night else self.spec.after
                self.e.arm(self, name, ts + after, {"since": _iso(ts), "room": inp.room, "severity": "info"})
        elif value is False:
            self.e.disarm(self, name)
            self.clear(inp.room, "door closed")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        since = _at(data["since"])
        severity: Severity = "warning" if data["severity"] == "warning" else "info"
        self.alert(
            data["room"], severity, "door_left_open", since=self.hhmm(since), minutes=_minutes(self.e.now - since)
        )
        if severity == "info":
            self.e.arm(self, name, self.e.now + self.spec.warning_after, {**data, "severity": "warning"})


class NightPathLightRule(Rule):
    """Light the path at night on bed or bedroom motion in the dark; off after the last motion on the path."""

    kind = "night_path_light"
    spec: NightPathLight

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._ours: dict[str, dict[str, Value]] = {}  # lights this rule switched on, and how
        self._manual: set[str] = set()  # lights a person switched: never touched until they are off
        self._bath_motion: datetime | None = None

    @override
    def select(self, inp: Input) -> str | None:
        if inp.role == Role.PATH_LIGHT.value and inp.kind in LIGHT_KINDS and inp.writable:
            return "light"
        if inp.role == Role.BED.value and inp.kind in PRESENCE_KINDS:
            return "bed"
        if inp.kind == Kind.ILLUMINANCE:
            return "lux"
        if inp.kind in PRESENCE_KINDS:
            if inp.room in self.rooms("bedroom"):
                return "trigger"
            if inp.room in self.rooms("bathroom"):
                return "bath"
            return "path"
        return None

    def _dark(self, room: str | None) -> bool:
        readings = [
            (i.room == room, _number(self.e.value(i.device_id, i.key))) for t, i in self.my_inputs() if t == "lux"
        ]
        known = [(same, lux) for same, lux in readings if lux is not None]
        if not known:
            return True  # no light sensor: at night, assume dark
        here = [lux for same, lux in known if same] or [lux for _, lux in known]
        return min(here) < self.spec.lux_below

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if tag == "light":
            self._light_report(inp, value)
            return
        if tag == "lux":
            return
        if tag == "bath" and value is True:
            self._bath_motion = ts
        # Getting out of bed is the first step of the path; getting into it is not.
        moving = value is False if tag == "bed" else value is True
        if not moving:
            return
        if tag in ("trigger", "bed") and self.spec.window.contains(ts, self.e.tz) and self._dark(inp.room):
            self._lights_on()
        if self._ours:
            self.e.arm(self, "off", ts + self.spec.off_after, {"ours": sorted(self._ours)})

    def _lights_on(self) -> None:
        for tag, light in self.my_inputs():
            if tag != "light" or light.device_id in self._manual or light.device_id in self._ours:
                continue
            if _light_on(self.e.value(light.device_id, light.key)):
                self._manual.add(light.device_id)  # already on: a person's light
                continue
            in_bath = light.room in self.rooms("bathroom")
            brightness = self.spec.bathroom_brightness if in_bath else self.spec.brightness
            values = light_values(light, True, brightness, self.spec.color_temp)
            self._ours[light.device_id] = values
            self.e.act(self, light.device_id, values)

    def _light_report(self, inp: Input, value: Value) -> None:
        ours = self._ours.get(inp.device_id)
        if ours is not None:
            want = ours.get(inp.key)
            if not _matches(want, value):
                # Dimmed, brightened or switched off by a person: theirs from now on.
                del self._ours[inp.device_id]
                self._manual.add(inp.device_id)
        elif not _light_on(value):
            self._manual.discard(inp.device_id)
        else:
            self._manual.add(inp.device_id)

    @override
    def on_command(self, device_id: str, values: dict[str, Value], ts: datetime) -> None:
        self._ours.pop(device_id, None)
        self._manual.add(device_id)

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        bath_busy = self._bath_motion is not None and self.e.now - self._bath_motion < self.spec.off_after
        if bath_busy or any(
            self.e.value(i.device_id, i.key) is True
            for t, i in self.my_inputs()
            if t == "bath" and i.kind != Kind.MOTION
        ):
            self.e.arm(self, "off", self.e.now + self.spec.off_after, data)  # never dark on someone in the bathroom
            return
        for tag, light in self.my_inputs():
            if tag == "light" and light.device_id in data.get("ours", ()) and light.device_id not in self._manual:
                self.e.act(self, light.device_id, light_values(light, False))
        self._ours.clear()

    @override
    def restored(self, name: str, deadline: datetime, data: dict[str, Any]) -> None:
        for device_id in data.get("ours", ()):
            self._ours[str(device_id)] = {}


def _matches(want: Value, got: Value) -> bool:
    if isinstance(want, dict) and isinstance(got, dict):
        if got.get("on", want.get("on")) != want.get("on"):
            return False
        b_want, b_got = _number(want.get("brightness")), _number(got.get("brightness"))
        return b_want is None or b_got is None or abs(b_want - b_got) <= 3
    if want is None or want == {}:
        return _light_on(got)
    return bool(want == got or _light_on(want) == _light_on(got))


class ApplianceLeftOnRule(Rule):
    """An appliance above 100 W for 60 min (30 min when the room has been empty 15 min)."""

    kind = "appliance_left_on"
    spec: ApplianceLeftOn

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._on: dict[str, datetime] = {}
        self._motion: dict[str, datetime] = {}

    @override
    def select(self, inp: Input) -> str | None:
        roles = {r.value for r in self.spec.roles}
        if inp.role in roles and inp.kind == Kind.POWER:
            return "power"
        if inp.role in roles and inp.kind == Kind.SWITCH and inp.writable:
            return "switch"
        if inp.kind in PRESENCE_KINDS:
            return "motion"
        return None

    def _appliance_rooms(self) -> frozenset[str | None]:
        return self.cached(  # type: ignore[no-any-return]
            "rooms", lambda: frozenset(i.room for t, i in self.my_inputs() if t == "power")
        )

    def _deadline(self, room: str | None, on: datetime) -> datetime:
        long = on + self.spec.after
        watched = any(t == "motion" and i.room == room for t, i in self.my_inputs())
        if not watched:
            return long
        last = max(self._motion.get(room or "", on), on)
        return min(long, max(on + self.spec.empty_after, last + self.spec.empty_for))

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if tag == "motion":
            if value is True and inp.room in self._appliance_rooms():
                self._motion[inp.room or ""] = ts
                for dev, on in self._on.items():
                    if (armed := self.e.armed(self, f"on:{dev}")) is not None and armed[1]["room"] == inp.room:
                        self.e.arm(self, f"on:{dev}", self._deadline(inp.room, on), armed[1])
            return
        if tag != "power":
            return
        watts = _number(value)
        if watts is None:
            return
        dev = inp.device_id
        if watts > self.spec.watts and dev not in self._on:
            self._on[dev] = ts
            data = {"since": _iso(ts), "room": inp.room, "device": dev, "name": inp.name, "watts": watts}
            self.e.arm(self, f"on:{dev}", self._deadline(inp.room, ts), data)
        elif watts <= self.spec.watts and dev in self._on:
            del self._on[dev]
            for name in ("on", "remind", "cut"):
                self.e.disarm(self, f"{name}:{dev}")
            if not any(self.e.armed(self, f"remind:{d}") for d in self._on):
                self.clear(inp.room, "switched off")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        stage, _, dev = name.partition(":")
        since = _at(data["since"])
        params = {
            "device": dev,
            "device_name": data.get("name"),
            "minutes": _minutes(self.e.now - since),
            "since": self.hhmm(since),
            "watts": round(float(data.get("watts", 0))),
            "devices": (dev,),
        }
        if stage == "on":
            self.alert(data["room"], "warning", "appliance_left_on", **params)
            self.e.arm(self, f"remind:{dev}", self.e.now + self.spec.remind_every, data)
            if self.spec.cut_off and dev not in self.spec.never_cut:
                self.e.arm(self, f"cut:{dev}", self.e.now + self.spec.cut_off_after, data)
        elif stage == "remind":
            self.e.book.reminder(self.id, data["room"], self.e.now, f"still on after {params['minutes']} min")
            self.e.arm(self, name, self.e.now + self.spec.remind_every, data)
        elif stage == "cut":
            switches = [i for t, i in self.my_inputs() if t == "switch" and i.device_id == dev]
            for switch in switches[:1]:
                self.e.act(self, dev, {switch.key: False})
                self.alert(data["room"], "warning", "appliance_cut_off", time=self.hhmm(), **params)

    @override
    def restored(self, name: str, deadline: datetime, data: dict[str, Any]) -> None:
        self._on.setdefault(str(data["device"]), _at(data["since"]))


class MedicationRule(Rule):
    """The pillbox not opened by a dose window's end + 30 min; opened 3 times in one window."""

    kind = "medication"
    spec: Medication

    @override
    def select(self, inp: Input) -> str | None:
        return "pillbox" if inp.role == Role.PILLBOX.value and inp.kind == Kind.CONTACT else None

    def _arm_dose(self, index: int, after: datetime, data: dict[str, Any] | None = None) -> None:
        window = self.spec.doses[index]
        end = next_local(after - self.spec.grace, window.end, self.e.tz)
        self.e.arm(self, f"dose:{index}", end + self.spec.grace, data or {})

    def _room(self) -> str | None:
        boxes = [i for t, i in self.my_inputs() if t == "pillbox"]
        return boxes[0].room if boxes else self.spec.room

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if value is not True:
            return
        self.clear(inp.room, "pillbox opened")
        for index, window in enumerate(self.spec.doses):
            armed = self.e.armed(self, f"dose:{index}")
            if armed is None:
                continue
            deadline, data = armed
            start = self._window_start(index, deadline)
            if not start <= ts <= deadline:
                continue
            opens = int(data.get("opens", 0)) + 1
            self.e.arm(self, f"dose:{index}", deadline, {"opens": opens, "last": _iso(ts)})
            if opens == self.spec.double_dose_opens:
                self.alert(inp.room, "info", "medication_double", window=str(window), count=opens, time=self.hhmm(ts))

    def _window_start(self, index: int, deadline: datetime) -> datetime:
        window = self.spec.doses[index]
        end = deadline - self.spec.grace
        length = (
            at_local(end.astimezone(self.e.tz).date(), window.end, self.e.tz)
            - at_local(end.astimezone(self.e.tz).date(), window.start, self.e.tz)
        ) % timedelta(days=1)
        return end - length

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        stage, _, rest = name.partition(":")
        index = int(rest)
        window = self.spec.doses[index]
        if stage == "dose":
            self._arm_dose(index, self.e.now + timedelta(seconds=1))
            if int(data.get("opens", 0)) == 0 and self.has_inputs():
                self.alert(self._room(), "warning", "medication_missed", window=str(window), time=self.hhmm())
                if self.spec.reminders:
                    self.e.arm(
                        self, f"remind:{index}", self.e.now + self.spec.remind_every, {"left": self.spec.reminders}
                    )
        elif stage == "remind":
            left = int(data.get("left", 0)) - 1
            if self.e.book.find(self.id, self._room()) is None:
                return
            self.e.book.reminder(self.id, self._room(), self.e.now, f"reminder ({self.spec.reminders - left})")
            if left > 0:
                self.e.arm(self, name, self.e.now + self.spec.remind_every, {"left": left})

    @override
    def start(self) -> None:
        for index in range(len(self.spec.doses)):
            if not self.e.armed(self, f"dose:{index}"):
                self._arm_dose(index, self.e.now)


class FridgeUnusedRule(Rule):
    """The fridge (or a kitchen appliance) not used by 13:00, or for 24 h."""

    kind = "fridge_unused"
    spec: FridgeUnused

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._power: dict[str, float] = {}

    @override
    def select(self, inp: Input) -> str | None:
        if inp.role == Role.FRIDGE.value and inp.kind == Kind.CONTACT:
            return "fridge"
        if inp.kind == Kind.POWER and inp.role in (Role.KETTLE.value, Role.COOKTOP.value):
            return "plug"
        return None

    def _room(self) -> str | None:
        rooms = [i.room for t, i in self.my_inputs() if t == "fridge"] or [i.room for _, i in self.my_inputs()]
        return rooms[0] if rooms else self.spec.room

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        used = value is True if tag == "fridge" else self.is_activity(tag, inp, value, self._power)
        if not used:
            return
        self.clear(self._room(), "used")
        self.e.arm(self, "day", ts + self.spec.after, {"since": _iso(ts)})
        today = at_local(self.e.local(ts).date(), self.spec.by, self.e.tz)
        armed = self.e.armed(self, "by")
        if ts < today and armed is not None and armed[0] == today:
            self.e.arm(self, "by", next_local(today, self.spec.by, self.e.tz))

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        if name == "by":
            self.e.arm(self, "by", next_local(self.e.now, self.spec.by, self.e.tz))
            if self.has_inputs():
                self.alert(self._room(), "info", "fridge_morning", time=f"{self.spec.by:%H:%M}")
        else:
            since = _at(data["since"])
            hours = round((self.e.now - since).total_seconds() / 3600)
            self.alert(self._room(), "warning", "fridge_day", since=self.hhmm(since), hours=hours)

    @override
    def start(self) -> None:
        if not self.e.armed(self, "by"):
            self.e.arm(self, "by", next_local(self.e.now, self.spec.by, self.e.tz))
        if not self.e.armed(self, "day") and self.has_inputs():
            self.e.arm(self, "day", self.e.now + self.spec.after, {"since": _iso(self.e.now)})


def heat_index(celsius: float, humidity: float | None) -> float:
    """The apparent temperature (NOAA heat index) in °C; the air temperature below 26.7 °C or without humidity."""
    if humidity is None or celsius < 26.7:
        return celsius
    t, r = celsius * 9 / 5 + 32, humidity
    hi = (
        -42.379
        + 2.04901523 * t
        + 10.14333127 * r
        - 0.22475541 * t * r
        - 6.83783e-3 * t * t
        - 5.481717e-2 * r * r
        + 1.22874e-3 * t * t * r
        + 8.5282e-4 * t * r * r
        - 1.99e-6 * t * t * r * r
    )
    return max(celsius, (hi - 32) * 5 / 9)


class RoomTemperatureRule(Rule):
    """Heat (heat index when humidity is known) and cold, each level held for its time, with hysteresis."""

    kind = "room_temperature"
    spec: RoomTemperature

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._temp: dict[str, float] = {}
        self._humidity: dict[str, float] = {}
        self._active: dict[str, set[str]] = {}

    @override
    def select(self, inp: Input) -> str | None:
        return {Kind.TEMPERATURE: "temp", Kind.HUMIDITY: "humidity"}.get(inp.kind) if inp.room else None

    def levels(self) -> list[tuple[str, Severity, str, float, timedelta, str]]:
        """(name, severity, code, threshold, for, when) of each level; `when` is day, night or always."""
        s = self.spec
        return [
            ("extreme", "critical", "heat", s.extreme, timedelta(0), "always"),
            ("hot", "critical", "heat", s.hot, s.hot_for, "always"),
            ("heat_day", "warning", "heat", s.heat_day, s.heat_for, "day"),
            ("heat_night", "warning", "heat", s.heat_night, s.heat_for, "night"),
            ("very_cold", "critical", "cold", s.very_cold, s.very_cold_for, "always"),
            ("cold", "warning", "cold", s.cold, s.cold_for, "always"),
        ]

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        number = _number(value)
        room = inp.room or ""
        if number is None:
            return
        if tag == "humidity":
            self._humidity[room] = number
            if room not in self._temp:
                return
        else:
            self._temp[room] = number
        self._evaluate(room, ts)

    def _evaluate(self, room: str, ts: datetime) -> None:
        temp = self._temp[room]
        feels = heat_index(temp, self._humidity.get(room))
        night = self.spec.night.contains(ts, self.e.tz)
        active = self._active.setdefault(room, set())
        for name, _severity, code, threshold, hold, when in self.levels():
            value = feels if code == "heat" else temp
            slack = self.spec.hysteresis if name in active else 0.0
            fits = when == "always" or (when == "night") == night
            holds = fits and (value >= threshold - slack if code == "heat" else value < threshold + slack)
            key = f"{name}:{room}"
            if holds and name not in active:
                active.add(name)
                self.e.arm(self, key, ts + hold, {"room": room, "since": _iso(ts), "level": name})
            elif not holds and name in active:
                active.discard(name)
                self.e.disarm(self, key)
        if not active:
            self.clear(room, "temperature back to normal")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        level = next(row for row in self.levels() if row[0] == data["level"])
        room, since = data["room"], _at(data["since"])
        temp = self._temp.get(room)
        if temp is None:
            return
        feels = heat_index(temp, self._humidity.get(room))
        self.alert(
            room,
            level[1],
            level[2],
            value=f"{temp:.1f}",
            feels=f"{feels:.1f}",
            minutes=_minutes(self.e.now - since),
            since=self.hhmm(since),
        )

    @override
    def restored(self, name: str, deadline: datetime, data: dict[str, Any]) -> None:
        self._active.setdefault(data["room"], set()).add(data["level"])


class SmokeGasCoRule(Rule):
    """Smoke, gas or CO alarm: critical, an 'I'm OK' window for the resident, every light on."""

    kind = "smoke_gas_co"
    spec: SmokeGasCo

    @override
    def select(self, inp: Input) -> str | None:
        if inp.kind in ALARM_KINDS:
            return "alarm"
        if inp.kind == Kind.LIGHT and inp.writable:
            return "light"
        if inp.kind == Kind.SWITCH and inp.writable and inp.role in (Role.PATH_LIGHT.value, Role.HALLWAY_LIGHT.value):
            return "light"
        return None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if tag != "alarm":
            return
        if value is True:
            self.alert(
                inp.room,
                "critical",
                "smoke_gas_co",
                alarm=inp.kind.value,
                time=self.hhmm(ts),
                devices=(inp.device_id,),
                resident_first=self.spec.resident_first,
            )
            if self.spec.lights_on:
                for t, light in self.my_inputs():
                    if t == "light":
                        self.e.act(self, light.device_id, light_values(light, True))
        elif value is False:
            self.clear(inp.room, "alarm stopped")


class WaterLeakRule(Rule):
    """Water on the floor: warning, critical after 10 min, valve closed."""

    kind = "water_leak"
    spec: WaterLeak

    @override
    def select(self, inp: Input) -> str | None:
        if inp.kind == Kind.WATER_LEAK:
            return "leak"
        if inp.writable and (inp.kind == Kind.VALVE or (inp.role == Role.VALVE.value and inp.kind == Kind.SWITCH)):
            return "valve"
        return None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if tag != "leak":
            return
        name = f"wet:{inp.room or 'home'}"
        if value is True:
            self.alert(inp.room, "warning", "water_leak", time=self.hhmm(ts), devices=(inp.device_id,))
            if not self.e.armed(self, name):
                self.e.arm(self, name, ts + self.spec.critical_after, {"room": inp.room, "since": _iso(ts)})
            if self.spec.close_valve:
                for t, valve in self.my_inputs():
                    if t == "valve":
                        self.e.act(self, valve.device_id, {valve.key: False})
        elif value is False:
            self.e.disarm(self, name)
            self.clear(inp.room, "dry")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        self.alert(data.get("room"), "critical", "water_leak", time=self.hhmm(_at(data["since"])))


class SosRule(Rule):
    """The SOS button: critical at once, no resident stage; a long press within 60 s cancels (still told)."""

    kind = "sos"
    spec: Sos

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._pressed: dict[str | None, datetime] = {}

    @override
    def select(self, inp: Input) -> str | None:
        if inp.kind == Kind.SOS:
            return "sos"
        if inp.kind == Kind.BUTTON and inp.role == Role.SOS.value:
            return "button"
        return None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if value is None or value is False:
            return
        long = isinstance(value, str) and value.lower() in LONG_PRESS
        pressed = self._pressed.get(inp.room)
        if long and pressed is not None and ts - pressed <= self.spec.cancel_within:
            self.e.book.cancel_by_resident(self.id, inp.room, ts, "long press on the SOS button", tell=True)
            self._pressed.pop(inp.room, None)
            return
        self._pressed[inp.room] = ts
        self.alert(inp.room, "critical", "sos", time=self.hhmm(ts), devices=(inp.device_id,))


class FallRule(Rule):
    """A reported fall: suspected (resident may answer within 60 s), then critical; log only while learning."""

    kind = "fall"
    spec: Fall

    @override
    def select(self, inp: Input) -> str | None:
        return "fall" if inp.kind == Kind.FALL else None

    def _learning(self, ts: datetime) -> bool:
        installed = self.spec.installed
        return installed is not None and self.e.local(ts).date() < installed + timedelta(days=self.spec.learning_days)

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if value is not True:
            return
        if self._learning(ts):
            self.alert(inp.room, "info", "fall_learning", time=self.hhmm(ts), devices=(inp.device_id,))
            return
        self.alert(
            inp.room,
            "warning",
            "fall",
            time=self.hhmm(ts),
            devices=(inp.device_id,),
            resident_first=self.spec.critical_after,
        )
        self.e.arm(self, f"fall:{inp.room}", ts + self.spec.critical_after, {"room": inp.room, "at": _iso(ts)})

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        alert = self.e.book.find(self.id, data.get("room"))
        if alert is not None and alert.state not in ("acknowledged",):
            # Not cancelled by the resident: now it is critical.
            self.alert(data.get("room"), "critical", "fall", time=self.hhmm(_at(data["at"])))


class DeviceHealthRule(Rule):
    """Devices the rules need: offline, silent past their interval (stale), or low on battery."""

    kind = "device_health"
    spec: DeviceHealth

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._down: dict[str | None, set[str]] = {}

    @override
    def select(self, inp: Input) -> str | None:
        if inp.kind == Kind.BATTERY_LOW:
            return "battery"
        return None

    def used(self) -> set[str]:
        """The devices the other rules read."""
        return self.cached("used", self.e.used_devices)  # type: ignore[no-any-return]

    def interval(self, device_id: str) -> tuple[timedelta, bool] | None:
        """How long a device may stay silent, and whether only daytime counts."""

        def compute() -> dict[str, tuple[timedelta, bool]]:
            out: dict[str, tuple[timedelta, bool]] = {}
            for inp in self.e.inputs():
                if inp.device_id not in self.used():
                    continue
                if inp.kind in SAFETY_INPUT_KINDS or inp.role == Role.SOS.value:
                    out[inp.device_id] = (self.spec.safety_interval, False)
                elif inp.kind == Kind.MOTION:
                    out.setdefault(inp.device_id, (self.spec.motion_interval, True))
            return out

        return self.cached("intervals", compute).get(device_id)  # type: ignore[no-any-return]

    def _last_heard(self, device_id: str) -> datetime | None:
        rec = self.e.registry.get(device_id)
        if rec is None:
            return None
        times = [t for t in (rec.ts, rec.device.availability.last_seen) if t is not None]
        return max(times) if times else None

    def _name(self, device_id: str) -> tuple[str | None, str | None]:
        rec = self.e.registry.get(device_id)
        return (rec.device.room, rec.device.name) if rec else (None, None)

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if inp.device_id not in self.used():
            return
        if value is True:
            self.alert(inp.room, "info", "battery_low", device=inp.device_id, device_name=inp.name, time=self.hhmm(ts))

    @override
    def on_report(self, device_id: str, ts: datetime) -> None:
        interval = self.interval(device_id)
        if interval is None:
            return
        span, daytime = interval
        deadline = window_deadline(ts, span, self.spec.motion_window, self.e.tz) if daytime else ts + span
        self.e.arm(self, f"stale:{device_id}", deadline, {"device": device_id, "since": _iso(ts)})

    @override
    def on_availability(self, device_id: str, availability: Availability, ts: datetime) -> None:
        if device_id not in self.used():
            return
        room, name = self._name(device_id)
        down = self._down.setdefault(room, set())
        if availability.state in (AvailabilityState.OFFLINE, AvailabilityState.STALE):
            down.add(device_id)
            self.alert(room, "warning", "device_offline", device=device_id, device_name=name, time=self.hhmm(ts))
        elif availability.state is AvailabilityState.ONLINE and device_id in down:
            down.discard(device_id)
            if not down:
                self.clear(room, "back online")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        device_id = data["device"]
        room, dev_name = self._name(device_id)
        since = _at(data["since"])
        heard = self._last_heard(device_id)
        if heard is not None and heard > since:
            # It reported since (a heartbeat with unchanged values): count from then.
            self.on_report(device_id, heard)
            return
        hours = round((self.e.now - since).total_seconds() / 3600, 1)
        self.alert(
            room, "warning", "device_stale", device=device_id, device_name=dev_name, since=self.hhmm(since), hours=hours
        )


class RoutineChangeRule(Rule):
    """Today's silence longer than max(floor, 1.5 × p95) of the same hour of the week, after 14 days."""

    kind = "routine_change"
    spec: RoutineChange
    SAMPLES = 60  # silences kept per hour of the week
    HISTORY = timedelta(days=28)  # what a restart reloads from the store, and what the digest keeps
    DIGEST_AT = time(8, 0)  # the weekly digest: Monday morning, local time

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._power: dict[str, float] = {}
        self._gaps: list[deque[float]] = [deque(maxlen=self.SAMPLES) for _ in range(168)]
        self._first: datetime | None = None
        self._last: datetime | None = None
        self.log: deque[tuple[datetime, Category]] = deque()  # activity by category, for the digest

    @override
    def select(self, inp: Input) -> str | None:
        return _activity_tag(inp)

    def _hour(self, ts: datetime) -> int:
        local = self.e.local(ts)
        return local.weekday() * 24 + local.hour

    def usual(self, ts: datetime) -> timedelta:
        """The longest usual silence starting in this hour of the week (the percentile)."""
        hour = self._hour(ts)
        gaps = sorted(self._gaps[hour])
        if len(gaps) < 3:
            # Too few weeks for this hour of the week: the same hour on every day of the week.
            gaps = sorted(g for day in range(7) for g in self._gaps[day * 24 + hour % 24])
        if len(gaps) < 3:
            return self.spec.floor
        index = min(len(gaps) - 1, math.ceil(self.spec.percentile / 100 * len(gaps)) - 1)
        return timedelta(seconds=gaps[index])

    def threshold(self, ts: datetime) -> timedelta:
        """How long a silence starting now may last before it is unusual."""
        return max(self.spec.floor, self.usual(ts) * self.spec.factor)

    def _category(self, tag: str, inp: Input, value: Value) -> Category:
        if tag == "exit":
            return "exit" if value is True else "other"
        if inp.room in self.rooms("bathroom"):
            return "bathroom"
        return "kitchen" if inp.room in self.rooms("kitchen") else "other"

    def _note(self, tag: str, inp: Input, value: Value, ts: datetime) -> bool:
        # Learn one value: a silence that ended, and the activity log; whether it was activity.
        if not self.is_activity(tag, inp, value, self._power):
            return False
        if self._last is not None and ts > self._last:
            self._gaps[self._hour(self._last)].append((ts - self._last).total_seconds())
        self._first = self._first or ts
        self._last = ts if self._last is None else max(self._last, ts)
        self.log.append((ts, self._category(tag, inp, value)))
        while self.log and self.log[0][0] < ts - self.HISTORY:
            self.log.popleft()
        return True

    def _arm(self, ts: datetime) -> None:
        if self._first is not None and ts - self._first >= timedelta(days=self.spec.min_days):
            limit = self.threshold(ts)
            data = {
                "since": _iso(ts),
                "usual": self.usual(ts).total_seconds(),
                "severity": "info",
                "limit": limit.total_seconds(),
            }
            self.e.arm(self, "silence", ts + limit, data)
        else:
            self.e.disarm(self, "silence")

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        if not self._note(tag, inp, value, ts):
            return
        self.clear(None, "activity")
        self._arm(ts)

    @override
    def start(self) -> None:
        if self.e.armed(self, "digest") is None:
            monday = self.e.local().date() - timedelta(days=self.e.local().weekday())
            first = at_local(monday, self.DIGEST_AT, self.e.tz)
            self.e.arm(self, "digest", first if first > self.e.now else first + timedelta(days=7))

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        if name == "digest":
            self._digest()
            return
        since = _at(data["since"])
        severity: Severity = "warning" if data.get("severity") == "warning" else "info"
        self.alert(
            None,
            severity,
            "routine_change",
            since=self.hhmm(since),
            minutes=_minutes(self.e.now - since),
            usual=_minutes(timedelta(seconds=float(data["usual"]))),
        )
        if severity == "info":
            limit = timedelta(seconds=float(data["limit"]))
            self.e.arm(self, "silence", since + 2 * limit, {**data, "severity": "warning"})

    def digest(self, end: datetime) -> Digest | None:
        """The weekly routine digest for the week before `end` (None without three weeks of history)."""
        return weekly_digest(list(self.log), end, self.e.tz)

    def _digest(self) -> None:
        self.e.arm(self, "digest", self.e.now + timedelta(days=7))
        digest = self.digest(self.e.now)
        if digest is None or self.e.muted(self):
            return
        flagged = ", ".join(LABELS[m.name]["en"] for m in digest.flagged) or "none"
        message: dict[Language, str] = {lang: describe(digest, lang) for lang in LANGUAGES}
        advice: dict[Language, str] = {
            "zh-CN": "每周作息摘要（括号内为前两周平均）。变化 30% 以上的项目值得和老人聊一聊。",
            "en": f"Weekly routine digest (previous two weeks in brackets); changed by 30 % or more: {flagged}.",
        }
        # Its own alert key: the digest is information beside a silence alert, never a repeat of it.
        request = AlertRequest(
            rule_id=f"{self.id}.digest",
            rule_kind=self.kind,
            room=None,
            severity="info",
            message=message,
            advice=advice,
            trigger=self.e.trigger,
        )
        self.e.book.raise_(request, self.e.now)

    def learn(self, history: list[Change]) -> int:
        """Learn from stored changes (oldest first) without raising anything, then arm the silence; how many."""
        routes = {(i.device_id, i.key): (t, i) for t, i in self.my_inputs()}
        learnt = 0
        for change in history:
            route = routes.get((change.device_id, change.key))
            if route is not None and self._note(route[0], route[1], change.value, change.ts):
                learnt += 1
        if self._last is not None and self.e.armed(self, "silence") is None:
            self._arm(self._last)
        return learnt


def _matches_point(match: Match, inp: Input) -> bool:
    return (
        (match.device is None or match.device == inp.device_id)
        and (match.point is None or match.point == inp.key)
        and (match.kind is None or match.kind == inp.kind)
        and (match.room is None or match.room == inp.room)
        and (match.role is None or match.role.value == inp.role)
    )


def _holds(cond: Condition, value: Value) -> bool:
    if cond.is_ is not None:
        return bool(value == cond.is_)
    number = _number(value)
    if cond.above is not None and (number is None or number <= cond.above):
        return False
    if cond.below is not None and (number is None or number >= cond.below):
        return False
    return cond.above is not None or cond.below is not None or value is not None


class GenericRule(Rule):
    """When a point changes (to a value) or stays so for a while, if conditions hold, then act."""

    kind = "generic"
    spec: Generic

    def __init__(self, spec: RuleBase, engine: Engine) -> None:
        super().__init__(spec, engine)
        self._holding: set[tuple[str, str]] = set()
        when = self.spec.when
        self._changes = when.is_ is None and when.above is None and when.below is None

    @override
    def select(self, inp: Input) -> str | None:
        return "when" if _matches_point(self.spec.when, inp) else None

    @override
    def on_value(self, tag: str, inp: Input, value: Value, ts: datetime) -> None:
        point = (inp.device_id, inp.key)
        name = f"for:{inp.device_id}:{inp.key}"
        if self._changes:
            self._then(inp.room)
            return
        holds = _holds(self.spec.when, value)
        if holds and point not in self._holding:
            self._holding.add(point)
            if self.spec.when.for_:
                self.e.arm(self, name, ts + self.spec.when.for_, {"room": inp.room})
            else:
                self._then(inp.room)
        elif not holds and point in self._holding:
            self._holding.discard(point)
            self.e.disarm(self, name)
            self.clear(inp.room, "condition over")

    @override
    def on_timer(self, name: str, data: dict[str, Any]) -> None:
        self._then(data.get("room"))

    @override
    def restored(self, name: str, deadline: datetime, data: dict[str, Any]) -> None:
        _, device, key = name.split(":", 2)
        self._holding.add((device, key))

    def _conditions(self) -> bool:
        cond = self.spec.if_
        if cond.window is not None and not cond.window.contains(self.e.now, self.e.tz):
            return False
        if cond.modes and self.e.mode.mode not in cond.modes:
            return False
        for point in cond.points:
            found = [i for i in self.e.inputs() if _matches_point(point, i)]
            if not any(_holds(point, self.e.value(i.device_id, i.key)) for i in found):
                return False
        return True

    def _then(self, room: str | None) -> None:
        if not self._conditions():
            return
        for target in self.spec.then.set:
            for inp in self.e.inputs():
                if inp.writable and _matches_point(target, inp):
                    self.e.act(self, inp.device_id, {inp.key: target.value})
        alert = self.spec.then.alert
        if alert is not None:
            message = _both(alert.message)
            self.e.alert_text(
                self, room, alert.severity, message, _both(alert.advice), resident_first=alert.resident_first
            )


def _both(texts: dict[Language, str]) -> dict[Language, str]:
    if not texts:
        return {}
    first = next(iter(texts.values()))
    return {"zh-CN": texts.get("zh-CN", first), "en": texts.get("en", first)}


RULES: dict[str, type[Rule]] = {
    cls.kind: cls
    for cls in (
        InactivityRule,
        NoExitUseRule,
        MorningCheckRule,
        BathroomTooLongRule,
        NightOutOfBedRule,
        NightExitRule,
        DoorLeftOpenRule,
        NightPathLightRule,
        ApplianceLeftOnRule,
        MedicationRule,
        FridgeUnusedRule,
        RoomTemperatureRule,
        SmokeGasCoRule,
        WaterLeakRule,
        SosRule,
        FallRule,
        DeviceHealthRule,
        RoutineChangeRule,
        GenericRule,
    )
}


def build_rule(spec: RuleBase, engine: Engine) -> Rule:
    """The rule object for a validated spec."""
    return RULES[str(getattr(spec, "kind"))](spec, engine)  # noqa: B009 - every spec has a kind literal
