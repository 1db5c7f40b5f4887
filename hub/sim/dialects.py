"""Simulated devices, one class per dialect: pure encoders of announcements and reports, and command handlers.

Every device keeps its state as dialect-neutral *logical* values (`motion`, `open` (True =
open), `leak`, `battery`, `on`, `power`, `temperature` …) and speaks its vendor's own wire
format, shaped after the real captures in shared/fixtures/ (the Zigbee2MQTT definitions in
templates/zigbee2mqtt.json are copied verbatim from them). Nothing here touches a client
library: each method returns the Messages to publish, so the shapes are testable as data.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Protocol

from hub.wire import Message

Values = dict[str, Any]


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class SimSpec:
    """One simulated device as the home's table declares it."""

    key: str  # the day script's name for it: "bed", "bathroom_motion" …
    dialect: str  # zigbee2mqtt | homeassistant | tasmota | shelly | homie
    native: str  # IEEE address, ESPHome node, Tasmota MAC, Shelly id, Homie id
    template: str  # which kind of device of that dialect (the keys of each TEMPLATES table)
    name: str
    initial: Mapping[str, Any] = field(default_factory=dict)
    mdns: bool = False  # advertised over mDNS (Shelly, ESPHome) when the sim is asked to


class SimDevice(Protocol):
    """What every simulated device does, whatever its dialect."""

    spec: SimSpec
    values: Values
    online: bool

    def announce(self, now: datetime) -> list[Message]:
        """Discovery, availability and the full current state, as the device sends them on boot."""
        ...

    def report(self, changed: Mapping[str, Any], now: datetime) -> list[Message]:
        """Apply logical changes (events included) and return what the device publishes for them."""
        ...

    def command_filters(self) -> list[str]:
        """The topics the device listens on for commands."""
        ...

    def command(self, msg: Message, now: datetime) -> list[Message]:
        """Obey one command (change state, report it, answer RPC); [] when it is not for this device."""
        ...

    def availability(self, online: bool) -> list[Message]:
        """The messages saying the device came online or went offline."""
        ...


class _Base:
    """Shared state bookkeeping: logical values, events, online flag."""

    EVENTS: ClassVar[frozenset[str]] = frozenset({"sos", "button"})

    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        self.values: Values = dict(spec.initial)
        self.online = True

    def _apply(self, changed: Mapping[str, Any]) -> tuple[Values, Values]:
        """Split changes into state (stored) and events (never stored)."""
        state = {k: v for k, v in changed.items() if k not in self.EVENTS}
        events = {k: v for k, v in changed.items() if k in self.EVENTS}
        self.values.update(state)
        return state, events


# --- Zigbee2MQTT --------------------------------------------------------------------------


@cache
def z2m_templates() -> dict[str, dict[str, Any]]:
    """Real `bridge/devices` entries (from shared/fixtures/zigbee2mqtt/bridge_devices_sample.json) by template."""
    text = resources.files("hub.sim").joinpath("templates/zigbee2mqtt.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


# Logical value -> (native property, conversion to the native value). Z2M's contact is True
# when CLOSED, the inverse of the hub's convention: the simulator must speak it as it is.
_Z2M_PROPS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "motion": ("occupancy", bool),
    "presence": ("presence", bool),
    "open": ("contact", lambda v: not v),
    "leak": ("water_leak", bool),
    "battery": ("battery", int),
    "battery_low": ("battery_low", bool),
    "illuminance": ("illuminance", int),
    "temperature": ("temperature", float),
    "humidity": ("humidity", float),
    "pressure": ("pressure", float),
}
_Z2M_EVENTS: dict[str, tuple[str, Callable[[Any], Any]]] = {"sos": ("action", lambda v: "emergency")}
_Z2M_DIAGNOSTIC = {"linkquality": 120, "voltage": 3005}


