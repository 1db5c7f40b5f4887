"""Shelly Gen2/Gen3/Gen4 JSON-RPC over MQTT, and Gen1 `shellies/` plain-text topics."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from hub.adapters.base import Rejected
from hub.adapters.common import decode_object, decode_text, normalize_mac, number, to_canonical
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
    device_id,
)
from hub.wire import Message

log = logging.getLogger(__name__)

# Topic prefixes are user settings and may hold `/` (`shellies/plus1pm`,
# `shelly-ht/shelly-plus-ht-01`). MQTT allows `#` only at the end, so `#/events/rpc` cannot be
# written; instead one filter per prefix depth (1 to PREFIX_DEPTH levels). The filters differ
# in length, so no message matches two of them; `#` would carry every message on the broker.
PREFIX_DEPTH = 3
# Gen1 ids may also hold one `/` (a user-set `shellies/shellyem3`).
GEN1_ID_DEPTH = 2
_GEN1_SUFFIXES = ("relay/+", "relay/+/+", "input/+", "input_event/+", "emeter/+/+", "sensor/+")

# Messages for a prefix not yet tied to a device (its retained `online`, its `status/...`)
# wait here, newest per topic, until a frame names the device; bounded.
PENDING_MAX = 512

# Gen2 component fields -> points: (path in the component status, key base, kind, vendor unit,
# field of a composite value, writable, diagnostic). Units are converted by to_canonical.
_F = tuple[tuple[str, ...], str, Kind, str | None, str | None, bool, bool]
_METER: list[_F] = [
    (("apower",), "power", Kind.POWER, "W", None, False, False),
    (("act_power",), "power", Kind.POWER, "W", None, False, False),
    (("voltage",), "voltage", Kind.VOLTAGE, "V", None, False, False),
    (("current",), "current", Kind.CURRENT, "A", None, False, False),
    (("aenergy", "total"), "energy", Kind.ENERGY, "Wh", None, False, False),
    (("ret_aenergy", "total"), "energy_returned", Kind.ENERGY, "Wh", None, False, False),
    (("freq",), "frequency", Kind.OTHER, "Hz", None, False, False),
]
_COMPONENTS: dict[str, list[_F]] = {
    "switch": [
        (("output",), "switch", Kind.SWITCH, None, None, True, False),
        *_METER,
        (("temperature", "tC"), "device_temperature", Kind.TEMPERATURE, "°C", None, False, True),
    ],
    "pm1": _METER,
    "em1": _METER,
    "light": [
        (("output",), "light", Kind.LIGHT, None, "on", True, False),
        (("brightness",), "light", Kind.LIGHT, None, "brightness", True, False),
    ],
    "cover": [
        (("current_pos",), "cover", Kind.COVER, None, "position", True, False),
        (("state",), "cover", Kind.COVER, None, "state", True, False),
        *_METER,
    ],
    "input": [(("state",), "input", Kind.OTHER, None, None, False, False)],
    "temperature": [
        (("tF",), "temperature", Kind.TEMPERATURE, "°F", None, False, False),
        (("tC",), "temperature", Kind.TEMPERATURE, "°C", None, False, False),
    ],
    "humidity": [(("rh",), "humidity", Kind.HUMIDITY, "%", None, False, False)],
    "illuminance": [(("lux",), "illuminance", Kind.ILLUMINANCE, "lx", None, False, False)],
    "devicepower": [
        (("battery", "percent"), "battery", Kind.BATTERY, "%", None, False, False),
        (("battery", "V"), "battery_voltage", Kind.VOLTAGE, "V", None, False, True),
    ],
    "smoke": [(("alarm",), "smoke", Kind.SMOKE, None, None, False, False)],
    "flood": [(("alarm",), "water_leak", Kind.WATER_LEAK, None, None, False, False)],
    "sys": [(("uptime",), "uptime", Kind.OTHER, "s", None, False, True)],
    "wifi": [(("rssi",), "rssi", Kind.OTHER, "dBm", None, False, True)],
}
# Connection bookkeeping of the device itself: nothing a home needs to see.
_IGNORED_COMPONENTS = frozenset({"mqtt", "cloud", "ble", "ws", "ht_ui", "ui", "eth", "matter", "knx", "bthome"})
# Keys that always index (input_<n>, button_<n>), so that they read like the native input number.
_ALWAYS_INDEXED = frozenset({"input", "button"})
# Input events normalized to the hub's press vocabulary (shared with Tasmota and Homie).
_PRESSES = {
    "single_push": "single",
    "double_push": "double",
    "triple_push": "triple",
    "long_push": "long",
    "btn_down": "down",
    "btn_up": "up",
}
_GEN1_PRESSES = {"S": "single", "SS": "double", "SSS": "triple", "L": "long"}
_AVAILABILITY = {"true": AvailabilityState.ONLINE, "false": AvailabilityState.OFFLINE}
_COVER_METHODS = {"open": "Cover.Open", "close": "Cover.Close", "stop": "Cover.Stop"}
_COVER_STATES = frozenset({"open", "closed", "opening", "closing", "stopped", "calibrating"})

# Gen1 topics after `shellies/<id>/`: (key base, kind, vendor unit, payload parser, writable).
_GEN1: dict[str, tuple[str, Kind, str | None, str, bool]] = {
    "relay": ("switch", Kind.SWITCH, None, "onoff", True),
    "relay/power": ("power", Kind.POWER, "W", "number", False),
    "relay/energy": ("energy", Kind.ENERGY, "Wmin", "number", False),  # watt-minutes
    "input": ("input", Kind.OTHER, None, "bit", False),
    "input_event": ("button", Kind.BUTTON, None, "event", False),
    "emeter/power": ("power", Kind.POWER, "W", "number", False),
    "emeter/voltage": ("voltage", Kind.VOLTAGE, "V", "number", False),
    "emeter/current": ("current", Kind.CURRENT, "A", "number", False),
    "emeter/total": ("energy", Kind.ENERGY, "Wh", "number", False),
    "emeter/total_returned": ("energy_returned", Kind.ENERGY, "Wh", "number", False),
    "emeter/pf": ("power_factor", Kind.OTHER, None, "number", False),
    "sensor/temperature": ("temperature", Kind.TEMPERATURE, "°C", "number", False),
    "sensor/humidity": ("humidity", Kind.HUMIDITY, "%", "number", False),
    "sensor/battery": ("battery", Kind.BATTERY, "%", "number", False),
    "sensor/flood": ("water_leak", Kind.WATER_LEAK, None, "bool", False),
    "sensor/smoke": ("smoke", Kind.SMOKE, None, "bool", False),
}
_GEN1_TOPIC = re.compile(
    r"^shellies/(?P<id>.+?)/(?P<kind>relay|input|input_event|emeter|sensor)/(?P<n>\d+|[a-z_]+)(?:/(?P<field>[a-z_]+))?$"
)
_NATIVE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def key_for(base: str, index: int | None) -> str:
    """The point key of a component field: the bare base for index 0, `<base>_<n>` otherwise."""
    if base in _ALWAYS_INDEXED:
        return f"{base}_{index or 0}"
    return base if not index else f"{base}_{index}"


@dataclass(slots=True)
class _Slot:
    path: tuple[str, ...]
    key: str
    sub: str | None
    convert: Callable[[Any], Value]


@dataclass(slots=True)
class _Dev:
    """One Shelly as the hot path needs it."""

    native: str
    id: str
    gen: int
    prefix: str
    model: str | None = None
    mac: str | None = None
    firmware: str | None = None
    points: dict[str, Point] = field(default_factory=dict)
    decoders: dict[str, list[_Slot]] = field(default_factory=dict)  # component key -> slots
    commands: dict[str, tuple[str, int]] = field(default_factory=dict)  # point key -> (type, id)
    recent: deque[tuple[Any, ...]] = field(default_factory=lambda: deque(maxlen=32))
    dirty: bool = True

    def ensure(self, point: Point) -> None:
        """Add a point the first time its key is seen."""
        if point.key not in self.points:
            self.points[point.key] = point
            self.dirty = True

    def device(self) -> Device:
        """The Device as the registry sees it."""
        ids = {"shelly_id": self.native} | ({"mac": self.mac} if self.mac else {})
        return Device(
            id=self.id,
            name=self.native,
            protocol=Protocol.SHELLY,
            manufacturer="Shelly",
            model=self.model,
            firmware=self.firmware,
            identifiers=ids,
            points=tuple(self.points.values()),
        )


class ShellyAdapter:
    """Shelly devices learned from their own frames: `src` names the device, the topic its prefix."""

    name: ClassVar[str] = "shelly"

    def __init__(self, src: str = "hub-rpc") -> None:
        self.src = src
        self.counters: Counter[str] = Counter()
        self._gen2: dict[str, _Dev] = {}  # by topic prefix
        self._gen1: dict[str, _Dev] = {}  # by Gen1 id
        self._by_id: dict[str, _Dev] = {}
        self._others: dict[str, int] = {}  # device id -> its "other" points, summed in counters["other_point"]
        self._pending: OrderedDict[str, Message] = OrderedDict()
        self._rpc_id = 0

    def subscriptions(self) -> list[str]:
        """Per prefix depth: events, online and status topics; Gen1 `shellies/`; our RPC replies."""
        out: list[str] = []
        for depth in range(1, PREFIX_DEPTH + 1):
            plus = "/".join(["+"] * depth)
            out += [f"{plus}/events/rpc", f"{plus}/online", f"{plus}/status/+"]
        out.append("shellies/announce")
        for depth in range(1, GEN1_ID_DEPTH + 1):
            plus = "/".join(["+"] * depth)
            out += [f"shellies/{plus}/{suffix}" for suffix in _GEN1_SUFFIXES]
        out.append(f"{self.src}/rpc")
        return out

    def feed(self, msg: Message, now: datetime) -> list[Event]:
        """Turn one message into normalized events; raise Rejected for anything malformed."""
        try:
            dev, events = self._feed(msg, now)
        except Rejected as exc:
            self.counters[exc.reason] += 1
            raise
        if dev is None or not dev.dirty:
            return events
        dev.dirty = False
        # Counted by difference: a sum over every device would make thousands of discoveries quadratic.
        others = sum(1 for p in dev.points.values() if p.kind is Kind.OTHER and not p.diagnostic)
        self.counters["other_point"] += others - self._others.get(dev.id, 0)
        self._others[dev.id] = others
        return [DeviceDiscovered(ts=now, device=dev.device()), *events]

    def _feed(self, msg: Message, now: datetime) -> tuple[_Dev | None, list[Event]]:
        topic = msg.topic
        if topic == f"{self.src}/rpc":
            return None, self._reply(msg)
        if topic.endswith("/events/rpc"):
            return self._frame(topic.removesuffix("/events/rpc"), msg, now)
        if topic.endswith("/online"):
            prefix = topic.removesuffix("/online")
            dev = self._gen2.get(prefix)
            if dev is None and prefix.startswith("shellies/"):
                dev = self._gen1.get(prefix.removeprefix("shellies/"))
            if dev is None:
                self._keep(msg)
                return None, []
            return dev, [_availability(dev, msg, now)]
        if "/status/" in topic:
            prefix, _, comp = topic.rpartition("/status/")
            dev = self._gen2.get(prefix)
            if dev is None:
                self._keep(msg)
                return None, []
            values: dict[str, Value] = {}
            self._component(dev, comp, decode_object(msg.payload), values)
            return dev, _changed(dev, values, now)
        if topic == "shellies/announce":
            return self._announce(msg, now)
        m = _GEN1_TOPIC.match(topic)
        if m is not None:
            return self._gen1_value(m, msg, now)
        return None, []

    def _keep(self, msg: Message) -> None:
        self._pending[msg.topic] = msg
        self._pending.move_to_end(msg.topic)
        while len(self._pending) > PENDING_MAX:
            self._pending.popitem(last=False)

    # -- Gen2 ----------------------------------------------------------------------------

    def _frame(self, prefix: str, msg: Message, now: datetime) -> tuple[_Dev | None, list[Event]]:
        frame = decode_object(msg.payload)
        src, method, params = frame.get("src"), frame.get("method"), frame.get("params")
        if not isinstance(src, str) or not src or not isinstance(method, str) or not isinstance(params, dict):
            raise Rejected("bad_frame", "a notification needs string src and method and an object params")
        events: list[Event] = []
        dev = self._gen2.get(prefix)
        if dev is None or dev.native != src:
            dev = self._learn(prefix, src)
            events += self._replay(prefix, now)
        if method == "NotifyEvent":
            return dev, events + self._events(dev, params, msg, now)
        if method not in ("NotifyStatus", "NotifyFullStatus"):
            self.counters["ignored_method"] += 1
            return dev, events
        # NotifyStatus holds only what changed: the values go out as they are, and the
        # registry overlays them on the last known state.
        values: dict[str, Value] = {}
        for comp, body in params.items():
            if comp != "ts" and isinstance(body, dict):
                self._component(dev, comp, body, values)
        return dev, events + _changed(dev, values, now)

    def _learn(self, prefix: str, src: str) -> _Dev:
        model, _, tail = src.rpartition("-")
        dev = _Dev(native=src, id=device_id(Protocol.SHELLY, src), gen=2, prefix=prefix, model=model or None)
        dev.mac = normalize_mac(tail) if len(tail) == 12 else None
        self._gen2[prefix] = dev
        self._by_id[dev.id] = dev
        return dev

    def _replay(self, prefix: str, now: datetime) -> list[Event]:
        events: list[Event] = []
        for topic in [t for t in self._pending if t.rsplit("/status/", 1)[0] == prefix or t == prefix + "/online"]:
            try:
                events += self._feed(self._pending.pop(topic), now)[1]
            except Rejected as exc:
                self.counters[exc.reason] += 1
                log.info("shelly: replayed %s rejected: %s", topic, exc)
        return events

    def _component(self, dev: _Dev, comp: str, body: Mapping[str, Any], values: dict[str, Value]) -> None:
        slots = dev.decoders.get(comp)
        if slots is None:
            slots = dev.decoders[comp] = self._slots(dev, comp, body)
        for slot in slots:
            raw: Any = body
            for part in slot.path:
                raw = raw.get(part) if isinstance(raw, dict) else None
            if raw is None:
                continue
            value = slot.convert(raw)
            if value is None:
                continue
            if slot.sub is None:
                values[slot.key] = value
            else:
                current = values.setdefault(slot.key, {})
                if isinstance(current, dict):
                    current[slot.sub] = value  # type: ignore[assignment]
        if comp == "sys" and isinstance(body.get("mac"), str) and dev.mac is None:
            dev.mac = normalize_mac(body["mac"])
            dev.dirty = dev.dirty or dev.mac is not None

    def _slots(self, dev: _Dev, comp: str, body: Mapping[str, Any]) -> list[_Slot]:
        ctype, _, cid = comp.partition(":")
        index = int(cid) if cid.isdigit() else None
        if ctype in _IGNORED_COMPONENTS:
            return []
        table = _COMPONENTS.get(ctype)
        source = f"shelly:{comp}"
        if table is None:
            # A component the table does not know: its scalar fields become `other` points.
            table = [
                ((name,), f"{ctype}_{name}", Kind.OTHER, None, None, False, False)
                for name, v in body.items()
                if name != "id" and isinstance(v, (bool, int, float, str))
            ]
            source += " (unknown component)"
        slots: list[_Slot] = []
        for path, base, kind, unit, sub, writable, diagnostic in table:
            key = key_for(base, index)
            note = "diagnostic" if diagnostic and kind is Kind.OTHER else None
            if kind is Kind.OTHER and not diagnostic:
                note = f"Shelly {ctype} field outside the kind vocabulary"
            canonical = to_canonical(0.0, unit)[1] if kind is not Kind.COVER else "%"
            point = Point(
                key=key,
                kind=kind,
                unit=canonical if kind not in (Kind.SWITCH, Kind.LIGHT) else None,
                writable=writable,
                diagnostic=diagnostic,
                source=f"{source}.{'.'.join(path)}" if sub is None else source,
                note=note,
            )
            slots.append(_Slot(path, key, sub, _converter(kind, unit, sub)))
            if writable and index is not None:
                dev.commands[key] = (ctype, index)
            if _has(body, path):
                dev.ensure(point)
            else:
                # Declared lazily: a Plus 1 (no meter) never sends apower, so no power point.
                slots[-1] = _Slot(path, key, sub, _lazy(dev, point, slots[-1].convert))
        return slots

    def _events(self, dev: _Dev, params: Mapping[str, Any], msg: Message, now: datetime) -> list[Event]:
        items = params.get("events")
        if not isinstance(items, list):
            raise Rejected("bad_frame", "NotifyEvent without an events list")
        if msg.retain:
            raise Rejected("retained_event", "a NotifyEvent frame arrived retained")
        out: list[Event] = []
        for item in items:
            if not isinstance(item, dict):
                raise Rejected("bad_frame", "an event is not an object")
            comp, name = item.get("component"), item.get("event")
            press = _PRESSES.get(name) if isinstance(name, str) else None
            if not isinstance(comp, str) or not comp.startswith("input:") or press is None:
                self.counters["ignored_event"] += 1
                continue
            mark = (comp, name, item.get("ts"))
            if mark in dev.recent:
                self.counters["duplicate_event"] += 1
                continue
            dev.recent.append(mark)
            cid = comp.partition(":")[2]
            key = key_for("button", int(cid) if cid.isdigit() else 0)
            dev.ensure(Point(key=key, kind=Kind.BUTTON, source=f"shelly:{comp}"))
            out.append(PointEvent.model_construct(ts=now, device_id=dev.id, key=key, value=press))
        return out

    def _reply(self, msg: Message) -> list[Event]:
        frame = decode_object(msg.payload)
        error = frame.get("error")
        if error is not None:
            err = error if isinstance(error, dict) else {}
            raise Rejected(
                "rpc_error",
                f"request {frame.get('id')!r} to {frame.get('src')!r} failed: "
                f"{err.get('code')!r} {str(err.get('message', error))[:200]}",
            )
        self.counters["rpc_ok"] += 1
        return []

    # -- Gen1 ----------------------------------------------------------------------------

    def _gen1_dev(self, native: str, now: datetime) -> tuple[_Dev, list[Event]]:
        dev = self._gen1.get(native)
        if dev is not None:
            return dev, []
        # A `/` in a user-set Gen1 id would split hub topics: the hub id replaces it with `-`,
        # and the native id stays in the identifiers.
        hub_native = _NATIVE_ID.sub("-", native)
        dev = _Dev(native=native, id=device_id(Protocol.SHELLY, hub_native), gen=1, prefix=f"shellies/{native}")
        self._gen1[native] = dev
        self._by_id[dev.id] = dev
        return dev, self._replay(dev.prefix, now)

    def _announce(self, msg: Message, now: datetime) -> tuple[_Dev | None, list[Event]]:
        info = decode_object(msg.payload)
        native = info.get("id")
        if not isinstance(native, str) or not native:
            raise Rejected("bad_announce", "announce without a string id")
        dev, events = self._gen1_dev(native, now)
        model, mac, fw = info.get("model"), info.get("mac"), info.get("fw_ver")
        dev.model = model if isinstance(model, str) else dev.model
        dev.mac = normalize_mac(mac) if isinstance(mac, str) else dev.mac
        dev.firmware = fw if isinstance(fw, str) else dev.firmware
        dev.dirty = True
        return dev, events

    def _gen1_value(self, m: re.Match[str], msg: Message, now: datetime) -> tuple[_Dev | None, list[Event]]:
        kind_name, n, fname = m.group("kind"), m.group("n"), m.group("field")
        if kind_name == "sensor":
            if fname is not None:
                return None, []
            name, index = f"sensor/{n}", None
        else:
            name, index = f"{kind_name}/{fname}" if fname else kind_name, int(n) if n.isdigit() else None
        row = _GEN1.get(name)
        if row is None or (kind_name != "sensor" and index is None):
            self.counters["ignored_topic"] += 1
            return None, []
        dev, events = self._gen1_dev(m.group("id"), now)
        base, kind, unit, parser, writable = row
        key = key_for(base, index)
        dev.ensure(
            Point(key=key, kind=kind, unit=to_canonical(0.0, unit)[1], writable=writable, source=f"shelly1:{name}")
        )
        if writable and index is not None:
            dev.commands[key] = ("relay", index)
        if parser == "event":
            return dev, events + self._gen1_event(dev, key, msg, now)
        text = decode_text(msg.payload).strip()
        value = _GEN1_PARSERS[parser](text)
        if value is None:
            raise Rejected("bad_value", f"{name}: {text[:40]!r}")
        if isinstance(value, float):
            value = to_canonical(value, unit)[0]
        return dev, events + _changed(dev, {key: value}, now)

    def _gen1_event(self, dev: _Dev, key: str, msg: Message, now: datetime) -> list[Event]:
        body = decode_object(msg.payload)
        code, count = body.get("event"), body.get("event_cnt")
        if not isinstance(code, str):
            raise Rejected("bad_event", "input_event without an event text")
        if not code:
            return []  # the empty event a Gen1 device publishes at boot
        if msg.retain:
            raise Rejected("retained_event", f"{key} {code} arrived retained")
        mark = (key, count)
        if count is not None and mark in dev.recent:
            self.counters["duplicate_event"] += 1
            return []
        dev.recent.append(mark)
        value = _GEN1_PRESSES.get(code, code.lower())
        return [PointEvent.model_construct(ts=now, device_id=dev.id, key=key, value=value)]

    # -- commands ------------------------------------------------------------------------

    def encode(self, device: Device, values: Mapping[str, Value]) -> list[Message]:
        """RPC requests to `<prefix>/rpc` (Gen2+) or `shellies/<id>/relay/<n>/command` (Gen1)."""
        dev = self._by_id.get(device.id)
        if dev is None:
            raise Rejected("unknown_device", f"{device.id} has not been seen by the shelly adapter")
        out: list[Message] = []
        for key, value in values.items():
            target = dev.commands.get(key)
            if target is None:
                raise Rejected("not_writable", f"{device.id} has no writable point {key!r}")
            ctype, index = target
            if dev.gen == 1:
                if not isinstance(value, bool):
                    raise Rejected("bad_value", f"{key} takes true or false, not {value!r}")
                out.append(Message(f"{dev.prefix}/relay/{index}/command", b"on" if value else b"off"))
                continue
            method, params = _rpc(ctype, index, key, value)
            self._rpc_id += 1
            body = {"id": self._rpc_id, "src": self.src, "method": method, "params": params}
            out.append(Message(f"{dev.prefix}/rpc", json.dumps(body, separators=(",", ":")).encode()))
        return out


def _rpc(ctype: str, index: int, key: str, value: Value) -> tuple[str, dict[str, Any]]:
    """The RPC method and params that set one point, as the Shelly Gen2 API documents them."""
    if ctype == "switch":
        if not isinstance(value, bool):
            raise Rejected("bad_value", f"{key} takes true or false, not {value!r}")
        return "Switch.Set", {"id": index, "on": value}
    if ctype == "light":
        parts = value if isinstance(value, dict) else {"on": value}
        params: dict[str, Any] = {"id": index}
        if isinstance(parts.get("on"), bool):
            params["on"] = parts["on"]
        level = number(parts.get("brightness"))
        if level is not None:
            params["brightness"] = min(100, max(0, round(level)))
        if len(params) == 1:
            raise Rejected("bad_value", f"{key} takes on/brightness, not {value!r}")
        return "Light.Set", params
    parts = value if isinstance(value, dict) else {"position": value}
    pos = number(parts.get("position"))
    if pos is not None:
        return "Cover.GoToPosition", {"id": index, "pos": min(100, max(0, round(pos)))}
    state = parts.get("state")
    if isinstance(state, str) and state in _COVER_METHODS:
        return _COVER_METHODS[state], {"id": index}
    raise Rejected("bad_value", f"{key} takes a position 0-100 or open/close/stop, not {value!r}")


def _has(body: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    raw: Any = body
    for part in path:
        if not isinstance(raw, dict) or part not in raw:
            return False
        raw = raw[part]
    return raw is not None


def _lazy(dev: _Dev, point: Point, convert: Callable[[Any], Value]) -> Callable[[Any], Value]:
    def first_seen(raw: Any) -> Value:
        dev.ensure(point)
        return convert(raw)

    return first_seen


def _converter(kind: Kind, unit: str | None, sub: str | None) -> Callable[[Any], Value]:
    if kind is Kind.COVER and sub == "state":
        return lambda raw: raw if isinstance(raw, str) and raw in _COVER_STATES else None
    if kind in (Kind.SWITCH, Kind.SMOKE, Kind.WATER_LEAK) or (kind is Kind.LIGHT and sub == "on"):
        return lambda raw: raw if isinstance(raw, bool) else None
    if kind is Kind.OTHER and unit is None:
        return lambda raw: raw if isinstance(raw, (bool, str)) else number(raw)

    def numeric(raw: Any) -> Value:
        v = number(raw)
        return None if v is None else to_canonical(v, unit)[0]

    return numeric


def _availability(dev: _Dev, msg: Message, now: datetime) -> Event:
    text = decode_text(msg.payload).strip()
    state = _AVAILABILITY.get(text)
    if state is None:
        raise Rejected("bad_availability", f"online is {text[:40]!r}, not true/false")
    avail = Availability(state=state, reason=f"shelly online {text}", last_seen=now)
    return AvailabilityChanged.model_construct(ts=now, device_id=dev.id, availability=avail)


_GEN1_PARSERS: dict[str, Callable[[str], Value]] = {
    "onoff": lambda t: {"on": True, "off": False}.get(t),
    "bit": lambda t: {"1": True, "0": False}.get(t),
    "bool": lambda t: {"true": True, "false": False}.get(t),
    "number": number,
}


def _changed(dev: _Dev, values: dict[str, Value], now: datetime) -> list[Event]:
    if not values:
        return []
    return [StateChanged.model_construct(ts=now, device_id=dev.id, values=values)]
