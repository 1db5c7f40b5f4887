"""Tasmota native discovery (SetOption19 0): discovery config, telemetry, results and commands."""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
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
from hub.wire import Message, topic_matches

log = logging.getLogger(__name__)

# The two FullTopic orders seen in the wild (`%prefix%/%topic%/` is the default,
# `%topic%/%prefix%/` is common): subscribing to both catches a device's retained LWT before
# its discovery config arrives. Any other `ft` is added by subscriptions() once discovered.
STATIC_FILTERS = ("tele/+/+", "stat/+/+", "+/tele/+", "+/stat/+")

# Retained messages on topics not yet routed (an LWT that arrives before its config) are kept,
# newest per topic, and replayed once the device is known; bounded so a busy broker cannot grow it.
RETAINED_BUFFER = 512

# Tasmota sends no unit per value: it is implied by the key (hatasmota's table) or, for
# temperatures and pressures, by the sibling `TempUnit` / `PressureUnit`.
# key -> (kind, unit or the name of the sibling unit field, point key base or None for the kind).
_FIELDS: dict[str, tuple[Kind, str | None, str | None]] = {
    "Temperature": (Kind.TEMPERATURE, "TempUnit", None),
    "Humidity": (Kind.HUMIDITY, "%", None),
    "DewPoint": (Kind.OTHER, "TempUnit", "dew_point"),
    "Pressure": (Kind.PRESSURE, "PressureUnit", None),
    "Illuminance": (Kind.ILLUMINANCE, "lx", None),
    "CarbonDioxide": (Kind.CO2, "ppm", None),
    "eCO2": (Kind.CO2, "ppm", None),
    "PM2.5": (Kind.PM25, "µg/m³", None),
    "PM10": (Kind.PM10, "µg/m³", None),
    "TVOC": (Kind.VOC, "ppb", None),
    "Battery": (Kind.BATTERY, "%", None),
    "Power": (Kind.POWER, "W", None),
    "Voltage": (Kind.VOLTAGE, "V", None),
    "Current": (Kind.CURRENT, "A", None),
    "Total": (Kind.ENERGY, "kWh", None),
    "Today": (Kind.ENERGY, "kWh", "energy_today"),
    "Yesterday": (Kind.ENERGY, "kWh", "energy_yesterday"),
    "ApparentPower": (Kind.OTHER, "VA", "apparent_power"),
    "ReactivePower": (Kind.OTHER, "var", "reactive_power"),
    "Factor": (Kind.OTHER, None, "power_factor"),
    "Frequency": (Kind.OTHER, "Hz", "frequency"),
    "Distance": (Kind.OTHER, "cm", "distance"),
}
_UNIT_FIELDS = {"TempUnit": "°C", "PressureUnit": "hPa"}
# Sensor blocks that describe the device itself (the ESP32 chip temperature is not the room's).
_DIAGNOSTIC_BLOCKS = frozenset({"ESP32", "ESP8266"})
# Keys of a SENSOR payload that carry no measurement.
_SKIP_TOP = frozenset({"Time", "TempUnit", "PressureUnit", "SpeedUnit", "IP", "MAC"})
_SKIP_FIELD = frozenset({"Id", "TotalStartTime"})

# SwitchMode -> (kind, is an event). hatasmota: 1/2 follow and 3-6 pushbutton are binary
# sensors, 13/14 PUSHON are PIR motion inputs; the rest only trigger.
_SWITCH_STATE_MODES: dict[int, Kind] = {1: Kind.OTHER, 2: Kind.OTHER, 3: Kind.OTHER, 4: Kind.OTHER}
_SWITCH_STATE_MODES |= {5: Kind.OTHER, 6: Kind.OTHER, 13: Kind.MOTION, 14: Kind.MOTION}

# Button actions normalized to the hub's press vocabulary (shared with Shelly and Homie).
_BUTTON_ACTIONS = {"SINGLE": "single", "DOUBLE": "double", "TRIPLE": "triple", "HOLD": "long"}

