"""Every device the hub knows (adopted, pending, ignored), its merged state and availability.

The registry is pure: `apply` takes a normalized event and returns the effects the hub's
shell must carry out (publish a description, publish a state, forward an event). It never
does I/O, so it is tested without a broker and replayed on a simulated clock.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from hub.model import (
    KINDS,
    Availability,
    AvailabilityChanged,
    AvailabilityState,
    Category,
    Device,
    DeviceAdopted,
    DeviceDiscovered,
    DeviceRemoved,
    Event,
    Kind,
    Point,
    PointEvent,
    Protocol,
    StateChanged,
    Status,
    Value,
)
from hub.reports import online, state_changed
from hub.trusted import M, trusted

# When one physical device is seen through two paths, the native dialect describes it and
# the copies (HA discovery republished by Zigbee2MQTT or Tasmota, an mDNS sighting) only
# add what it lacks. Lower number = preferred.
PATH_PRIORITY: dict[Protocol, int] = {
    Protocol.Z2M: 0,
    Protocol.TASMOTA: 0,
    Protocol.SHELLY: 0,
    Protocol.HOMIE: 0,
    Protocol.HA: 1,
    Protocol.MDNS: 2,
    Protocol.CONFIG: 3,
}

# Identifiers that name one physical device whatever path it was seen through.
MERGE_KEYS = ("ieee", "mac", "shelly_id", "homekit_id", "matter_discriminator")
# Enum members read for every report, as Final constants (see hub.native).
_ADOPTED: Final = Status.ADOPTED
_IGNORED: Final = Status.IGNORED
_PENDING: Final = Status.PENDING
_ONLINE: Final = AvailabilityState.ONLINE
_OFFLINE: Final = AvailabilityState.OFFLINE

# Device changes remembered for `changed_since` (a reader further behind starts over from `records`).
CHANGE_LOG = 4096


@dataclass(frozen=True, slots=True)
class Named:
    """What an installer said about a device in devices.yaml."""

    name: str
    room: str
    role: str | None = None


@dataclass(slots=True)
class DeviceRecord:
    """The registry's mutable view of one device: its description, merged values and sources."""

    device: Device
    # Replaced on every change, never changed in place: the effects and history rows made from
    # it share it rather than each holding a copy (a burst of states queues thousands).
    values: dict[str, Value]
    ts: datetime | None
    # Which device id owns each point, so that a command is encoded by the adapter that can
    # actually reach it: the points of the primary path belong to `source`, and `owners` names
    # only those another path (an alias) adds: nothing, for most devices, seen by one path.
    source: str
    owners: dict[str, str]

    # Written out, not generated (see hub.native): every device enters with one.
    def __init__(self, device: Device) -> None:
        self.device, self.values, self.ts, self.source, self.owners = device, {}, None, "", {}

    def owner(self, key: str, default: str) -> str:
        """The id of the path that owns a point; `default` for a key no path describes."""
        other = self.owners.get(key)
        if other is not None:
            return other
        return self.source if self.source and self.device.point(key) is not None else default


# The effects are plain dataclasses with their __init__ written out: a frozen one's __init__
# sets each field through object.__setattr__, and the one @dataclass generates runs interpreted
# (hub.native). PublishState: 0.62 µs frozen, 0.25 plain, less again compiled; a report makes
# two effects. Nothing changes an effect once it is made.


@dataclass(slots=True)
class PublishDevice:
    """Publish (retained) the description of a device under devices/ or inbox/ by its status."""

    device: Device

    def __init__(self, device: Device) -> None:
        self.device = device


@dataclass(slots=True)
class PublishState:
    """Publish (retained) the merged state of a device."""

    device_id: str
    ts: datetime | None
    values: dict[str, Value]
    availability: Availability

    def __init__(
        self, device_id: str, ts: datetime | None, values: dict[str, Value], availability: Availability
    ) -> None:
        self.device_id, self.ts, self.values, self.availability = device_id, ts, values, availability


@dataclass(slots=True)
class Unpublish:
    """Clear every retained topic of a device (removed, or ignored by an installer)."""

    device_id: str

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id


@dataclass(slots=True)
class Forward:
    """Hand an event to the store, the rules and the `events` topic."""

    event: Event

    def __init__(self, event: Event) -> None:
        self.event = event


Effect = PublishDevice | PublishState | Unpublish | Forward


