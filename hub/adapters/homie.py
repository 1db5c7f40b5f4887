"""The Homie convention: v5 (`<root>/5/<dev>/$description` JSON) and v4 (one topic per attribute)."""

from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from hub.adapters.base import CountedFeed, Rejected
from hub.adapters.common import decode_object, decode_text, normalize_mac, number, shared_point, to_canonical
from hub.model import (
    Availability,
    AvailabilityChanged,
    AvailabilityState,
    Device,
    DeviceDiscovered,
    DeviceRemoved,
    Event,
    Kind,
    Point,
    PointEvent,
    Protocol,
    StateChanged,
    Value,
    device_id,
)
from hub.wire import Message

log = logging.getLogger(__name__)

PENDING_MAX = 1024  # retained values that arrived before their device was described

_STATES: dict[str, AvailabilityState] = {
    "ready": AvailabilityState.ONLINE,
    "init": AvailabilityState.OFFLINE,
    "disconnected": AvailabilityState.OFFLINE,
    "sleeping": AvailabilityState.OFFLINE,
    "lost": AvailabilityState.OFFLINE,
    "alert": AvailabilityState.OFFLINE,  # v4 only: connected but needs a person
}
_V4_DEVICE_ATTRS = frozenset({"$name", "$nodes", "$mac", "$homie"})
_V4_NODE_ATTRS = frozenset({"$name", "$type", "$properties"})
_V4_PROP_ATTRS = frozenset({"$name", "$datatype", "$format", "$settable", "$retained", "$unit"})
_DATATYPES = frozenset({"integer", "float", "boolean", "string", "enum", "color", "datetime", "duration", "json"})
_NUMERIC = frozenset({"integer", "float"})

# Kind by the words in a property's id, name or boolean labels; first match wins.
_BINARY_WORDS: dict[str, Kind] = {
    "motion": Kind.MOTION,
    "presence": Kind.PRESENCE,
    "occupancy": Kind.OCCUPANCY,
    "contact": Kind.CONTACT,
    "door": Kind.CONTACT,
    "window": Kind.CONTACT,
    "open": Kind.CONTACT,
    "smoke": Kind.SMOKE,
    "leak": Kind.WATER_LEAK,
    "flood": Kind.WATER_LEAK,
    "tamper": Kind.TAMPER,
    "vibration": Kind.VIBRATION,
    "fall": Kind.FALL,
}
_NUMERIC_WORDS: dict[str, Kind] = {
    "temperature": Kind.TEMPERATURE,
    "humidity": Kind.HUMIDITY,
    "battery": Kind.BATTERY,
    "illuminance": Kind.ILLUMINANCE,
    "co2": Kind.CO2,
    "pressure": Kind.PRESSURE,
    "voc": Kind.VOC,
    "pm10": Kind.PM10,
    "formaldehyde": Kind.FORMALDEHYDE,
    "noise": Kind.NOISE,
    "power": Kind.POWER,
    "energy": Kind.ENERGY,
    "voltage": Kind.VOLTAGE,
    "current": Kind.CURRENT,
}
# Units that name the kind on their own ("%" does not: humidity or battery, so by the words).
_NUMERIC_UNITS: dict[str, Kind] = {
    "°C": Kind.TEMPERATURE,
    "°F": Kind.TEMPERATURE,
    "W": Kind.POWER,
    "kW": Kind.POWER,
    "Wh": Kind.ENERGY,
    "kWh": Kind.ENERGY,
    "V": Kind.VOLTAGE,
    "mV": Kind.VOLTAGE,
    "A": Kind.CURRENT,
    "mA": Kind.CURRENT,
    "lx": Kind.ILLUMINANCE,
    "ppm": Kind.CO2,
    "hPa": Kind.PRESSURE,
}
_EVENT_WORDS: dict[str, Kind] = {
    "doorbell": Kind.DOORBELL,
    "sos": Kind.SOS,
    "button": Kind.BUTTON,
    "press": Kind.BUTTON,
}
_SWITCH_WORDS = frozenset({"switch", "power", "on", "relay", "state", "output"})
_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(slots=True)
class _Prop:
    """One property, with the decoder for its payloads."""

    node: str
    prop: str
    key: str
    kind: Kind
    datatype: str
    unit: str | None
    settable: bool
    retained: bool
    options: tuple[str, ...]
    invert: bool = False

    def decode(self, text: str) -> Value:
        """The payload as a normalized value, or Rejected("bad_value")."""
        if self.datatype in _NUMERIC:
            v = number(text)
            if v is None:
                raise Rejected("bad_value", f"{self.node}/{self.prop}: {text[:40]!r} is not a number")
            return to_canonical(v, self.unit)[0]
        if self.datatype == "boolean":
            if text not in ("true", "false"):
                raise Rejected("bad_value", f"{self.node}/{self.prop}: {text[:40]!r} is not true/false")
            return (text == "true") != self.invert
        if self.datatype == "enum" and self.options and text not in self.options:
            raise Rejected("bad_value", f"{self.node}/{self.prop}: {text[:40]!r} is not one of its values")
        return "" if text == "\x00" else text  # v5 sends an empty string as one NUL byte

    def encode(self, value: Value) -> str:
        """A normalized value as the payload the device expects on `/set`."""
        if self.datatype == "boolean" and isinstance(value, bool):
            return "true" if value != self.invert else "false"
        if self.datatype in _NUMERIC and isinstance(value, (int, float)) and not isinstance(value, bool):
            if to_canonical(0.0, self.unit)[1] != self.unit:
                raise Rejected("bad_value", f"{self.key}: cannot convert back to the device's unit {self.unit}")
            return str(round(value)) if self.datatype == "integer" else repr(float(value))
        if self.datatype in ("string", "enum", "color", "datetime", "duration", "json") and isinstance(value, str):
            if self.options and value not in self.options:
                raise Rejected("bad_value", f"{self.key} takes one of {', '.join(self.options)}")
            return value or "\x00"
        raise Rejected("bad_value", f"{self.key} ({self.datatype}) cannot take {value!r}")


