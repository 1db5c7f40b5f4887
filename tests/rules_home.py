"""A simulated home for rule tests: real registry and engine, time on the SimClock, events as devices send them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.api import AlertView, HouseMode
from hub.clock import SimClock
from hub.config import Config, load_config_text
from hub.model import (
    Availability,
    AvailabilityChanged,
    AvailabilityState,
    Device,
    DeviceDiscovered,
    Event,
    Kind,
    Point,
    PointEvent,
    Protocol,
    StateChanged,
    Value,
)
from hub.registry import Forward, Named, Registry
from hub.rules.effects import Act, AlertChanged
from hub.rules.engine import Engine
from hub.rules.spec import parse_rules

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 3, 2, tzinfo=TZ)  # a Monday
START = MONDAY.replace(hour=8)


@dataclass(frozen=True)
class Dev:
    """A test device: id, room, role, and its points (key -> kind), writable keys."""

    id: str
    room: str
    points: dict[str, Kind]
    role: str | None = None
    writable: tuple[str, ...] = ()


# One home with every role: the default for rule scenarios.
DEVICES: tuple[Dev, ...] = (
    Dev("z2m-bed", "bedroom", {"occupancy": Kind.OCCUPANCY}, "bed"),
    Dev("z2m-bedroom-motion", "bedroom", {"motion": Kind.MOTION, "illuminance": Kind.ILLUMINANCE}),
    Dev("z2m-sos", "bedroom", {"action": Kind.BUTTON}, "sos"),
    Dev("z2m-bath-motion", "bathroom", {"motion": Kind.MOTION}),
    Dev("z2m-bath-door", "bathroom", {"contact": Kind.CONTACT}, "bathroom_door"),
    Dev("z2m-leak", "bathroom", {"water_leak": Kind.WATER_LEAK}),
    Dev("z2m-bath-light", "bathroom", {"light": Kind.LIGHT}, "path_light", ("light",)),
    Dev("tasmota-cooktop", "kitchen", {"power": Kind.POWER, "switch": Kind.SWITCH}, "cooktop", ("switch",)),
    Dev("z2m-fridge", "kitchen", {"contact": Kind.CONTACT}, "fridge"),
    Dev("ha-smoke", "kitchen", {"smoke": Kind.SMOKE}),
    Dev("z2m-kitchen-motion", "kitchen", {"motion": Kind.MOTION}),
    Dev("ha-kitchen-climate", "kitchen", {"temperature": Kind.TEMPERATURE, "humidity": Kind.HUMIDITY}),
    Dev("z2m-front-door", "hallway", {"contact": Kind.CONTACT}, "exit_door"),
    Dev("z2m-hall-motion", "hallway", {"motion": Kind.MOTION}),
    Dev("shelly-hall-light", "hallway", {"switch": Kind.SWITCH}, "hallway_light", ("switch",)),
    Dev("z2m-path-light", "hallway", {"light": Kind.LIGHT}, "path_light", ("light",)),
    Dev("z2m-valve", "bathroom", {"valve": Kind.VALVE}, "valve", ("valve",)),
    Dev("z2m-pillbox", "living-room", {"contact": Kind.CONTACT}, "pillbox"),
    Dev("homie-radar", "living-room", {"fall": Kind.FALL, "presence": Kind.PRESENCE}),
    Dev("z2m-living-motion", "living-room", {"motion": Kind.MOTION}),
)

ROOMS = ("bedroom", "bathroom", "kitchen", "hallway", "living-room")


def home_config(rules: str, alerts: str = "", caregivers: bool = True) -> Config:
    """A devices.yaml with the test home's rooms and devices and these rules (YAML list items)."""
    people = (
        "people:\n  caregivers:\n"
        "    - {id: daughter, name: Daughter, tier: 1, notify: ['json://127.0.0.1:9/a']}\n"
        "    - {id: neighbour, name: Neighbour, tier: 2, notify: ['json://127.0.0.1:9/b']}\n"
        if caregivers
        else ""
    )
    rooms = "".join(f"  - {{id: {r}, name: {r.replace('-', ' ').capitalize()}}}\n" for r in ROOMS)
    rooms = rooms.replace("name: Bathroom}", "name: Bathroom, name_zh: 卫生间}")
    return load_config_text(
        "home: {id: test, name: Test, timezone: Asia/Shanghai, language: en}\n"
        + people
        + f"rooms:\n{rooms}"
        + (f"alerts: {alerts}\n" if alerts else "")
        + f"rules:\n{rules}"
    )


def device(d: Dev) -> Device:
    """The hub model of a test device."""
    points = tuple(Point(key=k, kind=kind, writable=k in d.writable) for k, kind in d.points.items())
    proto = Protocol(d.id.split("-", 1)[0])
    return Device(id=d.id, name=d.id, protocol=proto, room=d.room, role=d.role, points=points)