class ZigbeeDevice(_Base):
    """A Zigbee end device behind the simulated Zigbee2MQTT bridge (state on `<base>/<friendly name>`)."""

    def __init__(self, spec: SimSpec, base: str = "zigbee2mqtt") -> None:
        super().__init__(spec)
        self.base = base
        self.friendly = spec.name
        self.entry = self._entry()
        exposed = {e.get("property") for e in self.entry["definition"]["exposes"]}
        self.props = {k: v for k, v in _Z2M_PROPS.items() if v[0] in exposed}

    def _entry(self) -> dict[str, Any]:
        entry = copy.deepcopy(z2m_templates()[self.spec.template])
        entry["ieee_address"] = self.spec.native
        entry["friendly_name"] = self.friendly
        entry["network_address"] = int(self.spec.native[-4:], 16)
        return entry

    @property
    def topic(self) -> str:
        """The device's state topic."""
        return f"{self.base}/{self.friendly}"

    def native_state(self) -> dict[str, Any]:
        """The whole state as Zigbee2MQTT publishes it (it always sends its full cached state)."""
        out: dict[str, Any] = {}
        for logical, value in self.values.items():
            prop = self.props.get(logical)
            if prop is not None:
                out[prop[0]] = prop[1](value)
        return out

    def announce(self, now: datetime) -> list[Message]:
        """Availability and state; the bridge announces the device itself in `bridge/devices`."""
        return [*self.availability(self.online), self._state({}, now)]

    def _state(self, events: Mapping[str, Any], now: datetime) -> Message:
        body: dict[str, Any] = {**self.native_state(), **_Z2M_DIAGNOSTIC, "last_seen": now.astimezone(UTC).isoformat()}
        for logical, value in events.items():
            prop, conv = _Z2M_EVENTS[logical]
            body[prop] = conv(value)
        return Message(self.topic, _json(body))

    def report(self, changed: Mapping[str, Any], now: datetime) -> list[Message]:
        """One state message with the full state (and the action, for an event)."""
        _, events = self._apply(changed)
        return [self._state(events, now)]

    def command_filters(self) -> list[str]:
        """`<base>/<friendly>/set`; the simulated sensors accept no writes but answer with their state."""
        return [f"{self.topic}/set", f"{self.topic}/get"]

    def command(self, msg: Message, now: datetime) -> list[Message]:
        """A /get or /set is answered with the current state (a sensor has nothing writable)."""
        if msg.topic in (f"{self.topic}/set", f"{self.topic}/get"):
            return [self._state({}, now)]
        return []

    def availability(self, online: bool) -> list[Message]:
        """`<base>/<friendly>/availability` as JSON (Zigbee2MQTT 1.30+), retained."""
        self.online = online
        word = "online" if online else "offline"
        return [Message(f"{self.topic}/availability", _json({"state": word}), retain=True)]


class ZigbeeBridge:
    """The Zigbee2MQTT bridge: `bridge/state`, the retained `bridge/devices` list, and its devices."""

    COORDINATOR = "0x00124b0018e2c4a1"

    def __init__(self, devices: Iterable[ZigbeeDevice], base: str = "zigbee2mqtt") -> None:
        self.base = base
        self.devices = list(devices)

    def coordinator(self) -> dict[str, Any]:
        """The coordinator entry that opens every real `bridge/devices` list."""
        return {
            "definition": None,
            "disabled": False,
            "endpoints": {},
            "friendly_name": "Coordinator",
            "ieee_address": self.COORDINATOR,
            "interview_completed": True,
            "interviewing": False,
            "network_address": 0,
            "supported": True,
            "type": "Coordinator",
        }

    def announce(self) -> list[Message]:
        """Bridge online and the device list, both retained as Zigbee2MQTT publishes them."""
        entries = [self.coordinator(), *(d.entry for d in self.devices)]
        return [
            Message(f"{self.base}/bridge/state", _json({"state": "online"}), retain=True),
            Message(f"{self.base}/bridge/devices", _json(entries), retain=True),
        ]

    def offline(self) -> Message:
        """The bridge's last will."""
        return Message(f"{self.base}/bridge/state", _json({"state": "offline"}), retain=True)