@dataclass(slots=True)
class _Dev:
    """One Homie device: its lifecycle state, description and property table."""

    native: str
    base: str  # topic of the device, `<root>/5/<dev>` or `<prefix>/<dev>`
    version: int
    id: str
    state: str | None = None
    name: str | None = None
    root: str | None = None  # v5 root device id, for children
    attrs: dict[str, str] = field(default_factory=dict)  # v4 attributes by topic rest
    props: dict[tuple[str, str], _Prop] = field(default_factory=dict)
    alerts: dict[str, Point] = field(default_factory=dict)
    device: Device | None = None


class HomieAdapter(CountedFeed):
    """Homie 5 devices under any root (`+/5/...`) and Homie 4 devices under `prefix`."""

    name: ClassVar[str] = "homie"

    def __init__(self, prefix: str = "homie") -> None:
        self.prefix = prefix.strip("/")
        self.counters: Counter[str] = Counter()
        self._devices: dict[str, _Dev] = {}  # by base topic
        self._by_id: dict[str, _Dev] = {}
        self._routes: dict[str, tuple[_Dev, _Prop]] = {}  # property topic -> decoder
        self._others: dict[str, int] = {}  # base topic -> its "other" points, summed in counters["other_point"]
        self._pending: OrderedDict[str, Message] = OrderedDict()

    def subscriptions(self) -> list[str]:
        """v5 on any root (SPAN panels use `ebus/5/`), v4 attributes and values under the prefix."""
        p = self.prefix
        return ["+/5/+/$state", "+/5/+/$description", "+/5/+/+/+", f"{p}/+/+", f"{p}/+/+/+", f"{p}/+/+/+/+"]

    def _feed(self, msg: Message, now: datetime) -> list[Event]:
        route = self._routes.get(msg.topic)
        if route is not None:
            return self._value(*route, msg, now)
        parts = msg.topic.split("/")
        if len(parts) >= 4 and parts[1] == "5" and parts[2] != "$broadcast":
            return self._v5(parts[:3], parts[3:], msg, now)
        if len(parts) >= 3 and parts[0] == self.prefix and not parts[1].startswith("$"):
            return self._v4(parts[:2], parts[2:], msg, now)
        return []

    def _dev(self, head: list[str], version: int) -> _Dev:
        base = "/".join(head)
        dev = self._devices.get(base)
        if dev is None:
            native = head[-1]
            dev = _Dev(native=native, base=base, version=version, id=device_id(Protocol.HOMIE, native))
            self._devices[base] = dev
            self._by_id[dev.id] = dev
        return dev

    # -- v5 ------------------------------------------------------------------------------

    def _v5(self, head: list[str], rest: list[str], msg: Message, now: datetime) -> list[Event]:
        if rest == ["$state"]:
            return self._state(self._dev(head, 5), msg, now)
        if rest == ["$description"]:
            dev = self._dev(head, 5)
            if not msg.payload:
                return []
            return self._describe(dev, _v5_description(decode_object(msg.payload), self.counters), now)
        if len(rest) == 2 and rest[0] == "$alert":
            return self._alert(self._dev(head, 5), rest[1], msg, now)
        if len(rest) == 2 and not rest[0].startswith("$") and not rest[1].startswith("$"):
            self._keep(msg)
        return []

    # -- v4 ------------------------------------------------------------------------------

    def _v4(self, head: list[str], rest: list[str], msg: Message, now: datetime) -> list[Event]:
        if rest == ["$state"]:
            dev = self._dev(head, 4)
            return self._state(dev, msg, now) + self._v4_build(dev, now)
        last = rest[-1]
        if rest[0].startswith("$"):
            # $stats, $localip, $implementation, $extensions: nothing the home needs.
            wanted = (rest[0] in _V4_DEVICE_ATTRS and len(rest) == 1) or (rest[0] == "$fw" and len(rest) == 2)
        elif len(rest) == 2:
            wanted = last in _V4_NODE_ATTRS
            if not last.startswith("$"):
                self._keep(msg)  # a value of a device not yet complete
        else:
            wanted = len(rest) == 3 and last in _V4_PROP_ATTRS
        if not wanted:
            return []
        dev = self._dev(head, 4)
        dev.attrs["/".join(rest)] = decode_text(msg.payload)
        return self._v4_build(dev, now)

    def _v4_build(self, dev: _Dev, now: datetime) -> list[Event]:
        # A v4 device is complete when it says `ready` and every listed node lists its
        # properties; later attributes (a `$datatype` after the value) refine it.
        a = dev.attrs
        if dev.state != "ready" or "$nodes" not in a:
            return []
        nodes = [n for n in a["$nodes"].split(",") if n]
        if any(f"{n}/$properties" not in a for n in nodes):
            return []
        description: dict[str, Any] = {"name": a.get("$name"), "nodes": {}}
        for node in nodes:
            props: dict[str, Any] = {}
            for prop in (p for p in a[f"{node}/$properties"].split(",") if p):
                found = {k: a.get(f"{node}/{prop}/${k}") for k in ("datatype", "unit", "format", "name")}
                spec: dict[str, Any] = {k: v for k, v in found.items() if v is not None}
                spec.setdefault("datatype", "string")  # v4: $datatype is optional, default string
                for flag, default in (("settable", False), ("retained", True)):
                    text = a.get(f"{node}/{prop}/${flag}")
                    spec[flag] = default if text is None else text == "true"
                props[prop] = spec
            description["nodes"][node] = {"properties": props}
        return self._describe(dev, description, now)

    # -- shared --------------------------------------------------------------------------

    def _state(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        if not msg.payload:
            self._forget(dev)
            return [DeviceRemoved(ts=now, device_id=dev.id, reason="homie $state deleted")] if dev.device else []
        text = decode_text(msg.payload)
        if text not in _STATES:
            raise Rejected("bad_state", f"$state {text[:40]!r}")
        dev.state = text
        if dev.device is None:
            return []  # announced with the description
        events: list[Event] = [_availability(dev, now)]
        if text == "lost":
            # Children of a lost root are lost too, whatever their own $state says.
            for child in self._devices.values():
                if child.root == dev.native and child is not dev and child.device is not None:
                    avail = Availability(
                        state=AvailabilityState.OFFLINE, reason="homie root device lost", last_seen=now
                    )
                    events.append(AvailabilityChanged.model_construct(ts=now, device_id=child.id, availability=avail))
        return events

    def _forget(self, dev: _Dev) -> None:
        self._devices.pop(dev.base, None)
        self._by_id.pop(dev.id, None)
        self.counters["other_point"] -= self._others.pop(dev.base, 0)
        for topic in [t for t, (d, _) in self._routes.items() if d is dev]:
            del self._routes[topic]

    def _describe(self, dev: _Dev, description: Mapping[str, Any], now: datetime) -> list[Event]:
        first = dev.device is None
        name = description.get("name")
        dev.name = name if isinstance(name, str) and name else dev.native
        root = description.get("root")
        dev.root = root if isinstance(root, str) else None
        # Its routes are the topics of its properties as last described (a scan of every route
        # per description made thousands of devices quadratic).
        for p in dev.props.values():
            self._routes.pop(f"{dev.base}/{p.node}/{p.prop}", None)
        dev.props = _props(description)
        self._routes.update({f"{dev.base}/{p.node}/{p.prop}": (dev, p) for p in dev.props.values()})
        device = self._device(dev)
        if device == dev.device:
            return []
        dev.device = device
        others = sum(1 for p in dev.props.values() if p.kind is Kind.OTHER)
        self.counters["other_point"] += others - self._others.get(dev.base, 0)
        self._others[dev.base] = others
        events: list[Event] = [DeviceDiscovered(ts=now, device=device)]
        if first and dev.state is not None:
            events.append(_availability(dev, now))
        for topic in [t for t in self._pending if t in self._routes]:
            try:
                events += self._feed(self._pending.pop(topic), now)
            except Rejected as exc:
                self.counters[exc.reason] += 1
                log.info("homie: replayed %s rejected: %s", topic, exc)
        return events

    def _device(self, dev: _Dev) -> Device:
        points = [_point(p) for p in dev.props.values()] + list(dev.alerts.values())
        mac = normalize_mac(dev.attrs.get("$mac", ""))
        return Device(
            id=dev.id,
            name=dev.name or dev.native,
            protocol=Protocol.HOMIE,
            firmware=" ".join(v for k in ("$fw/name", "$fw/version") if (v := dev.attrs.get(k))) or None,
            identifiers={"homie_id": dev.native} | ({"mac": mac} if mac else {}),
            points=tuple(points),
        )

    def _value(self, dev: _Dev, prop: _Prop, msg: Message, now: datetime) -> list[Event]:
        text = decode_text(msg.payload)
        if not prop.retained:
            # Non-retained properties are momentary events: never replay one from a retained copy.
            if msg.retain:
                raise Rejected("retained_event", f"{prop.node}/{prop.prop} is non-retained but arrived retained")
            return [PointEvent.model_construct(ts=now, device_id=dev.id, key=prop.key, value=prop.decode(text))]
        value = None if not msg.payload else prop.decode(text)
        return [StateChanged.model_construct(ts=now, device_id=dev.id, values={prop.key: value})]

    def _alert(self, dev: _Dev, alert_id: str, msg: Message, now: datetime) -> list[Event]:
        text = decode_text(msg.payload)
        if dev.device is None:
            self._keep(msg)
            return []
        key = f"alert_{_snake(alert_id)}"
        events: list[Event] = []
        if key not in dev.alerts:
            dev.alerts[key] = Point(key=key, kind=Kind.OTHER, source=f"homie:$alert/{alert_id}", note="Homie $alert")
            dev.device = self._device(dev)
            events.append(DeviceDiscovered(ts=now, device=dev.device))
        events.append(StateChanged.model_construct(ts=now, device_id=dev.id, values={key: text or None}))
        return events

    def _keep(self, msg: Message) -> None:
        if not msg.retain:
            return
        self._pending[msg.topic] = msg
        self._pending.move_to_end(msg.topic)
        while len(self._pending) > PENDING_MAX:
            self._pending.popitem(last=False)

    # -- commands ------------------------------------------------------------------------

    def encode(self, device: Device, values: Mapping[str, Value]) -> list[Message]:
        """Non-retained `<property topic>/set` messages in the property's own datatype."""
        dev = self._by_id.get(device.id)
        if dev is None:
            raise Rejected("unknown_device", f"{device.id} has not been described to the homie adapter")
        by_key = {p.key: p for p in dev.props.values()}
        out: list[Message] = []
        for key, value in values.items():
            prop = by_key.get(key)
            if prop is None or not prop.settable:
                raise Rejected("not_writable", f"{device.id} has no settable property {key!r}")
            out.append(Message(f"{dev.base}/{prop.node}/{prop.prop}/set", prop.encode(value).encode(), retain=False))
        return out


# -- pure helpers -----------------------------------------------------------------------


def _v5_description(data: Mapping[str, Any], counters: Counter[str]) -> dict[str, Any]:
    """A v5 $description, checked; a node whose properties sit in the node itself is accepted."""
    nodes = data.get("nodes", {})
    if not isinstance(nodes, dict):
        raise Rejected("bad_description", "'nodes' must be an object")
    fixed: dict[str, Any] = {}
    for node_id, node in nodes.items():
        if not isinstance(node, dict):
            raise Rejected("bad_description", f"node {str(node_id)[:40]!r} is not an object")
        props = node.get("properties")
        if props is None:
            # The device-profiles draft puts properties in the node and says `type` for
            # `datatype`: accept it, and count it so the drift stays visible.
            props = {k: v for k, v in node.items() if isinstance(v, dict) and not k.startswith("$")}
            counters["nonconformant_description"] += 1
        if not isinstance(props, dict):
            raise Rejected("bad_description", f"node {node_id!r}: 'properties' must be an object")
        fixed[node_id] = {"properties": props}
    return {**data, "nodes": fixed}


def _props(description: Mapping[str, Any]) -> dict[tuple[str, str], _Prop]:
    found: list[tuple[str, str, Mapping[str, Any]]] = []
    for node_id, node in description["nodes"].items():
        for prop_id, spec in node["properties"].items():
            if not isinstance(spec, dict):
                raise Rejected("bad_description", f"property {node_id}/{str(prop_id)[:40]} is not an object")
            found.append((node_id, prop_id, spec))
    classified = [(n, p, spec, *_classify(n, p, spec)) for n, p, spec in found]
    kinds = Counter(kind for *_, kind, _ in classified if kind is not Kind.OTHER)
    out: dict[tuple[str, str], _Prop] = {}
    for node_id, prop_id, spec, kind, invert in classified:
        datatype = spec.get("datatype", spec.get("type"))
        unit = spec.get("unit") if isinstance(spec.get("unit"), str) else None
        fmt = spec.get("format") if isinstance(spec.get("format"), str) else ""
        unique = kind is not Kind.OTHER and kinds[kind] == 1
        out[(node_id, prop_id)] = _Prop(
            node=node_id,
            prop=prop_id,
            key=kind.value if unique else _snake(f"{node_id}_{prop_id}"),
            kind=kind,
            datatype=str(datatype),
            unit=unit,
            settable=spec.get("settable") is True,
            retained=spec.get("retained", True) is not False,
            options=tuple(fmt.split(",")) if datatype == "enum" and fmt else (),
            invert=invert,
        )
    return out


def _classify(node: str, prop: str, spec: Mapping[str, Any]) -> tuple[Kind, bool]:
    """The kind of a property by a table of its words, unit and datatype; and whether true/false flip."""
    datatype = spec.get("datatype", spec.get("type"))
    if not isinstance(datatype, str) or datatype not in _DATATYPES:
        raise Rejected("bad_description", f"property {node}/{prop}: unknown datatype {str(datatype)[:40]!r}")
    name = spec.get("name")
    name = name if isinstance(name, str) else ""
    fmt = spec.get("format")
    fmt = fmt if isinstance(fmt, str) else ""
    words = _WORDS.findall(f"{prop} {name} {fmt if datatype == 'boolean' else ''}".lower())
    if spec.get("retained") is False:
        return next((_EVENT_WORDS[w] for w in words if w in _EVENT_WORDS), Kind.OTHER), False
    if datatype in _NUMERIC:
        unit = spec.get("unit")
        by_unit = _NUMERIC_UNITS.get(unit) if isinstance(unit, str) else None
        return by_unit or next((_NUMERIC_WORDS[w] for w in words if w in _NUMERIC_WORDS), Kind.OTHER), False
    if datatype == "boolean":
        if spec.get("settable") is True and _SWITCH_WORDS.intersection(_WORDS.findall(prop.lower())):
            return Kind.SWITCH, False
        kind = next((_BINARY_WORDS[w] for w in words if w in _BINARY_WORDS), Kind.OTHER)
        # Contact is normalized to True = open: labels "open,closed" say true means closed.
        labels = fmt.split(",")
        invert = kind is Kind.CONTACT and len(labels) == 2 and labels[1].strip().lower() == "closed"
        return kind, invert
    return Kind.OTHER, False


def _point(p: _Prop) -> Point:
    unit = to_canonical(0.0, p.unit)[1] if p.datatype in _NUMERIC else None
    note = None
    if p.kind is Kind.OTHER:
        note = "non-retained Homie property (momentary)" if not p.retained else f"Homie {p.datatype} property"
    return shared_point(
        Point(
            key=p.key,
            kind=p.kind,
            unit=unit,
            writable=p.settable,
            options=p.options,
            name=f"{p.node} {p.prop}",
            source=f"homie:{p.node}/{p.prop}",
            note=note,
        )
    )


def _availability(dev: _Dev, now: datetime) -> Event:
    state = dev.state or "init"
    avail = Availability(state=_STATES[state], reason=f"homie $state {state}", last_seen=now)
    return AvailabilityChanged.model_construct(ts=now, device_id=dev.id, availability=avail)


def _snake(text: str) -> str:
    return "_".join(_WORDS.findall(text.lower())) or "value"