@dataclass
class Home:
    """The engine of one test home, its clock and everything its rules did."""

    config: Config
    clock: SimClock
    registry: Registry
    engine: Engine
    raised: list[AlertView] = field(default_factory=list)
    changes: list[AlertChanged] = field(default_factory=list)
    acts: list[Act] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        rules: str,
        *,
        start: datetime = START,
        devices: tuple[Dev, ...] = DEVICES,
        alerts: str = "",
    ) -> Home:
        """A home with these rules, its devices discovered and reporting nothing yet."""
        config = home_config(rules, alerts)
        registry = Registry({d.id: Named(d.id, d.room, d.role) for d in devices})
        utc = start.astimezone(ZoneInfo("UTC"))
        for d in devices:
            registry.apply(DeviceDiscovered(ts=utc, device=device(d)))
        engine = Engine(config, parse_rules(config), registry, now=utc, views=False, notify=False)
        home = cls(config, SimClock(utc), registry, engine)
        engine.start()
        home._collect()
        return home

    def _collect(self) -> None:
        for effect in self.engine.drain():
            if isinstance(effect, AlertChanged):
                self.changes.append(effect)
                if any(a.transition in ("raised", "severity_raised") for a in effect.audits):
                    self.raised.append(effect.view)
            elif isinstance(effect, Act):
                self.acts.append(effect)

    # -- time -----------------------------------------------------------------------

    async def at(self, when: str | datetime, day: int = 0) -> None:
        """Move to a local time ('HH:MM' on the start day + day) or a moment, firing deadlines."""
        if isinstance(when, str):
            hour, minute = map(int, when.split(":"))
            start = self.clock.now().astimezone(TZ)
            target = MONDAY.replace(hour=hour, minute=minute) + timedelta(
                days=(start.date() - MONDAY.date()).days + day
            )
            if target < self.clock.now():
                target += timedelta(days=1)
        else:
            target = when
        await self.wait(target - self.clock.now())

    async def wait(self, delta: timedelta | float) -> None:
        """Let time pass (seconds or a timedelta), firing deadlines in order."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else delta
        target = self.clock.now() + timedelta(seconds=seconds)
        while (deadline := self.engine.next_deadline()) is not None and deadline <= target:
            await self.clock.advance_to(deadline)
            self.engine.advance(deadline)
            self._collect()
        await self.clock.advance_to(target)
        self.engine.advance(target)
        self._collect()

    # -- devices --------------------------------------------------------------------

    def _apply(self, event: Event) -> None:
        for effect in self.registry.apply(event):
            if isinstance(effect, Forward):
                self.engine.feed(effect.event)
        self._collect()

    def set(self, device_id: str, **values: Value) -> None:
        """A device reports new values now."""
        self._apply(StateChanged(ts=self.clock.now(), device_id=device_id, values=values))

    def press(self, device_id: str, key: str, value: Value) -> None:
        """A momentary event (button, SOS) now."""
        self._apply(PointEvent(ts=self.clock.now(), device_id=device_id, key=key, value=value))

    def availability(self, device_id: str, state: AvailabilityState) -> None:
        """A device goes offline, stale or online now."""
        self._apply(
            AvailabilityChanged(ts=self.clock.now(), device_id=device_id, availability=Availability(state=state))
        )

    def mode(self, mode: HouseMode, until: datetime | None = None) -> None:
        """The house mode changes now."""
        self.engine.now = self.clock.now()
        self.engine.set_mode(mode, until, "test")
        self._collect()

    def ack(self, alert_id: str, by: str = "daughter", channel: str = "mqtt") -> AlertView:
        """Someone acknowledges an alert now."""
        self.engine.now = self.clock.now()
        view = self.engine.ack(alert_id, by, channel, None)
        self._collect()
        return view

    # -- what happened --------------------------------------------------------------

    def fired(self, kind: str | None = None) -> list[tuple[str, str, str | None, str]]:
        """(local HH:MM, rule kind, room, severity) of every alert raised or made worse."""
        return [
            (f"{a.updated_at.astimezone(TZ):%H:%M}", a.rule_kind, a.room, a.severity)
            for a in self.raised
            if kind is None or a.rule_kind == kind
        ]

    def state(self, kind: str) -> str | None:
        """The latest lifecycle state of this kind's latest alert."""
        views = [c.view for c in self.changes if c.view.rule_kind == kind]
        return views[-1].state if views else None

    def actions(self) -> list[tuple[str, dict[str, Any]]]:
        """(device, values) of every command the rules sent."""
        return [(a.device_id, a.values) for a in self.acts]