# --- Home Assistant discovery, as ESPHome publishes it ------------------------------------------

# component, object id, device class, unit: one row per entity of a template.
_HA_TEMPLATES: dict[str, list[tuple[str, str, str, str | None]]] = {
    "climate": [
        ("sensor", "temperature", "temperature", "°C"),
        ("sensor", "humidity", "humidity", "%"),
    ],
    "smoke": [("binary_sensor", "smoke", "smoke", None)],
    "motion": [("binary_sensor", "motion", "motion", None)],
}


class EsphomeDevice(_Base):
    """An ESPHome node with MQTT discovery: abbreviated configs under `homeassistant/`, states under `<node>/`."""

    def __init__(self, spec: SimSpec, prefix: str = "homeassistant") -> None:
        super().__init__(spec)
        self.prefix = prefix
        self.node = spec.native
        self.entities = _HA_TEMPLATES[spec.template]

    def config(self, component: str, obj: str, dev_cla: str, unit: str | None) -> Message:
        """One entity's discovery config, keyed like esphome_sensor_temperature_captured.json."""
        cfg: dict[str, Any] = {
            "name": f"{self.spec.name} {obj.replace('_', ' ').title()}",
            "dev_cla": dev_cla,
            "stat_t": f"{self.node}/{component}/{obj}/state",
            "avty_t": f"{self.node}/status",
            "uniq_id": f"ESP{component}{obj}",
            "dev": {
                "ids": self.node,
                "name": self.spec.name,
                "sw": "2026.8.0 (config hash 0x0dd1e1e6)",
                "mdl": "esp32",
                "mf": "Espressif",
                "cns": [["mac", self.mac]],
            },
        }
        if unit is not None:
            cfg = {"sug_dsp_prc": 1, "unit_of_meas": unit, "stat_cla": "measurement", **cfg}
        return Message(f"{self.prefix}/{component}/{self.node}/{obj}/config", _json(cfg), retain=True)

    @property
    def mac(self) -> str:
        """A stable, locally administered MAC derived from the node name (lower-case hex, as ESPHome writes it)."""
        return "02" + hashlib.sha1(self.node.encode()).hexdigest()[:10]

    def _states(self, keys: Iterable[str]) -> list[Message]:
        out = []
        for component, obj, _, _ in self.entities:
            if obj in keys and obj in self.values:
                v = self.values[obj]
                text = ("ON" if v else "OFF") if component == "binary_sensor" else f"{float(v):.1f}"
                out.append(Message(f"{self.node}/{component}/{obj}/state", text.encode(), retain=True))
        return out

    def announce(self, now: datetime) -> list[Message]:
        """Every entity's config, then online, then every state (ESPHome retains them)."""
        configs = [self.config(*row) for row in self.entities]
        return [*configs, *self.availability(self.online), *self._states(self.values)]

    def report(self, changed: Mapping[str, Any], now: datetime) -> list[Message]:
        """One state message per changed entity."""
        state, _ = self._apply(changed)
        return self._states(state)

    def command_filters(self) -> list[str]:
        """Sensors only: nothing to listen to."""
        return []

    def command(self, msg: Message, now: datetime) -> list[Message]:
        """Sensors accept no commands."""
        return []

    def availability(self, online: bool) -> list[Message]:
        """`<node>/status` online/offline, retained (ESPHome's birth and will)."""
        self.online = online
        return [Message(f"{self.node}/status", b"online" if online else b"offline", retain=True)]


# --- Tasmota (native discovery) -------------------------------------------------------------