# Relay types (`rl`): 1 relay, 2 light, 3 shutter (relays in pairs).
_RELAY, _LIGHT, _SHUTTER = 1, 2, 3
_SHUTTER_DIRECTION = {1: "opening", -1: "closing", 0: "stopped"}
_COVER_COMMANDS = {"open": "ShutterOpen", "close": "ShutterClose", "stop": "ShutterStop"}
# lt_st light subtypes with a colour temperature channel: 2 CW, 5 RGBCW.
_CT_SUBTYPES = frozenset({2, 5})

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_SNAKE = re.compile(r"[^a-z0-9]+")


def snake(text: str) -> str:
    """A vendor name as a snake_case point key fragment."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return _SNAKE.sub("_", spaced.lower()).strip("_") or "value"


@dataclass(slots=True)
class _Sensor:
    key: str
    sub: str | None  # the field inside a composite value, or None
    convert: Callable[[Any], Value]


@dataclass(slots=True)
class _Dev:
    """Everything the hot path needs about one discovered device, precomputed at discovery."""

    mac: str
    id: str
    name: str
    model: str | None  # what the device description takes from the config (`md`, `sw`)
    firmware: str | None
    onln: str
    ofln: str
    texts: dict[str, str]  # state text -> "off" / "on" / "toggle" / "hold"
    topics: dict[str, str]  # "cmnd" / "stat" / "tele" -> full topic prefix ending in "/"
    points: dict[str, Point] = field(default_factory=dict)
    power: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # POWERn -> (key, sub)
    relay_cmd: dict[str, str] = field(default_factory=dict)  # point key -> POWERn
    light: str | None = None
    light_ct: bool = False
    shutters: dict[str, str] = field(default_factory=dict)  # Shutter<n> -> key
    buttons: dict[str, str] = field(default_factory=dict)  # Button<n> -> key
    switches: dict[str, tuple[str, bool]] = field(default_factory=dict)  # swn -> (key, is_event)
    sensors: dict[tuple[str, str], _Sensor | None] = field(default_factory=dict)
    dirty: bool = False
    device: Device | None = None

    def add(self, point: Point) -> str:
        """Add a point under a key unique within the device; returns the key used."""
        key, n = point.key, 2
        while key in self.points:
            key, n = f"{point.key}_{n}", n + 1
        # Shared with every device that has the same point (a home's many plugs of one kind).
        self.points[key] = shared_point(point if key == point.key else point.model_copy(update={"key": key}))
        self.dirty = True
        return key


Handler = Callable[["TasmotaAdapter", _Dev, Message, datetime], list[Event]]


class TasmotaAdapter(CountedFeed):
    """Tasmota devices found through `tasmota/discovery/<MAC>/config` and `/sensors`."""

    name: ClassVar[str] = "tasmota"

    def __init__(self, prefix: str = "tasmota/discovery") -> None:
        self.prefix = prefix.strip("/")
        self.counters: Counter[str] = Counter()
        self._devices: dict[str, _Dev] = {}  # by MAC
        self._by_id: dict[str, _Dev] = {}
        self._routes: dict[str, tuple[_Dev, Handler]] = {}
        self._others: dict[str, int] = {}  # device id -> its "other" points, summed in counters["other_point"]
        # Filters for devices whose FullTopic the static ones miss, counted by the devices that need
        # each: worked out once per discovery, as `subscriptions` is asked after every burst of them.
        self._extra: Counter[str] = Counter()
        self._retained: OrderedDict[str, Message] = OrderedDict()

    def subscriptions(self) -> list[str]:
        """Discovery, both common FullTopic orders, and the topics of discovered devices with another `ft`."""
        own = [f"{self.prefix}/+/config", f"{self.prefix}/+/sensors", *STATIC_FILTERS]
        return own + sorted(self._extra)

    def _feed(self, msg: Message, now: datetime) -> list[Event]:
        route = self._routes.get(msg.topic)
        if route is not None:
            dev, handler = route
            events = handler(self, dev, msg, now)
            return self._with_discovery(dev, now, events)
        head, _, tail = msg.topic.rpartition("/")
        if head.startswith(self.prefix + "/") and head.count("/") == self.prefix.count("/") + 1:
            mac = head.rsplit("/", 1)[1]
            if tail == "config":
                return self._config(mac, msg, now)
            if tail == "sensors":
                return self._sensors_snapshot(mac, msg, now)
        self._keep(msg)
        return []

    def _keep(self, msg: Message) -> None:
        if not msg.retain:
            return
        self._retained[msg.topic] = msg
        self._retained.move_to_end(msg.topic)
        while len(self._retained) > RETAINED_BUFFER:
            self._retained.popitem(last=False)

    def _with_discovery(self, dev: _Dev, now: datetime, events: list[Event]) -> list[Event]:
        # New points learned from a message (a sensor not in the snapshot, an undeclared
        # button) are announced before the values that use them.
        if not dev.dirty:
            return events
        return [self._discovered(dev, now), *events]

    def _discovered(self, dev: _Dev, now: datetime) -> DeviceDiscovered:
        dev.dirty = False
        dev.device = Device(
            id=dev.id,
            name=dev.name,
            protocol=Protocol.TASMOTA,
            manufacturer="Tasmota",
            model=dev.model,
            firmware=dev.firmware,
            identifiers={"mac": dev.mac},
            points=tuple(dev.points.values()),
        )
        # Counted by difference: a sum over every device would make thousands of discoveries quadratic.
        others = sum(1 for p in dev.points.values() if p.kind is Kind.OTHER and not p.diagnostic)
        self.counters["other_point"] += others - self._others.get(dev.id, 0)
        self._others[dev.id] = others
        return DeviceDiscovered(ts=now, device=dev.device)

    # -- discovery ---------------------------------------------------------------------

    def _config(self, topic_mac: str, msg: Message, now: datetime) -> list[Event]:
        if not msg.payload:
            dev = self._devices.pop(topic_mac, None)
            if dev is None:
                return []
            self._forget(dev)
            return [DeviceRemoved(ts=now, device_id=dev.id, reason="tasmota discovery config deleted")]
        cfg = decode_object(msg.payload)
        dev = _parse_config(cfg)
        old = self._devices.get(topic_mac)
        if old is not None:
            self._forget(old)
            dev.sensors = old.sensors
            for sensor in (s for s in old.sensors.values() if s is not None):
                point = old.points.get(sensor.key)
                if point is not None and sensor.key not in dev.points:
                    dev.points[sensor.key] = point
        self._devices[topic_mac] = dev
        self._by_id[dev.id] = dev
        self._route(dev)
        events: list[Event] = [self._discovered(dev, now)]
        for topic in [t for t in self._retained if t in self._routes or t == self._snapshot_topic(topic_mac)]:
            try:
                events.extend(self._feed(self._retained.pop(topic), now))
            except Rejected as exc:
                self.counters[exc.reason] += 1
                log.info("tasmota: replayed %s rejected: %s", topic, exc)
        return events

    def _snapshot_topic(self, mac: str) -> str:
        return f"{self.prefix}/{mac}/sensors"

    def _forget(self, dev: _Dev) -> None:
        self._by_id.pop(dev.id, None)
        self._extra -= Counter(_extra_filters(dev))
        self.counters["other_point"] -= self._others.pop(dev.id, 0)
        for topic in [t for t, (d, _) in self._routes.items() if d is dev]:
            del self._routes[topic]

    def _route(self, dev: _Dev) -> None:
        self._extra += Counter(_extra_filters(dev))
        tele, stat = dev.topics["tele"], dev.topics["stat"]
        table: dict[str, Handler] = {
            tele + "LWT": TasmotaAdapter._lwt,
            tele + "STATE": TasmotaAdapter._state,
            stat + "STATE": TasmotaAdapter._state,
            stat + "STATUS11": TasmotaAdapter._status11,
            tele + "SENSOR": TasmotaAdapter._sensor,
            stat + "STATUS10": TasmotaAdapter._status10,
            stat + "RESULT": TasmotaAdapter._result,
        }
        table |= {stat + name: TasmotaAdapter._power_text for name in dev.power}
        self._routes.update({topic: (dev, handler) for topic, handler in table.items()})

    def _sensors_snapshot(self, mac: str, msg: Message, now: datetime) -> list[Event]:
        dev = self._devices.get(mac)
        if dev is None:
            self._keep(msg)
            return []
        snapshot = decode_object(msg.payload).get("sn")
        if not isinstance(snapshot, dict):
            raise Rejected("bad_sensors", "the /sensors message has no 'sn' object")
        # The snapshot only declares the sensors: its values may be hours old.
        self._sensor_values(dev, snapshot, now)
        return self._with_discovery(dev, now, [])

    # -- state handlers (the hot path: one dict lookup by topic, then these) -------------

    def _lwt(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        text = decode_text(msg.payload)
        states = {dev.onln: AvailabilityState.ONLINE, dev.ofln: AvailabilityState.OFFLINE}
        state = states.get(text)
        if state is None:
            raise Rejected("bad_availability", f"LWT {text[:40]!r} is neither {dev.onln!r} nor {dev.ofln!r}")
        avail = Availability(state=state, reason=f"tasmota LWT {text}", last_seen=now)
        return [AvailabilityChanged.model_construct(ts=now, device_id=dev.id, availability=avail)]

    def _power_text(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        name = msg.topic.rsplit("/", 1)[1]
        values: dict[str, Value] = {}
        self._put_power(dev, name, decode_text(msg.payload), values)
        return _changed(dev, values, now)

    def _state(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        values: dict[str, Value] = {}
        self._state_values(dev, decode_object(msg.payload), values)
        return _changed(dev, values, now)

    def _status11(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        body = decode_object(msg.payload).get("StatusSTS")
        if not isinstance(body, dict):
            raise Rejected("bad_status", "STATUS11 without a StatusSTS object")
        values: dict[str, Value] = {}
        self._state_values(dev, body, values)
        return _changed(dev, values, now)

    def _sensor(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        return _changed(dev, self._sensor_values(dev, decode_object(msg.payload), now), now)

    def _status10(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        body = decode_object(msg.payload).get("StatusSNS")
        if not isinstance(body, dict):
            raise Rejected("bad_status", "STATUS10 without a StatusSNS object")
        return _changed(dev, self._sensor_values(dev, body, now), now)

    def _result(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        data = decode_object(msg.payload)
        values: dict[str, Value] = {}
        self._state_values(dev, data, values)
        events: list[Event] = []
        for name, body in data.items():
            if name.startswith("Button") and isinstance(body, dict):
                events.extend(self._button(dev, name, body, msg, now))
            elif name in dev.switches and isinstance(body, dict):
                events.extend(self._switch_action(dev, name, body.get("Action"), msg, now, values))
            elif name in dev.shutters and isinstance(body, dict):
                _put(values, dev.shutters[name], None, _cover(body))
        return _changed(dev, values, now) + events

    def _state_values(self, dev: _Dev, data: Mapping[str, Any], values: dict[str, Value]) -> None:
        for name, raw in data.items():
            if name in dev.power:
                self._put_power(dev, name, raw, values)
        if dev.light is not None:
            dimmer = number(data.get("Dimmer"))
            if dimmer is not None:
                _put(values, dev.light, "brightness", dimmer)
            ct = number(data.get("CT")) if dev.light_ct else None
            if ct:
                _put(values, dev.light, "color_temp", to_canonical(ct, "mired")[0])
        wifi = data.get("Wifi")
        if isinstance(wifi, dict):
            for src, key in (("RSSI", "rssi"), ("Signal", "signal")):
                v = number(wifi.get(src))
                if v is not None and key in dev.points:
                    values[key] = v
        uptime = number(data.get("UptimeSec"))
        if uptime is not None:
            values["uptime"] = uptime

    def _put_power(self, dev: _Dev, name: str, raw: Any, values: dict[str, Value]) -> None:
        word = dev.texts.get(raw) if isinstance(raw, str) else None
        if word not in ("on", "off"):
            raise Rejected("bad_value", f"{name}: {str(raw)[:40]!r} is not one of the device's state texts")
        key, sub = dev.power[name]
        _put(values, key, sub, word == "on")

    def _button(self, dev: _Dev, name: str, body: Mapping[str, Any], msg: Message, now: datetime) -> list[Event]:
        action = body.get("Action")
        if not isinstance(action, str) or not _NUMBERED.match(name):
            raise Rejected("bad_event", f"{name}: no Action text")
        if msg.retain:
            raise Rejected("retained_event", f"{name} {action} arrived retained")
        key = dev.buttons.get(name)
        if key is None:
            n = name.removeprefix("Button")
            key = dev.buttons[name] = dev.add(
                Point(key=f"button_{n}", kind=Kind.BUTTON, name=f"{dev.name} button {n}", source=f"tasmota:{name}")
            )
        value = _BUTTON_ACTIONS.get(action.upper(), action.lower())
        return [PointEvent.model_construct(ts=now, device_id=dev.id, key=key, value=value)]

    def _switch_action(
        self, dev: _Dev, name: str, action: Any, msg: Message, now: datetime, values: dict[str, Value]
    ) -> list[Event]:
        word = dev.texts.get(action) if isinstance(action, str) else None
        if word is None:
            raise Rejected("bad_value", f"{name}: action {str(action)[:40]!r} is not a state text")
        key, is_event = dev.switches[name]
        if not is_event:
            if word in ("on", "off"):
                values[key] = word == "on"
            return []
        if msg.retain:
            raise Rejected("retained_event", f"{name} {action} arrived retained")
        return [PointEvent.model_construct(ts=now, device_id=dev.id, key=key, value=word)]

    def _sensor_values(self, dev: _Dev, data: Mapping[str, Any], now: datetime) -> dict[str, Value]:
        values: dict[str, Value] = {}
        units = {name: data.get(name) for name in _UNIT_FIELDS}
        for block, body in data.items():
            if block in dev.switches:
                key, is_event = dev.switches[block]
                word = dev.texts.get(body) if isinstance(body, str) else None
                if not is_event and word in ("on", "off"):
                    values[key] = word == "on"
            elif block in dev.shutters and isinstance(body, dict):
                values[dev.shutters[block]] = _cover(body)
            elif isinstance(body, dict):
                for fname, raw in body.items():
                    self._leaf(dev, block, fname, raw, units, values)
            elif block not in _SKIP_TOP:
                self.counters["ignored_field"] += 1
        return values

    def _leaf(
        self, dev: _Dev, block: str, fname: str, raw: Any, units: Mapping[str, Any], values: dict[str, Value]
    ) -> None:
        if isinstance(raw, list):
            for i, item in enumerate(raw, 1):
                self._leaf(dev, block, f"{fname}{i}", item, units, values)
            return
        if fname in _SKIP_FIELD:
            return
        slot = (block, fname)
        if slot in dev.sensors:
            sensor = dev.sensors[slot]
        else:
            sensor = dev.sensors[slot] = _new_sensor(dev, block, fname, raw, units)
        if sensor is None:
            self.counters["ignored_field"] += 1
            return
        value = sensor.convert(raw)
        if value is not None:
            _put(values, sensor.key, sensor.sub, value)

    # -- commands ------------------------------------------------------------------------

    def encode(self, device: Device, values: Mapping[str, Value]) -> list[Message]:
        """The `cmnd/<t>/<Command>` messages (built from the device's own `ft`) that set these values."""
        dev = self._by_id.get(device.id)
        if dev is None:
            raise Rejected("unknown_device", f"{device.id} has not been discovered by the tasmota adapter")
        cmnd = dev.topics["cmnd"]
        out: list[Message] = []
        for key, value in values.items():
            point = dev.points.get(key)
            if point is None or not point.writable:
                raise Rejected("not_writable", f"{device.id} has no writable point {key!r}")
            out.extend(Message(cmnd + name, payload.encode()) for name, payload in _command(dev, point, value))
        return out


def _command(dev: _Dev, point: Point, value: Value) -> list[tuple[str, str]]:
    """(command, payload) pairs for one point, as the Tasmota docs prescribe."""
    if point.kind is Kind.SWITCH:
        if not isinstance(value, bool):
            raise Rejected("bad_value", f"{point.key} takes true or false, not {value!r}")
        return [(dev.relay_cmd[point.key], "ON" if value else "OFF")]
    if point.kind is Kind.LIGHT:
        parts = value if isinstance(value, dict) else {"on": value}
        out: list[tuple[str, str]] = []
        ct = number(parts.get("color_temp"))
        if ct is not None and ct > 0:
            out.append(("CT", str(min(500, max(153, round(1_000_000 / ct))))))
        level = number(parts.get("brightness"))
        if level is not None:
            out.append(("Dimmer", str(min(100, max(0, round(level))))))
        on = parts.get("on")
        if isinstance(on, bool):
            out.append((dev.relay_cmd[point.key], "ON" if on else "OFF"))
        if not out:
            raise Rejected("bad_value", f"{point.key} takes on/brightness/color_temp, not {value!r}")
        return out
    n = point.source.rsplit("Shutter", 1)[1] if point.source else "1"
    parts = value if isinstance(value, dict) else {"position": value}
    pos = number(parts.get("position"))
    if pos is not None:
        return [(f"ShutterPosition{n}", str(min(100, max(0, round(pos)))))]
    state = parts.get("state")
    if isinstance(state, str) and state in _COVER_COMMANDS:
        return [(f"{_COVER_COMMANDS[state]}{n}", "")]
    raise Rejected("bad_value", f"{point.key} takes a position 0-100 or open/close/stop, not {value!r}")


# -- pure parsing helpers ----------------------------------------------------------------


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _need(cfg: Mapping[str, Any], key: str, kind: type) -> Any:
    value = cfg.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise Rejected("bad_config", f"'{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _list_of(cfg: Mapping[str, Any], key: str) -> list[Any]:
    value = cfg.get(key)
    return value if isinstance(value, list) else []


def _ints(cfg: Mapping[str, Any], key: str) -> list[int]:
    # Lengths vary by version (8, 28, 32) and `rl`/`swc` differ within one message.
    raw = cfg.get(key, [])
    if not isinstance(raw, list):
        raise Rejected("bad_config", f"'{key}' must be a list")
    return [int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0 for v in raw]


def build_topics(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The cmnd/stat/tele topic prefixes from `ft` with `%prefix%`, `%topic%`, `%hostname%`, `%id%`."""
    ft, t = _need(cfg, "ft", str), _need(cfg, "t", str)
    tp = _need(cfg, "tp", list)
    if len(tp) < 3 or not all(isinstance(p, str) and p for p in tp[:3]):
        raise Rejected("bad_config", "'tp' must list the cmnd, stat and tele prefixes")
    if not t or any(c in t for c in "+#") or "%prefix%" not in ft:
        raise Rejected("bad_config", f"unusable topic {t[:40]!r} / full topic {ft[:60]!r}")
    hn = cfg.get("hn") if isinstance(cfg.get("hn"), str) else ""
    mac = cfg.get("mac") if isinstance(cfg.get("mac"), str) else ""
    base = ft.replace("%topic%", t).replace("%hostname%", str(hn)).replace("%id%", str(mac)[-6:])
    base = base if base.endswith("/") else base + "/"
    return {name: base.replace("%prefix%", prefix) for name, prefix in zip(("cmnd", "stat", "tele"), tp, strict=False)}


def _parse_config(cfg: Mapping[str, Any]) -> _Dev:
    mac = normalize_mac(_need(cfg, "mac", str))
    if mac is None:
        raise Rejected("bad_config", "'mac' is not a MAC address")
    texts = cfg.get("state", ["OFF", "ON", "TOGGLE", "HOLD"])
    if not isinstance(texts, list) or len(texts) < 4 or not all(isinstance(s, str) for s in texts[:4]):
        raise Rejected("bad_config", "'state' must list the OFF, ON, TOGGLE and HOLD texts")
    name = _opt_str(cfg.get("dn")) or mac
    dev = _Dev(
        mac=mac,
        id=device_id(Protocol.TASMOTA, mac),
        name=name,
        model=_opt_str(cfg.get("md")),
        firmware=_opt_str(cfg.get("sw")),
        onln=_need(cfg, "onln", str),
        ofln=_need(cfg, "ofln", str),
        texts=dict(zip(texts[:4], ("off", "on", "toggle", "hold"), strict=True)),
        topics=build_topics(cfg),
    )
    _relays(dev, cfg)
    _inputs(dev, cfg)
    for key, unit, src in (("rssi", "%", "Wifi.RSSI"), ("signal", "dBm", "Wifi.Signal"), ("uptime", "s", "UptimeSec")):
        dev.add(Point(key=key, kind=Kind.OTHER, unit=unit, diagnostic=True, source=f"tasmota:{src}", note="diagnostic"))
    return dev


def _relays(dev: _Dev, cfg: Mapping[str, Any]) -> None:
    rl = _ints(cfg, "rl")
    so = cfg.get("so")
    so = so if isinstance(so, dict) else {}
    force_light = so.get("30") == 1
    names = _list_of(cfg, "fn")
    kinds = [(_LIGHT if t == _RELAY and force_light else t) for t in rl]
    relays = [i for i, t in enumerate(kinds) if t == _RELAY]
    lights = [i for i, t in enumerate(kinds) if t == _LIGHT]
    single = len(rl) - rl.count(0) == 1
    subtype = cfg.get("lt_st")
    for i in relays + lights:
        n = i + 1
        label = names[i] if i < len(names) and isinstance(names[i], str) and names[i] else f"{dev.name} {n}"
        base = "switch" if i in relays else "light"
        many = len(relays if i in relays else lights) > 1
        key = dev.add(
            Point(
                key=f"{base}_{n}" if many else base,
                kind=Kind.SWITCH if i in relays else Kind.LIGHT,
                writable=True,
                name=label,
                source=f"tasmota:POWER{n}",
            )
        )
        # A single relay reports `POWER`; with SetOption26 or several relays `POWERn`.
        sub = None if i in relays else "on"
        dev.power[f"POWER{n}"] = (key, sub)
        if single:
            dev.power["POWER"] = (key, sub)
        dev.relay_cmd[key] = "POWER" if single else f"POWER{n}"
        if i in lights and dev.light is None:
            dev.light, dev.light_ct = key, subtype in _CT_SUBTYPES
    shutters = kinds.count(_SHUTTER) // 2
    for n in range(1, shutters + 1):
        key = dev.add(
            Point(
                key=f"cover_{n}" if shutters > 1 else "cover",
                kind=Kind.COVER,
                unit="%",
                writable=True,
                min=0,
                max=100,
                name=f"{dev.name} shutter {n}",
                source=f"tasmota:Shutter{n}",
            )
        )
        dev.shutters[f"Shutter{n}"] = key


def _inputs(dev: _Dev, cfg: Mapping[str, Any]) -> None:
    for i, present in enumerate(_ints(cfg, "btn")):
        if present:
            key = dev.add(Point(key=f"button_{i + 1}", kind=Kind.BUTTON, name=f"{dev.name} button {i + 1}"))
            dev.buttons[f"Button{i + 1}"] = key
    swn = _list_of(cfg, "swn")
    for i, mode in enumerate(_ints(cfg, "swc")):
        if mode < 0:
            continue
        label = swn[i] if i < len(swn) and isinstance(swn[i], str) and swn[i] else f"Switch{i + 1}"
        kind = _SWITCH_STATE_MODES.get(mode)
        note = f"switch input in SwitchMode {mode}: its meaning is not declared" if kind is Kind.OTHER else None
        point = Point(
            key=f"input_{i + 1}",
            kind=kind if kind is not None else Kind.BUTTON,
            name=f"{dev.name} {label}",
            source=f"tasmota:{label}",
            note=note,
        )
        dev.switches[label] = (dev.add(point), kind is None)


def _new_sensor(dev: _Dev, block: str, fname: str, raw: Any, units: Mapping[str, Any]) -> _Sensor | None:
    """A decoder for one (block, field) of a SENSOR payload, adding its point to the device."""
    m = _NUMBERED.match(fname)
    base_name = fname if fname in _FIELDS or not m else m.group(1)
    row = _FIELDS.get(base_name)
    source = f"tasmota:{block}.{fname}"
    if row is None:
        if isinstance(raw, dict):
            return None
        why = "Tasmota sensor field not in the unit table"
        key = dev.add(Point(key=snake(f"{block}_{fname}"), kind=Kind.OTHER, source=source, note=why))
        return _Sensor(key, None, _other_value)
    kind, unit_src, key_base = row
    unit: str | None = unit_src
    if unit_src in _UNIT_FIELDS:
        sibling = units.get(unit_src)
        unit = _UNIT_FIELDS[unit_src] if sibling in (None, "C", "hPa") else str(sibling)
        if unit_src == "TempUnit" and sibling == "F":
            unit = "°F"
    canonical = to_canonical(0.0, unit)[1]
    diagnostic = block in _DIAGNOSTIC_BLOCKS
    key = key_base or kind.value
    # The first ordinary sensor of a kind gets the plain key (`temperature`); chip sensors and
    # later ones are qualified by their driver block (`temperature_esp32`, `temperature_ds18b20`).
    if diagnostic or key in dev.points:
        key = f"{key}_{snake(block)}" + (f"_{m.group(2)}" if m and base_name != fname else "")
    note = "Tasmota value outside the kind vocabulary" if kind is Kind.OTHER else None
    name = f"{block} {fname}"
    key = dev.add(Point(key=key, kind=kind, unit=canonical, source=source, note=note, diagnostic=diagnostic, name=name))
    return _Sensor(key, None, _unit_converter(unit))


@functools.lru_cache(maxsize=64)
def _unit_converter(unit: str | None) -> Callable[[Any], Value]:
    """A sensor value in `unit` brought to the canonical unit: one function per unit, shared by every sensor."""

    def convert(value: Any) -> Value:
        v = number(value)
        return None if v is None else to_canonical(v, unit)[0]

    return convert


def _other_value(value: Any) -> Value:
    if isinstance(value, (str, bool)) or value is None:
        return value
    return number(value)


def _cover(body: Mapping[str, Any]) -> Value:
    pos = number(body.get("Position"))
    direction = number(body.get("Direction"))
    state = _SHUTTER_DIRECTION.get(int(direction)) if direction is not None else None
    if state == "stopped" and pos in (0.0, 100.0):
        state = "closed" if pos == 0.0 else "open"
    return {"position": pos, "state": state}


def _put(values: dict[str, Value], key: str, sub: str | None, value: Value) -> None:
    if sub is None:
        values[key] = value
        return
    current = values.get(key)
    if isinstance(current, dict):
        current[sub] = value  # type: ignore[assignment]
    else:
        values[key] = {sub: value}  # type: ignore[dict-item]


def _changed(dev: _Dev, values: dict[str, Value], now: datetime) -> list[Event]:
    if not values:
        return []
    return [StateChanged.model_construct(ts=now, device_id=dev.id, values=values)]


def _extra_filters(dev: _Dev) -> set[str]:
    """The filters a device's topics need beyond STATIC_FILTERS (a FullTopic in an unusual order)."""
    return {
        dev.topics[p] + "+"
        for p in ("stat", "tele")
        if not any(topic_matches(f, dev.topics[p] + "LWT") for f in STATIC_FILTERS)
    }
