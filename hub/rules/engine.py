"""The rules engine: feeds normalized events to the rules that want them, runs their deadlines, applies
house modes, snoozes and switches, and hands alerts to the alert book.

The engine is pure and synchronous: `feed(event)` and `advance(now)` change state and append
effects to `out`, which a shell (the hub's runtime, or `hub replay`) carries out. Time comes from
the events and the deadlines, so a month replays on a simulated clock in seconds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hub.api import AlertView, HouseMode, Language, ModeState, RuleView, Severity
from hub.config import Config
from hub.model import (
    AvailabilityChanged,
    CommandSent,
    Event,
    Kind,
    PointEvent,
    StateChanged,
    Status,
    Value,
)
from hub.registry import Registry
from hub.rules.alerts import AlertBook, AlertError, AlertRequest, Ladder
from hub.rules.effects import Act, Effect, ModeChanged, RuleChanged, TimerDeleted, Timers
from hub.rules.messages import TITLES, Names, render
from hub.rules.spec import DeviceHealth, RuleBase
from hub.rules.timeutil import NEVER

if TYPE_CHECKING:
    from hub.rules.library import Rule
    from hub.store import StoredTimer

log = logging.getLogger(__name__)

# Rules about danger to life: never muted by a mode, never snoozed or disabled from the API.
SAFETY: frozenset[str] = frozenset({"smoke_gas_co", "water_leak", "sos", "fall", "room_temperature"})
_ACTIVITY = frozenset(
    {
        "inactivity",
        "no_exit_use",
        "morning_check",
        "bathroom_too_long",
        "night_out_of_bed",
        "night_exit",
        "night_path_light",
        "medication",
        "fridge_unused",
        "routine_change",
    }
)
# Which rule kinds each house mode mutes (RULES.md "House modes").
MUTED_BY: dict[HouseMode, frozenset[str]] = {
    "home": frozenset(),
    # Nobody home: the activity rules have nothing to watch, but a door opening at night does matter.
    "away": _ACTIVITY - {"night_exit"},
    "visitor": frozenset({"inactivity", "routine_change", "fridge_unused", "no_exit_use"}),
    "sleep": frozenset({"inactivity", "routine_change"}),
    "vacation": _ACTIVITY,
}
# Kinds whose alerts are only information in a mode (temperature while away).
DOWNGRADED_BY: dict[HouseMode, frozenset[str]] = {
    "away": frozenset({"room_temperature"}),
    "vacation": frozenset({"room_temperature"}),
}
VISITOR_DEFAULT = timedelta(hours=4)
_MODE_KEY = "@mode"
_SWITCH_PREFIX = "@rule/"
_VIEW_SLACK = timedelta(seconds=60)  # a countdown moved by less is not worth republishing


@dataclass(frozen=True, slots=True)
class Input:
    """One point of one adopted device, as rules choose their inputs: by kind, room and role."""

    device_id: str
    key: str
    kind: Kind
    room: str | None
    role: str | None
    name: str
    writable: bool


@dataclass(slots=True)
class Switch:
    """A rule's switches set through the API: enabled, and snoozed until when."""

    enabled: bool = True
    snoozed_until: datetime | None = None


class RuleRefused(ValueError):
    """A rule change that is not allowed (a safety rule cannot be snoozed), or names no rule."""


Route = tuple["Rule", str, Input]


_NO_ROUTES: dict[str, list[Route]] = {}