class TasmotaPlug(_Base):
    """A Tasmota energy-monitoring plug: discovery after discovery_config_nous_a1t_13_1, SENSOR/STATE/RESULT, LWT."""

    def __init__(self, spec: SimSpec, prefix: str = "tasmota/discovery") -> None:
        super().__init__(spec)
        self.prefix = prefix
        self.mac = spec.native.upper()
        self.topic = f"tasmota_{self.mac[-6:]}"
        self.values.setdefault("on", False)
        self.values.setdefault("power", 0.0)
        self.energy_total = 12.5

    def discovery(self) -> dict[str, Any]:
        """The retained `config` payload, key for key as Tasmota 13 sends it."""
        return {
            "ip": "127.0.0.1",
            "dn": self.spec.name,
            "fn": [self.spec.name, None, None, None, None, None, None, None],
            "hn": f"tasmota-{self.mac[-6:]}-1966",
            "mac": self.mac,
            "md": "Nous A1T",
            "ty": 0,
            "if": 0,
            "ofln": "Offline",
            "onln": "Online",
            "state": ["OFF", "ON", "TOGGLE", "HOLD"],
            "sw": "13.1.0.1",
            "t": self.topic,
            "ft": "%prefix%/%topic%/",
            "tp": ["cmnd", "stat", "tele"],
            "rl": [1] + [0] * 31,
            "swc": [-1] * 28,
            "swn": [None] * 28,
            "btn": [0] * 32,
            "so": {"4": 0, "11": 0, "13": 0, "17": 0, "20": 0, "30": 0, "68": 0, "73": 0, "82": 0, "114": 0, "117": 0},
            "lk": 0,
            "lt_st": 0,
            "bat": 0,
            "dslp": 0,
            "sho": [],
            "sht": [],
            "ver": 1,
        }

    def _energy(self) -> dict[str, Any]:
        power = round(float(self.values["power"]) if self.values["on"] else 0.0)
        volts = 230
        return {
            "TotalStartTime": "2025-01-01T00:00:00",
            "Total": round(self.energy_total, 3),
            "Yesterday": 1.204,
            "Today": 0.318,
            "Period": 0,
            "Power": power,
            "ApparentPower": power,
            "ReactivePower": 0,
            "Factor": 1.0 if power else 0.0,
            "Voltage": volts,
            "Current": round(power / volts, 3),
        }

    def _word(self) -> str:
        return "ON" if self.values["on"] else "OFF"

    def announce(self, now: datetime) -> list[Message]:
        """Discovery config and sensors (retained), LWT Online, then STATE and SENSOR telemetry."""
        base = f"{self.prefix}/{self.mac}"
        sensors = {"sn": {"Time": _iso(now), "ENERGY": self._energy()}, "ver": 1}
        return [
            Message(f"{base}/config", _json(self.discovery()), retain=True),
            Message(f"{base}/sensors", _json(sensors), retain=True),
            *self.availability(self.online),
            *self._telemetry(now),
        ]

    def _telemetry(self, now: datetime) -> list[Message]:
        state = {
            "Time": _iso(now),
            "Uptime": "0T01:45:51",
            "UptimeSec": 6351,
            "Heap": 27,
            "SleepMode": "Dynamic",
            "Sleep": 50,
            "LoadAvg": 19,
            "MqttCount": 1,
            "POWER": self._word(),
            "Wifi": {"AP": 1, "SSId": "home", "BSSId": "02:00:00:00:00:01", "Channel": 6, "RSSI": 80, "LinkCount": 1},
        }
        return [
            Message(f"tele/{self.topic}/STATE", _json(state)),
            Message(f"tele/{self.topic}/SENSOR", _json({"Time": _iso(now), "ENERGY": self._energy()})),
        ]

    def report(self, changed: Mapping[str, Any], now: datetime) -> list[Message]:
        """A relay change is told as stat RESULT + POWER; a load change as tele SENSOR."""
        before = self.values["on"]
        self._apply(changed)
        out: list[Message] = []
        if self.values["on"] != before:
            out += [
                Message(f"stat/{self.topic}/RESULT", _json({"POWER": self._word()})),
                Message(f"stat/{self.topic}/POWER", self._word().encode()),
            ]
        out.append(Message(f"tele/{self.topic}/SENSOR", _json({"Time": _iso(now), "ENERGY": self._energy()})))
        return out

    def command_filters(self) -> list[str]:
        """`cmnd/<topic>/+`."""
        return [f"cmnd/{self.topic}/+"]

    def command(self, msg: Message, now: datetime) -> list[Message]:
        """POWER / POWER1 with ON, OFF, TOGGLE (or 1/0/2); an empty payload asks for the state."""
        name = msg.topic.rpartition("/")[2].upper()
        if not msg.topic.startswith(f"cmnd/{self.topic}/") or name not in ("POWER", "POWER1"):
            return []
        word = msg.payload.decode(errors="replace").strip().upper()
        wanted = {"ON": True, "1": True, "OFF": False, "0": False, "TOGGLE": not self.values["on"]}
        wanted["2"] = wanted["TOGGLE"]
        if word == "":
            return [Message(f"stat/{self.topic}/RESULT", _json({"POWER": self._word()}))]
        if word not in wanted:
            return [Message(f"stat/{self.topic}/RESULT", _json({"Command": "Error"}))]
        return self.report({"on": wanted[word]}, now)

    def availability(self, online: bool) -> list[Message]:
        """`tele/<topic>/LWT` Online/Offline, retained."""
        self.online = online
        return [Message(f"tele/{self.topic}/LWT", b"Online" if online else b"Offline", retain=True)]