class CommandRefused(ValueError):
    """A command that the registry will not route, with the reason shown to the sender."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a command goes: the device (as its adapter knows it) and the values for it."""

    device: Device
    values: dict[str, Value]


class Registry:
    """Devices by id, with merge of one physical device seen through several paths."""

    def __init__(
        self,
        named: Mapping[str, Named] | None = None,
        *,
        auto_adopt: bool = False,
        decisions: Mapping[str, Status] | None = None,
    ) -> None:
        self.named: dict[str, Named] = dict(named or {})
        self.auto_adopt = auto_adopt
        # Installer decisions made through the API (adopt/ignore), restored from the store.
        self.decisions: dict[str, Status] = dict(decisions or {})
        self.records: dict[str, DeviceRecord] = {}
        self.aliases: dict[str, str] = {}  # alias device id -> canonical device id
        self.sources: dict[str, Device] = {}  # every path's own description, by its own id
        self.counters: Counter[str] = Counter()
        self._retired: list[str] = []  # canonical ids that became aliases: their topics must be cleared
        # Indexes that keep a discovery from looking at every other device (10,000 announced at once).
        self._aliases_of: dict[str, set[str]] = {}  # canonical id -> its aliases
        # When a source id entered `sources`, an alias `aliases` and a device `records`: the order
        # in which a scan of those dicts would meet them, without the scan.
        self._arrival: dict[str, int] = {}
        self._aliased: dict[str, int] = {}
        self._entered: dict[str, int] = {}
        self._ticks = itertools.count()
        self._holders: dict[tuple[str, str], set[str]] = {}  # (merge key, value) -> canonical ids with it
        # Bumped, and the device id logged, whenever a device is added, removed or described
        # anew (availability aside): what the rules engine follows instead of every event.
        self.generation = 0
        self._changes: list[str] = []

    # -- queries ---------------------------------------------------------------------

    def get(self, device_id: str) -> DeviceRecord | None:
        """The record of a device by its id or by the id of a path it was also seen through."""
        return self.records.get(self.aliases.get(device_id, device_id))

    def devices(self) -> list[Device]:
        """Every known device, sorted by id."""
        return [self.records[k].device for k in sorted(self.records)]

    def active(self, device_id: str) -> bool:
        """Whether a device takes part in rules (only adopted devices do)."""
        rec = self.get(device_id)
        return rec is not None and rec.device.status is _ADOPTED

    def changed_since(self, generation: int) -> list[str] | None:
        """Ids of the devices added, removed or described anew since `generation` (None: too long ago to tell)."""
        behind = self.generation - generation
        if behind < 0 or behind > len(self._changes):
            return None
        return self._changes[len(self._changes) - behind :]

    def _changed(self, device_id: str) -> None:
        self.generation += 1
        self._changes.append(device_id)
        if len(self._changes) > 2 * CHANGE_LOG:
            del self._changes[:-CHANGE_LOG]

    # -- applying events -------------------------------------------------------------

    def seed(self, devices: Iterable[Device], states: Mapping[str, tuple[datetime, dict[str, Value]]]) -> None:
        """Restore devices and last states from the store at start-up (no effects)."""
        for dev in devices:
            self._apply_discovered(dev, dev.availability.last_seen)
        for dev_id, (ts, values) in states.items():
            rec = self.get(dev_id)
            if rec is not None:
                rec.values = {**rec.values, **values}
                rec.ts = ts

    def placeholders(self) -> list[Effect]:
        """Create the devices named in devices.yaml that no path has reported yet."""
        effects: list[Effect] = []
        for dev_id, named in self.named.items():
            if self.get(dev_id) is None:
                proto = _protocol_of(dev_id)
                dev = Device(
                    id=dev_id,
                    name=named.name,
                    protocol=proto,
                    room=named.room,
                    role=named.role,
                    status=_ADOPTED,
                    availability=Availability(reason="not seen yet"),
                )
                self._enter(dev_id, DeviceRecord(dev))
                effects.append(PublishDevice(dev))
        return effects

    def apply(self, event: Event) -> list[Effect]:
        """Apply one normalized event; return what the shell must publish and forward."""
        match event:
            case DeviceDiscovered(device=dev):
                return self._discovered(dev, event.ts)
            case StateChanged():
                return self._state(event)
            case AvailabilityChanged():
                return self._availability(event)
            case PointEvent():
                return self._point_event(event)
            case DeviceRemoved():
                return self._removed(event)
        return [Forward(event)]

    def _discovered(self, dev: Device, ts: datetime) -> list[Effect]:
        before = self.get(dev.id)
        old = before.device if before else None
        rec = self._apply_discovered(dev, ts)
        # A better path took over a device first seen through a copy (an mDNS sighting, HA
        # discovery): the copy's id is now an alias, so its retained topics must go.
        effects: list[Effect] = [Unpublish(retired) for retired in self._retired]
        self._retired.clear()
        if rec.device.status is _IGNORED:
            ignored_before = old is not None and old.status is _IGNORED
            return effects if ignored_before else [*effects, Unpublish(rec.device.id)]
        if rec.device != old:
            effects.append(PublishDevice(rec.device))
            # A sighting that only refreshes last_seen is published (the inbox shows when a
            # device was last seen) but is not a discovery event worth recording.
            if old is None or not _heard_alike(rec.device, old):
                effects.append(Forward(DeviceDiscovered(ts=ts, device=rec.device)))
        return effects

    def _apply_discovered(self, dev: Device, ts: datetime | None) -> DeviceRecord:
        if dev.id not in self.sources:
            self._arrival[dev.id] = next(self._ticks)
        self.sources[dev.id] = dev
        canonical = self._canonical_for(dev)
        if canonical != dev.id:
            self._alias(dev.id, canonical)
        # Rebuild the canonical description from every path that sees this device.
        paths = sorted(
            self._paths(canonical),
            key=lambda d: (PATH_PRIORITY[d.protocol], d.id != canonical, self._arrival[d.id]),
        )
        primary = self.sources.get(canonical, paths[0])
        owners: dict[str, str] = {}
        taken = {p.key for p in primary.points}
        points = list(primary.points)
        kinds = {p.kind for p in points if p.kind is not _OTHER}
        # The primary's own dict when no other path adds to it: models are never changed in place.
        identifiers = primary.identifiers
        for other in paths:
            if other.id == primary.id:
                continue
            identifiers = {**other.identifiers, **identifiers}
            for p in other.points:
                # A copy's point is a duplicate when the native path already has its kind.
                if p.key in taken or (p.kind is not _OTHER and p.kind in kinds):
                    continue
                taken.add(p.key)
                owners[p.key] = other.id
                points.append(p)
        rec = self.records.get(canonical)
        merged = _copy(
            primary,
            {
                "id": canonical,
                "identifiers": identifiers,
                "points": tuple(points),
                "availability": _heard(rec.device.availability if rec else primary.availability, ts),
                "seen_via": tuple(sorted({v for d in paths for v in (d.seen_via or (d.protocol.value,))})),
                "address": primary.address or next((d.address for d in paths if d.address), None),
                **self._placement(canonical, primary, rec),
            },
        )
        if rec is None:
            rec = self._enter(canonical, DeviceRecord(merged))
        elif not _alike(rec.device, merged):
            self._changed(canonical)
        rec.device = merged
        rec.source = primary.id
        rec.owners = owners
        self._hold(canonical, identifiers)
        return rec

    def _placement(self, dev_id: str, dev: Device, rec: DeviceRecord | None) -> dict[str, object]:
        named = self.named.get(dev_id)
        if named is not None:
            return {"name": named.name, "room": named.room, "role": named.role, "status": _ADOPTED}
        decided = self.decisions.get(dev_id)
        if decided is not None:
            keep = rec.device if rec else dev
            return {"status": decided, "name": keep.name, "room": keep.room}
        return {"status": _ADOPTED if self.auto_adopt else _PENDING}

    def _canonical_for(self, dev: Device) -> str:
        if dev.id in self.aliases:
            return self.aliases[dev.id]
        if dev.id in self.records:
            return dev.id
        for key in MERGE_KEYS:
            value = dev.identifiers.get(key)
            if value is None:
                continue
            existing = self._holder(key, value)
            if existing is not None:
                if PATH_PRIORITY[dev.protocol] < PATH_PRIORITY[existing.protocol]:
                    return self._promote(dev.id, existing.id)
                return existing.id
        return dev.id

    def _enter(self, dev_id: str, rec: DeviceRecord) -> DeviceRecord:
        self.records[dev_id] = rec
        self._entered[dev_id] = next(self._ticks)
        self._changed(dev_id)
        return rec

    def _hold(self, dev_id: str, identifiers: Mapping[str, str]) -> None:
        # Every device's merge identifiers are indexed whenever it is described.
        for key in MERGE_KEYS:
            value = identifiers.get(key)
            if value is not None:
                self._holders.setdefault((key, value), set()).add(dev_id)

    def _holder(self, key: str, value: str) -> Device | None:
        # The device with this identifier that comes first in `records`; ids that left or
        # lost it since they were indexed are dropped on the way.
        held = self._holders.get((key, value))
        if not held:
            return None
        found = [
            i for i in held if (rec := self.records.get(i)) is not None and rec.device.identifiers.get(key) == value
        ]
        if len(found) < len(held):
            held.intersection_update(found)
        return self.records[min(found, key=self._entered.__getitem__)].device if found else None

    def _alias(self, alias: str, canonical: str) -> None:
        before = self.aliases.get(alias)
        if before is not None:
            self._drop_alias_of(before, alias)
        else:
            self._aliased[alias] = next(self._ticks)
        self.aliases[alias] = canonical
        self._aliases_of.setdefault(canonical, set()).add(alias)

    def _unalias(self, alias: str) -> str | None:
        canonical = self.aliases.pop(alias, None)
        if canonical is not None:
            del self._aliased[alias]
            self._drop_alias_of(canonical, alias)
        return canonical

    def _drop_alias_of(self, canonical: str, alias: str) -> None:
        rest = self._aliases_of[canonical]
        rest.discard(alias)
        if not rest:
            del self._aliases_of[canonical]

    def _aliases_to(self, canonical: str) -> list[str]:
        return sorted(self._aliases_of.get(canonical, ()), key=self._aliased.__getitem__)

    def _paths(self, canonical: str) -> list[Device]:
        # Every path's own description of one device, in the order they were first seen.
        ids = [canonical, *self._aliases_of.get(canonical, ())]
        found = [self.sources[i] for i in ids if i in self.sources and self.aliases.get(i, i) == canonical]
        return sorted(found, key=lambda d: self._arrival[d.id])

    def _forget_source(self, source_id: str) -> None:
        self.sources.pop(source_id, None)
        self._arrival.pop(source_id, None)

    def _promote(self, new_id: str, old_id: str) -> str:
        # A better path arrived for a device first seen through a copy: the native id
        # becomes canonical, unless the installer already named the old id.
        if old_id in self.named or old_id in self.decisions:
            return old_id
        rec = self.records.pop(old_id)
        self._changed(old_id)
        self._enter(new_id, rec)
        self._hold(new_id, rec.device.identifiers)
        for alias in self._aliases_to(old_id):
            self._alias(alias, new_id)
        self._alias(old_id, new_id)
        self.counters["promoted"] += 1
        self._retired.append(old_id)
        return new_id

    def _state(self, event: StateChanged) -> list[Effect]:
        rec = self.get(event.device_id)
        if rec is None:
            self.counters["state_for_unknown_device"] += 1
            return []
        if rec.device.status is _IGNORED:
            return []
        if event.device_id == rec.source and not rec.owners:
            values = event.values  # the only path: it owns every point it reports
        else:
            values = {k: v for k, v in event.values.items() if rec.owner(k, event.device_id) == event.device_id}
        if not values:
            return []
        old = rec.values
        changed: dict[str, Value] = {}
        merged = dict(old)
        for key, value in values.items():
            prev = old.get(key, _MISSING)
            if prev != value:
                changed[key] = value
            # A light that reports only its brightness keeps its on/off and colour temperature.
            merged[key] = {**prev, **value} if isinstance(prev, dict) and isinstance(value, dict) else value
        rec.values = merged
        rec.ts = event.ts
        effects: list[Effect] = self._touch(rec, event.ts)
        effects.append(PublishState(rec.device.id, rec.ts, rec.values, rec.device.availability))
        if changed:
            effects.append(Forward(state_changed(event.ts, rec.device.id, changed)))
        return effects

    def _touch(self, rec: DeviceRecord, ts: datetime) -> list[Effect]:
        # Any report proves the device is alive: refresh last_seen, and bring a device
        # that was not known to be online back online.
        av = rec.device.availability
        if av.state is _OFFLINE:
            rec.device = _copy(rec.device, {"availability": _copy(av, {"last_seen": ts})})
            return []
        new = online(ts)
        rec.device = _copy(rec.device, {"availability": new})
        if av.state is _ONLINE:
            return []
        return [
            PublishDevice(rec.device),
            Forward(AvailabilityChanged(ts=ts, device_id=rec.device.id, availability=new)),
        ]

    def _availability(self, event: AvailabilityChanged) -> list[Effect]:
        rec = self.get(event.device_id)
        if rec is None:
            self.counters["availability_for_unknown_device"] += 1
            return []
        old = rec.device.availability
        new = event.availability
        if new.last_seen is None:
            new = _copy(new, {"last_seen": old.last_seen})
        rec.device = _copy(rec.device, {"availability": new})
        if (new.state == old.state and new.reason == old.reason) or rec.device.status is _IGNORED:
            return []
        return [
            PublishDevice(rec.device),
            PublishState(rec.device.id, rec.ts, rec.values, new),
            Forward(AvailabilityChanged(ts=event.ts, device_id=rec.device.id, availability=new)),
        ]

    def _point_event(self, event: PointEvent) -> list[Effect]:
        rec = self.get(event.device_id)
        if rec is None or rec.device.status is _IGNORED:
            self.counters["event_for_unknown_device"] += rec is None
            return []
        effects = self._touch(rec, event.ts)
        effects.append(Forward(event.model_copy(update={"device_id": rec.device.id})))
        return effects

    def _removed(self, event: DeviceRemoved) -> list[Effect]:
        self._forget_source(event.device_id)
        canonical = self._unalias(event.device_id)
        if canonical is not None:
            # Only one path went away: rebuild the description from the paths left.
            rest = self._paths(canonical)
            if rest:
                return self._discovered(rest[0], event.ts)
            return []
        rec = self.records.get(event.device_id)
        if rec is None:
            return []
        aliases = self._aliases_to(event.device_id)
        if aliases:
            for a in aliases:
                self._unalias(a)
            return self._discovered(self.sources[aliases[0]], event.ts)
        if event.device_id in self.named:
            # The installer still expects it: keep it visible as gone rather than vanished.
            return self._availability(
                AvailabilityChanged(
                    ts=event.ts,
                    device_id=event.device_id,
                    availability=Availability(state=_OFFLINE, reason=event.reason),
                )
            )
        del self.records[event.device_id]
        self._changed(event.device_id)
        return [Unpublish(event.device_id), Forward(event)]

    # -- installer decisions -----------------------------------------------------------

    def decide(
        self, device_id: str, status: Status, ts: datetime, name: str | None = None, room: str | None = None
    ) -> list[Effect]:
        """Adopt or ignore a device (from the inbox); raise KeyError when there is no such device."""
        rec = self.get(device_id)
        if rec is None:
            raise KeyError(device_id)
        dev_id = rec.device.id
        self.decisions[dev_id] = status
        update: dict[str, object] = {"status": status}
        if name:
            update["name"] = name
        if room:
            update["room"] = room
        rec.device = rec.device.model_copy(update=update)
        self._changed(dev_id)
        if status is _IGNORED:
            return [Unpublish(dev_id)]
        return [
            PublishDevice(rec.device),
            PublishState(dev_id, rec.ts, rec.values, rec.device.availability),
            Forward(DeviceAdopted(ts=ts, device=rec.device)),
        ]

    def expire(self, now: datetime, max_age: timedelta) -> list[Effect]:
        """Forget pending devices not heard from for `max_age`: they leave the inbox (adopted and ignored stay)."""
        effects: list[Effect] = []
        for dev_id, rec in list(self.records.items()):
            if rec.device.status is not _PENDING or dev_id in self.named:
                continue
            heard = [t for t in (rec.device.availability.last_seen, rec.ts) if t is not None]
            if not heard:
                # Restored without a time (saved before last_seen was kept): its clock starts now.
                rec.device = _copy(rec.device, {"availability": _heard(rec.device.availability, now)})
                continue
            last = max(heard)
            if now - last < max_age:
                continue
            del self.records[dev_id]
            self._changed(dev_id)
            self._forget_source(dev_id)
            for alias in self._aliases_to(dev_id):
                self._unalias(alias)
                self._forget_source(alias)
            self.counters["expired"] += 1
            reason = f"pending and not seen since {last.isoformat()} (longer than {max_age})"
            effects += [Unpublish(dev_id), Forward(DeviceRemoved(ts=now, device_id=dev_id, reason=reason))]
        return effects

    # -- commands ----------------------------------------------------------------------

    def route(self, device_id: str, values: Mapping[str, Value]) -> list[Route]:
        """Split a command by the path that owns each point; raise CommandRefused with a reason."""
        rec = self.get(device_id)
        if rec is None:
            raise CommandRefused(f"no device '{device_id}'")
        dev = rec.device
        if dev.status is not _ADOPTED:
            raise CommandRefused(f"device '{dev.id}' is {dev.status.value}: adopt it before sending commands")
        by_owner: dict[str, dict[str, Value]] = {}
        for key, value in values.items():
            point = dev.point(key)
            if point is None:
                known = ", ".join(p.key for p in dev.points if p.writable) or "none"
                raise CommandRefused(f"device '{dev.id}' has no point '{key}' (writable points: {known})")
            if not point.writable:
                raise CommandRefused(f"point '{key}' of '{dev.id}' is read-only")
            _check_value(point, value)
            by_owner.setdefault(rec.owner(key, dev.id), {})[key] = value
        return [Route(self.sources.get(owner, dev), vals) for owner, vals in by_owner.items()]