class Engine:
    """Every rule of one home, its timers, mode and alert book."""

    def __init__(
        self,
        config: Config,
        specs: Iterable[RuleBase],
        registry: Registry,
        *,
        now: datetime,
        notify: bool = True,
        views: bool = True,
    ) -> None:
        from hub.rules.library import build_rule

        self.config = config
        self.registry = registry
        self.tz = ZoneInfo(config.home.timezone)
        self.now = now
        self.out: list[Effect] = []
        self.timers = Timers(self.out)
        tiers = tuple(c.tier for c in config.people.caregivers)
        self.book = AlertBook(Ladder.from_settings(config.alerts, tiers), self.timers, self.out, notify=notify)
        self.views = views
        self.names = Names(
            rooms={r.id: {"en": r.name, "zh-CN": r.name_zh or r.name} for r in config.rooms},
            devices={d.id: {"en": d.name, "zh-CN": d.name_zh or d.name} for d in config.devices},
        )
        specs = list(specs)
        if not any(isinstance(s, DeviceHealth) for s in specs):
            # Offline is never silence: device health always watches the rules' inputs.
            specs.append(DeviceHealth(kind="device_health"))
        self.rules: dict[str, Rule] = {}
        for spec in specs:
            rule = build_rule(spec, self)
            self.rules[rule.id] = rule
        self.health = next(r for r in self.rules.values() if r.kind == "device_health")
        self.mode = ModeState(mode="home", since=now)
        self.switches: dict[str, Switch] = {rid: Switch(enabled=r.spec.enabled) for rid, r in self.rules.items()}
        self.last_fired: dict[str, datetime] = {}
        self.counters: Counter[str] = Counter()
        self.trigger: str | None = None
        # Derived per device and kept up to date from the registry's change log, so that a
        # discovery costs the work of that one device (10,000 are announced at start-up).
        self._inputs_of: dict[str, tuple[Input, ...]] = {}  # adopted device id -> its points as inputs
        self._routes: dict[str, dict[str, list[Route]]] = {}  # device id -> point key -> rules that take it
        self._used: set[str] = set()
        self._inputs: list[Input] | None = None
        self._generation: int | None = None  # the registry generation caught up with (None: never)
        self._version = 0
        self._published: dict[str, RuleView] = {}
        self._dirty: set[str] = set()

    # -- devices -----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Bumped whenever a change of devices may change what rules derived from them (Rule.cached)."""
        self._catch_up()
        return self._version

    def inputs(self) -> list[Input]:
        """Every point of every adopted device."""
        self._catch_up()
        if self._inputs is None:
            known = self._inputs_of
            self._inputs = [i for dev_id in self.registry.records if dev_id in known for i in known[dev_id]]
        return self._inputs

    def find(self, predicate: Callable[[Input], bool]) -> list[Input]:
        """The inputs for which predicate holds."""
        return [i for i in self.inputs() if predicate(i)]

    def value(self, device_id: str, key: str) -> Value:
        """A point's current merged value (None when unknown)."""
        rec = self.registry.get(device_id)
        return rec.values.get(key) if rec is not None else None

    def last_report(self, device_id: str) -> datetime | None:
        """When a device last reported a value."""
        rec = self.registry.get(device_id)
        return rec.ts if rec is not None else None

    def used_devices(self) -> set[str]:
        """Devices that feed at least one rule other than device health."""
        self._catch_up()
        return set(self._used)

    def _catch_up(self) -> None:
        # Re-derive only the devices the registry changed since last time. The rules' cached
        # views (Rule.cached) are recomputed, by bumping the version, only when a changed
        # device may be in them: it feeds a rule, or has a role.
        generation = self.registry.generation
        if generation == self._generation:
            return
        changed = None if self._generation is None else self.registry.changed_since(self._generation)
        # Caught up from here on: the rules asked below (accepts -> rooms) must not start over.
        self._generation = generation
        self._inputs = None
        if changed is None:  # the first time, or further behind than the registry's log: everything
            changed = [*self._inputs_of, *self.registry.records]
        fresh: list[str] = []
        counts = roles = False
        for dev_id in dict.fromkeys(changed):
            before = self._inputs_of.pop(dev_id, ())
            after = self._device_inputs(dev_id)
            if after:
                self._inputs_of[dev_id] = after
            if before == after:
                continue
            fresh.append(dev_id)
            roles = roles or any(i.role is not None for i in (*before[:1], *after[:1]))
            counts = counts or dev_id in self._routes
        if roles:
            # Roles say which rooms are bedrooms, kitchens, bathrooms, and rules take other
            # devices' points by those rooms: every device's routes anew, with fresh views.
            self._version += 1
            fresh = list(self._inputs_of)
            self._routes.clear()
            self._used.clear()
        for dev_id in fresh:
            counts = self._route(dev_id) or counts
        if counts:
            self._version += 1

    def _device_inputs(self, dev_id: str) -> tuple[Input, ...]:
        rec = self.registry.records.get(dev_id)
        if rec is None or rec.device.status is not Status.ADOPTED:
            return ()
        dev = rec.device
        return tuple(Input(dev.id, p.key, p.kind, dev.room, dev.role, dev.name, p.writable) for p in dev.points)

    def _route(self, dev_id: str) -> bool:
        """Which rules take each point of one device; whether any does."""
        routes: dict[str, list[Route]] = {}
        for inp in self._inputs_of.get(dev_id, ()):
            for rule in self.rules.values():
                tag = rule.accepts(inp)
                if tag is not None:
                    routes.setdefault(inp.key, []).append((rule, tag, inp))
        used = any(r is not self.health and tag not in r.ACTION_TAGS for rs in routes.values() for r, tag, _ in rs)
        if used:
            self._used.add(dev_id)
        else:
            self._used.discard(dev_id)
        if not routes:
            self._routes.pop(dev_id, None)
            return False
        self._routes[dev_id] = routes
        return True

    def _device_routes(self, device_id: str) -> dict[str, list[Route]]:
        self._catch_up()
        return self._routes.get(device_id, _NO_ROUTES)

    # -- events in ---------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        """Hand one forwarded hub event to the rules (fire due deadlines first)."""
        if event.ts > self.now:
            self.advance(event.ts)
        match event:
            case StateChanged():
                self._values(event.device_id, event.values, event.ts)
            case PointEvent():
                self._values(event.device_id, {event.key: event.value}, event.ts)
            case AvailabilityChanged():
                if self.registry.active(event.device_id):
                    for rule in self.rules.values():
                        self._call(rule, rule.on_availability, event.device_id, event.availability, event.ts)
            case CommandSent() if not event.command.origin.startswith("rule:"):
                # A person set a device a rule acts on (a light): the rule leaves it to them.
                routes = self._device_routes(event.command.device_id)
                told = {r.id: r for key in event.command.values for r, _, _ in routes.get(key, ())}
                for rule in told.values():
                    self._call(rule, rule.on_command, event.command.device_id, event.command.values, event.ts)
        self._flush_views()

    def _values(self, device_id: str, values: dict[str, Value], ts: datetime) -> None:
        if not self.registry.active(device_id):
            return
        routes = self._device_routes(device_id)
        reported = False
        for key, value in values.items():
            for rule, tag, inp in routes.get(key, ()):
                reported = True
                self._call(rule, rule.on_value, tag, inp, value, ts)
        if reported:
            self._call(self.health, self.health.on_report, device_id, ts)

    def _call(self, rule: Rule, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:  # a rule's bug must not stop the other rules or the hub
            self.counters[f"rule_error.{rule.id}"] += 1
            log.exception("rule %s failed on %s", rule.id, getattr(method, "__name__", method))

    # -- time --------------------------------------------------------------------------

    def next_deadline(self) -> datetime | None:
        """The soonest armed deadline."""
        return self.timers.next_deadline()

    def advance(self, now: datetime) -> None:
        """Fire every deadline up to now, in order; each fired timer is forgotten after its effects."""
        while (due := self.timers.pop_due(now)) is not None:
            key, deadline, owner, data = due
            self.now = max(self.now, deadline)
            self.trigger = f"{key}@{deadline.isoformat()}"
            try:
                self._fire(key, owner, data)
            finally:
                self.trigger = None
            if key not in self.timers.entries:
                self.out.append(TimerDeleted(key))
        self.now = max(self.now, now)
        self._flush_views()

    def _fire(self, key: str, owner: str, data: dict[str, Any]) -> None:
        if key == _MODE_KEY:
            self.set_mode("home", None, "countdown")
        elif key.startswith(_SWITCH_PREFIX):
            rule_id = key.removeprefix(_SWITCH_PREFIX)
            switch = self.switches.get(rule_id)
            if switch is not None:
                switch.snoozed_until = None
                self._save_switch(rule_id)
        elif owner == "alerts":
            self.book.on_timer(key, data, self.now)
        elif (rule := self.rules.get(owner)) is not None:
            name = key.removeprefix(f"rule/{owner}/")
            self._dirty.add(rule.id)
            self._call(rule, rule.on_timer, name, data)
        else:
            self.counters["timer_for_unknown_rule"] += 1
            log.warning("a stored deadline %s belongs to no configured rule: dropped", key)

    # -- what rules call ---------------------------------------------------------------

    def arm(self, rule: Rule, name: str, deadline: datetime, data: dict[str, Any] | None = None) -> None:
        """Arm (or move) one of a rule's deadlines."""
        self.timers.arm(f"rule/{rule.id}/{name}", rule.id, deadline, data)
        self._dirty.add(rule.id)

    def disarm(self, rule: Rule, name: str) -> None:
        """Disarm one of a rule's deadlines."""
        self.timers.disarm(f"rule/{rule.id}/{name}")
        self._dirty.add(rule.id)

    def armed(self, rule: Rule, name: str) -> tuple[datetime, dict[str, Any]] | None:
        """A rule's armed deadline and its data."""
        entry = self.timers.get(f"rule/{rule.id}/{name}")
        return (entry[0], entry[2]) if entry else None

    def muted(self, rule: Rule) -> bool:
        """Whether the house mode, a snooze or a switch silences this rule now."""
        switch = self.switches[rule.id]
        if rule.kind in SAFETY:
            return False
        if not switch.enabled or (switch.snoozed_until is not None and switch.snoozed_until > self.now):
            return True
        return rule.kind in MUTED_BY[self.mode.mode]

    def alert(
        self,
        rule: Rule,
        room: str | None,
        severity: Severity,
        code: str,
        params: dict[str, Any],
        *,
        devices: tuple[str, ...] = (),
        resident_first: timedelta | None = None,
    ) -> AlertView | None:
        """Raise (or repeat) a catalogue alert for a rule in a room, unless muted; the view if raised."""
        message, advice = render(code, {"room": room, **params}, self.names)
        return self.alert_text(rule, room, severity, message, advice, devices=devices, resident_first=resident_first)

    def alert_text(
        self,
        rule: Rule,
        room: str | None,
        severity: Severity,
        message: dict[Language, str],
        advice: dict[Language, str],
        *,
        devices: tuple[str, ...] = (),
        resident_first: timedelta | None = None,
    ) -> AlertView | None:
        """Raise an alert with given words (generic rules), unless muted."""
        if self.muted(rule):
            self.counters[f"muted.{rule.id}"] += 1
            return None
        if rule.kind in DOWNGRADED_BY.get(self.mode.mode, ()):
            severity = "info"
        request = AlertRequest(
            rule_id=rule.id,
            rule_kind=rule.kind,
            room=room,
            severity=severity,
            message=message,
            advice=advice,
            device_ids=devices,
            resident_first=resident_first if resident_first else None,
            trigger=self.trigger,
        )
        alert = self.book.raise_(request, self.now)
        if alert is not None:
            self.last_fired[rule.id] = self.now
            self._dirty.add(rule.id)
        return alert.view() if alert is not None else None

    def clear(self, rule: Rule, room: str | None, note: str | None = None) -> None:
        """The condition behind a rule's alert in a room is over."""
        self.book.clear(rule.id, room, self.now, note)

    def act(self, rule: Rule, device_id: str, values: dict[str, Value]) -> None:
        """Set points on a device on behalf of a rule (adopted devices only; vacation mutes actions too)."""
        if rule.kind not in SAFETY and self.muted(rule):
            self.counters[f"muted_action.{rule.id}"] += 1
            return
        self.counters[f"actions.{rule.id}"] += 1
        self.out.append(Act(rule.id, device_id, dict(values), self.now))

    def local(self, ts: datetime | None = None) -> datetime:
        """A moment in the home's local time."""
        return (ts or self.now).astimezone(self.tz)

    # -- mode, switches, acknowledgements ------------------------------------------------

    def set_mode(self, mode: HouseMode, until: datetime | None, by: str | None) -> ModeState:
        """Change the house mode (visitor ends by itself after 4 h unless told otherwise)."""
        old = self.mode.mode
        if mode == "visitor" and until is None:
            until = self.now + VISITOR_DEFAULT
        if mode == "home":
            until = None
        self.mode = ModeState(mode=mode, until=until, since=self.now)
        if mode == "home":
            self.timers.disarm(_MODE_KEY)
        else:
            self.timers.arm(
                _MODE_KEY, "engine", until or NEVER, {"mode": mode, "since": self.now.isoformat(), "by": by}
            )
        self.out.append(ModeChanged(self.mode))
        for rule in self.rules.values():
            self._call(rule, rule.on_mode, old, mode)
            self._dirty.add(rule.id)
        self._flush_views()
        return self.mode

    def set_rule(self, rule_id: str, enabled: bool | None, snooze_minutes: int | None) -> RuleView:
        """Enable, disable or snooze a rule; RuleRefused for a safety rule or an unknown id."""
        rule = self.rules.get(rule_id)
        if rule is None:
            raise RuleRefused(f"no rule '{rule_id}' (rules: {', '.join(self.rules)})")
        lowers = enabled is False or bool(snooze_minutes)
        if rule.kind in SAFETY and lowers:
            raise RuleRefused(f"'{rule_id}' is a safety rule: it is never muted, snoozed or disabled")
        switch = self.switches[rule_id]
        if enabled is not None:
            switch.enabled = enabled
        if snooze_minutes is not None:
            switch.snoozed_until = self.now + timedelta(minutes=snooze_minutes) if snooze_minutes else None
        self._save_switch(rule_id)
        return self.rule_view(rule)

    def _save_switch(self, rule_id: str) -> None:
        switch = self.switches[rule_id]
        key = _SWITCH_PREFIX + rule_id
        if switch.enabled == self.rules[rule_id].spec.enabled and switch.snoozed_until is None:
            self.timers.disarm(key)
        else:
            self.timers.arm(key, "engine", switch.snoozed_until or NEVER, {"enabled": switch.enabled})
        self._dirty.add(rule_id)
        self._flush_views()

    def ack(self, alert_id: str, by: str, channel: str, note: str | None) -> AlertView:
        """A caregiver acknowledges an alert; AlertError names why not."""
        alert = self.book.ack(alert_id, by, channel, note, self.now)
        return alert.view()

    # -- restart -----------------------------------------------------------------------

    def restore(self, timers: Iterable[StoredTimer], alerts: Iterable[dict[str, Any]]) -> None:
        """Put back stored alerts, deadlines, mode and switches, then let every rule arm what is missing."""
        self.book.restore([dict(a.get("body") or {}, id=a["id"]) for a in alerts])
        for timer in timers:
            if timer.key == _MODE_KEY:
                data = timer.data
                mode = data.get("mode", "home")
                until = None if timer.deadline >= NEVER else timer.deadline
                since = datetime.fromisoformat(data["since"]) if data.get("since") else self.now
                self.mode = ModeState(mode=mode, until=until, since=since)
                self.timers.load(timer.key, timer.rule_id, timer.deadline, timer.data)
            elif timer.key.startswith(_SWITCH_PREFIX):
                rule_id = timer.key.removeprefix(_SWITCH_PREFIX)
                if rule_id in self.switches:
                    self.switches[rule_id] = Switch(
                        enabled=bool(timer.data.get("enabled", True)),
                        snoozed_until=None if timer.deadline >= NEVER else timer.deadline,
                    )
                    self.timers.load(timer.key, timer.rule_id, timer.deadline, timer.data)
            elif timer.rule_id == "alerts" and timer.key.removeprefix("alert/") in self.book.open:
                self.timers.load(timer.key, timer.rule_id, timer.deadline, timer.data)
            elif (rule := self.rules.get(timer.rule_id)) is not None:
                self.timers.load(timer.key, timer.rule_id, timer.deadline, timer.data)
                self._call(rule, rule.restored, timer.key.removeprefix(f"rule/{rule.id}/"), timer.deadline, timer.data)
            else:
                self.counters["stale_timer"] += 1
                self.out.append(TimerDeleted(timer.key))
        self.start()

    def start(self) -> None:
        """Let every rule arm its first deadlines (those not restored), then publish every rule."""
        for rule in self.rules.values():
            self._call(rule, rule.start)
            self._dirty.add(rule.id)
        self._flush_views()

    # -- rule views --------------------------------------------------------------------

    def rule_view(self, rule: Rule) -> RuleView:
        """A rule's state as published on rules/<id>."""
        switch = self.switches[rule.id]
        prefix = f"rule/{rule.id}/"
        deadlines = [d for k, (d, _, _) in self.timers.entries.items() if k.startswith(prefix) and d < NEVER]
        deadline = min(deadlines) if deadlines else None
        muted_until: datetime | None = None
        if not switch.enabled:
            state = "disabled"
        elif switch.snoozed_until is not None and switch.snoozed_until > self.now:
            state = "snoozed"
        elif rule.kind not in SAFETY and rule.kind in MUTED_BY[self.mode.mode]:
            state, muted_until = "muted", self.mode.until
        else:
            state = "counting" if deadline is not None else "armed"
        return RuleView(
            id=rule.id,
            kind=rule.kind,
            room=rule.spec.room,
            enabled=switch.enabled,
            state=state,
            deadline=deadline,
            muted_until=muted_until,
            snoozed_until=switch.snoozed_until,
            last_fired=self.last_fired.get(rule.id),
            title=TITLES.get(rule.kind, {}),
        )

    def _flush_views(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        if not self.views:
            return
        for rule_id in sorted(dirty):
            view = self.rule_view(self.rules[rule_id])
            old = self._published.get(rule_id)
            if old is not None and _same(old, view):
                continue
            self._published[rule_id] = view
            self.out.append(RuleChanged(view))

    def drain(self) -> list[Effect]:
        """Take every effect written so far."""
        effects = self.out[:]
        self.out.clear()
        return effects


def _same(a: RuleView, b: RuleView) -> bool:
    if a.model_copy(update={"deadline": None}) != b.model_copy(update={"deadline": None}):
        return False
    if (a.deadline is None) != (b.deadline is None):
        return False
    return a.deadline is None or b.deadline is None or abs(a.deadline - b.deadline) < _VIEW_SLACK


__all__ = ["SAFETY", "AlertError", "Engine", "Input", "RuleRefused"]