# --- Shelly Gen2 ----------------------------------------------------------------------------


class ShellyPlus(_Base):
    """A Shelly Plus 1PM on MQTT: NotifyStatus/NotifyFullStatus on `<id>/events/rpc`, `<id>/online`, JSON-RPC."""

    APP = "Plus1PM"

    def __init__(self, spec: SimSpec) -> None:
        super().__init__(spec)
        self.src = spec.native
        self.prefix = spec.native  # the default topic prefix is the device id
        self.values.setdefault("on", False)
        self.values.setdefault("power", 0.0)
        self.mac = spec.native.rpartition("-")[2].upper()

    def _switch(self) -> dict[str, Any]:
        power = float(self.values["power"]) if self.values["on"] else 0.0
        return {
            "id": 0,
            "source": "init",
            "output": bool(self.values["on"]),
            "apower": power,
            "voltage": 232.7,
            "current": round(power / 232.7, 3),
            "aenergy": {"total": 0.0, "by_minute": [0.0, 0.0, 0.0], "minute_ts": 1661517385},
            "temperature": {"tC": 39.2, "tF": 102.5},
        }

    def _frame(self, method: str, params: dict[str, Any], now: datetime) -> Message:
        body = {
            "src": self.src,
            "dst": f"{self.prefix}/events",
            "method": method,
            "params": {"ts": now.timestamp(), **params},
        }
        return Message(f"{self.prefix}/events/rpc", _json(body))

    def full_status(self) -> dict[str, Any]:
        """The parts of Shelly.GetStatus the simulator knows."""
        return {"switch:0": self._switch(), "sys": {"mac": self.mac, "restart_required": False, "uptime": 15}}

    def announce(self, now: datetime) -> list[Message]:
        """Online (retained) and a NotifyFullStatus, as the device sends on connect."""
        return [*self.availability(self.online), self._frame("NotifyFullStatus", self.full_status(), now)]

    def report(self, changed: Mapping[str, Any], now: datetime) -> list[Message]:
        """NotifyStatus frames with what changed in switch:0: the output first, the power after, as the device does."""
        before = self._switch()
        self._apply(changed)
        after = self._switch()
        out: list[Message] = []
        if after["output"] != before["output"]:
            delta = {"id": 0, "output": after["output"], "source": "MQTT"}
            out.append(self._frame("NotifyStatus", {"switch:0": delta}, now))
        if after["apower"] != before["apower"]:
            out.append(self._frame("NotifyStatus", {"switch:0": {"id": 0, "apower": after["apower"]}}, now))
        return out

    def command_filters(self) -> list[str]:
        """`<prefix>/rpc`."""
        return [f"{self.prefix}/rpc"]

    def command(self, msg: Message, now: datetime) -> list[Message]:
        """Answer a JSON-RPC request on `<src>/rpc`; state changes are also notified on events/rpc."""
        if msg.topic != f"{self.prefix}/rpc":
            return []
        try:
            req = json.loads(msg.payload)
        except ValueError:
            return []
        if not isinstance(req, dict) or not isinstance(req.get("src"), str):
            return []  # a request without src cannot be answered
        method = req.get("method")
        raw = req.get("params")
        params: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        handler = self._RPC.get(method) if isinstance(method, str) else None
        reply: dict[str, Any] = {"id": req.get("id"), "src": self.src, "dst": req["src"]}
        notes: list[Message] = []
        if handler is None:
            reply["error"] = {"code": 404, "message": f"No handler for {method}"}
        else:
            result, notes = handler(self, params, now)
            reply["result"] = result
        return [Message(f"{req['src']}/rpc", _json(reply)), *notes]

    def _set(self, params: Mapping[str, Any], now: datetime) -> tuple[Any, list[Message]]:
        was = bool(self.values["on"])
        return {"was_on": was}, self.report({"on": bool(params.get("on"))}, now)

    def _toggle(self, params: Mapping[str, Any], now: datetime) -> tuple[Any, list[Message]]:
        was = bool(self.values["on"])
        return {"was_on": was}, self.report({"on": not was}, now)

    def _get_status(self, params: Mapping[str, Any], now: datetime) -> tuple[Any, list[Message]]:
        return self._switch(), []

    def _shelly_status(self, params: Mapping[str, Any], now: datetime) -> tuple[Any, list[Message]]:
        return self.full_status(), []

    def _device_info(self, params: Mapping[str, Any], now: datetime) -> tuple[Any, list[Message]]:
        info = {"id": self.src, "mac": self.mac, "model": "SNSW-001P16EU", "gen": 2, "ver": "1.4.4", "app": self.APP}
        return info, []

    _RPC: ClassVar[dict[str, Callable[[ShellyPlus, Mapping[str, Any], datetime], tuple[Any, list[Message]]]]] = {
        "Switch.Set": _set,
        "Switch.Toggle": _toggle,
        "Switch.GetStatus": _get_status,
        "Shelly.GetStatus": _shelly_status,
        "Shelly.GetDeviceInfo": _device_info,
    }

    def availability(self, online: bool) -> list[Message]:
        """`<prefix>/online` true/false, retained."""
        self.online = online
        return [Message(f"{self.prefix}/online", b"true" if online else b"false", retain=True)]