_OTHER: Final = Kind.OTHER
_MISSING: Final = object()


def _heard(av: Availability, ts: datetime | None) -> Availability:
    # Any sighting (a discovery, a state report) moves last_seen forward, never back.
    if ts is None or (av.last_seen is not None and av.last_seen >= ts):
        return av
    return _copy(av, {"last_seen": ts})


def _alike(a: Device, b: Device) -> bool:
    # The same description but for availability (a sighting that only refreshed last_seen).
    # Compared as pydantic's __eq__ compares models (their field dicts), without copying two.
    return type(a) is type(b) and {**a.__dict__, "availability": None} == {**b.__dict__, "availability": None}


def _heard_alike(a: Device, b: Device) -> bool:
    # The same description but for when it was last seen (a sighting worth no discovery event).
    x, y = a.availability, b.availability
    return _alike(a, b) and (x.state, x.reason) == (y.state, y.reason)


def _check_value(point: Point, value: Value) -> None:
    category = KINDS[point.kind].category
    allowed = _VALUE_TYPES.get(category)
    if allowed is not None and not isinstance(value, allowed):
        raise CommandRefused(f"point '{point.key}' takes {_TYPE_WORDS[category]}, not {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _within(value, point.min, point.max):
        raise CommandRefused(f"point '{point.key}' takes {point.min}..{point.max}, not {value}")
    if point.options and isinstance(value, str) and value not in point.options:
        raise CommandRefused(f"point '{point.key}' takes one of {', '.join(point.options)}, not {value!r}")


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


_VALUE_TYPES: dict[Category, type | tuple[type, ...]] = {
    Category.BINARY: bool,
    Category.NUMERIC: (int, float),
    Category.ACTUATOR: (bool, int, float, str, dict),
}
_TYPE_WORDS: dict[Category, str] = {
    Category.BINARY: "true or false",
    Category.NUMERIC: "a number",
    Category.ACTUATOR: "a value or an object",
}


def _protocol_of(device_id: str) -> Protocol:
    prefix = device_id.split("-", 1)[0]
    return next((p for p in Protocol if p.value == prefix), Protocol.CONFIG)


# The fields sets of the models _copy builds, one per combination: pydantic's model_copy gave
# each device (and its availability) its own copy, a set of names nothing reads or changes.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def _copy(model: M, update: dict[str, object]) -> M:
    """What `model.model_copy(update=update)` gives (no validation), sharing its fields set with alike copies."""
    given = model.__pydantic_fields_set__  # the slot itself: model_fields_set is a property
    if given.issuperset(update):  # the usual (every report's new availability): the same names, the same set
        return trusted(type(model), {**model.__dict__, **update}, given)
    names = frozenset(given.union(update))
    fields_set = _FIELDS_SETS.get(names)
    if fields_set is None:
        fields_set = _FIELDS_SETS[names] = set(names)
    return trusted(type(model), {**model.__dict__, **update}, fields_set)