# --- Homie 5 -------------------------------------------------------------------------------

# node -> properties: property -> (logical value, datatype, unit, settable)
_HOMIE_TEMPLATES: dict[str, dict[str, dict[str, tuple[str, str, str | None, bool]]]] = {
    "env": {
        "sensors": {
            "temperature": ("temperature", "float", "°C", False),
            "humidity": ("humidity", "float", "%", False),
        }
    },
    "lamp": {"light": {"power": ("on", "boolean", None, True), "brightness": ("brightness", "integer", "%", True)}},
}


def _homie_text(datatype: str, value: Any) -> str:
    if datatype == "boolean":
        return "true" if value else "false"
    if datatype == "integer":
        return str(round(float(value)))
    return f"{float(value):.1f}"


def _homie_parse(datatype: str, text: str) -> Any:
    """A /set payload in the property's datatype; ValueError when it does not fit."""
    if datatype == "boolean":
        if text not in ("true", "false"):
            raise ValueError(text)
        return text == "true"
    if datatype == "integer":
        return int(text)
    return float(text)


class HomieDevice(_Base):
    """A Homie 5 device: `$state`, `$description`, retained values, and `/set` on settable properties."""

    def __init__(self, spec: SimSpec, prefix: str = "homie") -> None:
        super().__init__(spec)
        self.base = f"{prefix}/5/{spec.native}"
        self.nodes = _HOMIE_TEMPLATES[spec.template]
        self.by_logical = {
            logical: (node, prop, dtype)
            for node, props in self.nodes.items()
            for prop, (logical, dtype, _, _) in props.items()
        }

    def description(self) -> dict[str, Any]:
        """The `$description` document, shaped like v5_node_homie_description.json."""
        nodes = {
            node: {
                "name": node.title(),
                "properties": {
                    prop: {
                        "name": prop.title(),
                        "datatype": dtype,
                        "retained": True,
                        "settable": settable,
                        **({"unit": unit} if unit else {}),
                    }
                    for prop, (_, dtype, unit, settable) in props.items()
                },
            }
            for node, props in self.nodes.items()
        }
        return {"homie": "5.0", "name": self.spec.name, "version": 1, "nodes": nodes}

    def _values(self, logicals: Iterable[str]) -> list[Message]:
        out = []
        for logical in logicals:
            where = self.by_logical.get(logical)
            if where is not None and logical in self.values:
                node, prop, dtype = where
                text = _homie_text(dtype, self.values[logical])
                out.append(Message(f"{self.base}/{node}/{prop}", text.encode(), retain=True))
        return out

    def announce(self, now: datetime) -> list[Message]:
        """init, description, values, ready: the Homie 5 boot sequence."""
        return [
            Message(f"{self.base}/$state", b"init", retain=True),
            Message(f"{self.base}/$description", _json(self.description()), retain=True),
            *self._values(self.values),
            *self.availability(self.online),
        ]

    def report(self, changed: Mapping[str, Any], now: datetime) -> list[Message]:
        """One retained value per changed property."""
        state, _ = self._apply(changed)
        return self._values(state)

    def command_filters(self) -> list[str]:
        """`<base>/<node>/<prop>/set` for every settable property."""
        return [
            f"{self.base}/{node}/{prop}/set"
            for node, props in self.nodes.items()
            for prop, (_, _, _, settable) in props.items()
            if settable
        ]

    def command(self, msg: Message, now: datetime) -> list[Message]:
        """Set a settable property and report the new value; a payload of the wrong datatype is ignored (spec)."""
        if not msg.topic.startswith(self.base + "/") or not msg.topic.endswith("/set"):
            return []
        node, _, prop = msg.topic[len(self.base) + 1 : -len("/set")].partition("/")
        spec = self.nodes.get(node, {}).get(prop)
        if spec is None or not spec[3]:
            return []
        try:
            value = _homie_parse(spec[1], msg.payload.decode(errors="replace"))
        except ValueError:
            return []
        return self.report({spec[0]: value}, now)

    def availability(self, online: bool) -> list[Message]:
        """`$state` ready or lost, retained."""
        self.online = online
        return [Message(f"{self.base}/$state", b"ready" if online else b"lost", retain=True)]


# --- the table that builds them ----------------------------------------------------------------

BUILDERS: dict[str, Callable[[SimSpec], SimDevice]] = {
    "zigbee2mqtt": ZigbeeDevice,
    "homeassistant": EsphomeDevice,
    "tasmota": TasmotaPlug,
    "shelly": ShellyPlus,
    "homie": HomieDevice,
}

# The hub id each dialect's adapter gives a simulated device (see hub.model.device_id).
HUB_IDS: dict[str, Callable[[SimSpec], str]] = {
    "zigbee2mqtt": lambda s: f"z2m-{s.native}",
    "homeassistant": lambda s: f"ha-{s.native}",
    "tasmota": lambda s: f"tasmota-{s.native.upper()}",
    "shelly": lambda s: f"shelly-{s.native}",
    "homie": lambda s: f"homie-{s.native}",
}


def build(spec: SimSpec) -> SimDevice:
    """The simulated device for one table row; KeyError names an unknown dialect."""
    return BUILDERS[spec.dialect](spec)


def hub_id(spec: SimSpec) -> str:
    """The id the hub will give this device."""
    return HUB_IDS[spec.dialect](spec)
