"""Home Assistant MQTT discovery: configs become devices and points, state topics become partial updates."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, cast

from hub.adapters.base import CountedFeed, Rejected
from hub.adapters.common import (
    converter,
    decode_object,
    decode_text,
    normalize_ieee,
    normalize_mac,
    number,
    parse_json,
    to_canonical,
)
from hub.model import (
    KINDS,
    Availability,
    AvailabilityChanged,
    AvailabilityState,
    Category,
    Device,
    DeviceDiscovered,
    DeviceRemoved,
    Event,
    Kind,
    Point,
    PointEvent,
    Protocol,
    Scalar,
    Status,
    Value,
    device_id,
)
from hub.reports import state_changed
from hub.trusted import trusted
from hub.wire import Message

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------- abbreviations

# HA 2025.4 abbreviations.py, the keys this adapter reads plus the common ones; unknown keys
# (abbreviated or not) are kept as they are, never rejected.
ABBREVIATIONS: Final[dict[str, str]] = {
    "act_t": "action_topic",
    "act_tpl": "action_template",
    "atype": "automation_type",
    "aux_cmd_t": "aux_command_topic",
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "bri_cmd_t": "brightness_command_topic",
    "bri_cmd_tpl": "brightness_command_template",
    "bri_scl": "brightness_scale",
    "bri_stat_t": "brightness_state_topic",
    "bri_tpl": "brightness_template",
    "bri_val_tpl": "brightness_value_template",
    "clr_temp_cmd_t": "color_temp_command_topic",
    "clr_temp_cmd_tpl": "color_temp_command_template",
    "clr_temp_k": "color_temp_kelvin",
    "clr_temp_stat_t": "color_temp_state_topic",
    "clr_temp_val_tpl": "color_temp_value_template",
    "cmps": "components",
    "cmd_off_tpl": "command_off_template",
    "cmd_on_tpl": "command_on_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cod_arm_req": "code_arm_required",
    "curr_temp_t": "current_temperature_topic",
    "curr_temp_tpl": "current_temperature_template",
    "dev": "device",
    "dev_cla": "device_class",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "ent_pic": "entity_picture",
    "evt_typ": "event_types",
    "exp_aft": "expire_after",
    "fanspd_lst": "fan_speed_list",
    "frc_upd": "force_update",
    "fx_list": "effect_list",
    "ic": "icon",
    "init": "initial",
    "json_attr": "json_attributes",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "max_mirs": "max_mireds",
    "min_mirs": "min_mireds",
    "max_temp": "max_temp",
    "min_temp": "min_temp",
    "max_kelvin": "max_kelvin",
    "min_kelvin": "min_kelvin",
    "mode_cmd_t": "mode_command_topic",
    "mode_cmd_tpl": "mode_command_template",
    "mode_stat_t": "mode_state_topic",
    "mode_stat_tpl": "mode_state_template",
    "modes": "modes",
    "name": "name",
    "o": "origin",
    "obj_id": "object_id",
    "off_dly": "off_delay",
    "on_cmd_type": "on_command_type",
    "ops": "options",
    "opt": "optimistic",
    "osc_cmd_t": "oscillation_command_topic",
    "p": "platform",
    "pct_cmd_t": "percentage_command_topic",
    "pct_cmd_tpl": "percentage_command_template",
    "pct_stat_t": "percentage_state_topic",
    "pct_val_tpl": "percentage_value_template",
    "pl": "payload",
    "pl_arm_away": "payload_arm_away",
    "pl_avail": "payload_available",
    "pl_cls": "payload_close",
    "pl_disarm": "payload_disarm",
    "pl_lock": "payload_lock",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_open": "payload_open",
    "pl_prs": "payload_press",
    "pl_stop": "payload_stop",
    "pl_unlk": "payload_unlock",
    "pos": "reports_position",
    "pos_clsd": "position_closed",
    "pos_open": "position_open",
    "pos_t": "position_topic",
    "pos_tpl": "position_template",
    "ret": "retain",
    "schema": "schema",
    "set_pos_t": "set_position_topic",
    "set_pos_tpl": "set_position_template",
    "stat_cla": "state_class",
    "stat_clsd": "state_closed",
    "stat_closing": "state_closing",
    "stat_jam": "state_jammed",
    "stat_locked": "state_locked",
    "stat_locking": "state_locking",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_open": "state_open",
    "stat_opening": "state_opening",
    "stat_stopped": "state_stopped",
    "stat_t": "state_topic",
    "stat_tpl": "state_template",
    "stat_unlocked": "state_unlocked",
    "stat_unlocking": "state_unlocking",
    "stat_val_tpl": "state_value_template",
    "step": "step",
    "stype": "subtype",
    "sug_dsp_prc": "suggested_display_precision",
    "sup_clrm": "supported_color_modes",
    "t": "topic",
    "temp_cmd_t": "temperature_command_topic",
    "temp_cmd_tpl": "temperature_command_template",
    "temp_stat_t": "temperature_state_topic",
    "temp_stat_tpl": "temperature_state_template",
    "temp_unit": "temperature_unit",
    "temp_step": "temp_step",
    "tilt_cmd_t": "tilt_command_topic",
    "tilt_status_t": "tilt_status_topic",
    "tilt_status_tpl": "tilt_status_template",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS: Final[dict[str, str]] = {
    "cns": "connections",
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "mdl_id": "model_id",
    "hw": "hw_version",
    "sw": "sw_version",
    "sa": "suggested_area",
    "sn": "serial_number",
    "cu": "configuration_url",
    "via_device": "via_device",
}
ORIGIN_ABBREVIATIONS: Final[dict[str, str]] = {"name": "name", "sw": "sw_version", "url": "support_url"}


def _changing(table: dict[str, str]) -> frozenset[str]:
    return frozenset(k for k, v in table.items() if k != v)


# The abbreviations that differ from their expansion: a block with none of them (Zigbee2MQTT
# and most libraries publish full names) is kept as it is rather than rebuilt key by key.
_CHANGING: Final = _changing(ABBREVIATIONS)
_DEVICE_CHANGING: Final = _changing(DEVICE_ABBREVIATIONS)
_ORIGIN_CHANGING: Final = _changing(ORIGIN_ABBREVIATIONS)
# The nested blocks with their own abbreviations: key, table, the abbreviations that change.
_BLOCKS: Final = (
    ("device", DEVICE_ABBREVIATIONS, _DEVICE_CHANGING),
    ("origin", ORIGIN_ABBREVIATIONS, _ORIGIN_CHANGING),
)


def _expanded(table: dict[str, str], changing: frozenset[str], d: dict[str, Any]) -> dict[str, Any]:
    return d if changing.isdisjoint(d) else {table.get(k, k): v for k, v in d.items()}


def expand(cfg: dict[str, Any]) -> dict[str, Any]:
    """A freshly parsed discovery payload with abbreviations expanded and `~` replaced in topics (may change `cfg`)."""
    # The payload's own dict when no top-level key is abbreviated: nothing else holds it, and
    # copying a config's keys was a twentieth of its first announcement.
    out = {ABBREVIATIONS.get(k, k): v for k, v in cfg.items()} if not _CHANGING.isdisjoint(cfg) else cfg
    # Nested blocks are tested with `dict`, not `Mapping`: they come from json.loads, and the
    # ABC check costs eight times as much on a path that runs for every entity of a home.
    for key, table, changing in _BLOCKS:
        block = out.get(key)
        if isinstance(block, dict):
            out[key] = _expanded(table, changing, block)
    avty = out.get("availability")
    if isinstance(avty, list):
        out["availability"] = [_expanded(ABBREVIATIONS, _CHANGING, a) if isinstance(a, dict) else a for a in avty]
    comps = out.get("components")
    if isinstance(comps, dict):
        out["components"] = {
            str(k): _expanded(ABBREVIATIONS, _CHANGING, c) if isinstance(c, dict) else c for k, c in comps.items()
        }
    base = out.get("~")
    if isinstance(base, str):
        out = _tilde(out, base)
    return out


def _tilde(cfg: dict[str, Any], base: str) -> dict[str, Any]:
    def sub(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        if v.startswith("~"):
            return base + v[1:]
        if v.endswith("~"):
            return v[:-1] + base
        return v

    out = {k: sub(v) if k.endswith("topic") else v for k, v in cfg.items()}
    if isinstance(out.get("availability"), list):
        out["availability"] = [
            {**a, "topic": sub(a.get("topic"))} if isinstance(a, dict) else a for a in out["availability"]
        ]
    if isinstance(out.get("components"), dict):
        out["components"] = {
            k: {ck: sub(cv) if ck.endswith("topic") else cv for ck, cv in c.items()} if isinstance(c, dict) else c
            for k, c in out["components"].items()
        }
    return out


# ---------------------------------------------------------------------------------- templates

_UNDEFINED: Final = object()  # a missing key: the value is absent from this message
_SKIP: Final = object()  # a decoder's "this payload means nothing": no value is emitted


class TemplateError(ValueError):
    """A template outside the supported subset, or one that failed on this message."""


_TOKEN: Final = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>'[^'\\]*'|\"[^\"\\]*\")"
    r"|(?P<op>[.\[\]()|,]))"
)
_CHUNK: Final = re.compile(r"\{\{(.*?)\}\}", re.S)


def _tokens(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"unexpected {src[pos : pos + 10]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


# AST nodes are plain tuples: ("path", root, (keys...)), ("lit", value), ("filter", name, node, args),
# ("cond", then, path, negate, else)
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], roots: frozenset[str]) -> None:
        self.t, self.i, self.roots = tokens, 0, roots

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, kind: str, text: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (text is not None and tok[1] != text):
            raise TemplateError(f"expected {text or kind}, got {tok[1] if tok else 'end'}")
        self.i += 1
        return tok[1]

    def expr(self) -> Node:
        node = self.pipe()
        if self.peek() == ("name", "if"):
            self.i += 1
            path = self.path()
            self.take("name", "is")
            negate = self.peek() == ("name", "not")
            self.i += negate
            self.take("name", "defined")
            self.take("name", "else")
            node = ("cond", node, path, negate, self.pipe())
        if self.peek() is not None:
            raise TemplateError(f"unexpected {self.peek()}")
        return node

    def pipe(self) -> Node:
        node = self.primary()
        if self.peek() == ("name", "is"):
            self.i += 1
            negate = self.peek() == ("name", "not")
            self.i += negate
            self.take("name", "defined")
            return ("defined", node, negate)
        while self.peek() == ("op", "|"):
            self.i += 1
            name = self.take("name")
            if name not in _FILTERS:
                raise TemplateError(f"filter {name!r} not supported")
            args: list[Any] = []
            if self.peek() == ("op", "("):
                self.i += 1
                while self.peek() != ("op", ")"):
                    args.append(self.literal())
                    if self.peek() == ("op", ","):
                        self.i += 1
                self.take("op", ")")
            node = ("filter", name, node, tuple(args))
        return node

    def literal(self) -> Any:
        tok = self.peek()
        if tok is not None and tok[0] == "num":
            self.i += 1
            return float(tok[1]) if "." in tok[1] else int(tok[1])
        if tok is not None and tok[0] == "str":
            self.i += 1
            return tok[1][1:-1]
        raise TemplateError(f"expected a literal, got {tok}")

    def primary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok[0] in ("num", "str"):
            return ("lit", self.literal())
        return self.path()

    def path(self) -> Node:
        root = self.take("name")
        if root not in self.roots:
            raise TemplateError(f"variable {root!r} not supported")
        keys: list[Any] = []
        while self.peek() in (("op", "."), ("op", "[")):
            if self.take("op") == ".":
                keys.append(self.take("name"))
            else:
                keys.append(self.literal())
                self.take("op", "]")
        return ("path", root, tuple(keys))


def _f_float(v: Any, *args: Any) -> Any:
    n = number(v) if not isinstance(v, bool) else float(v)
    if n is None:
        if args:
            return args[0]
        raise TemplateError(f"float of {v!r}")
    return n


def _f_int(v: Any, *args: Any) -> Any:
    n = _f_float(v, *args) if not args else (number(v) if number(v) is not None else None)
    if n is None:
        return args[0]
    return int(n) if isinstance(n, float) else n


def _f_round(v: Any, *args: Any) -> Any:
    n = _f_float(v)
    digits = int(args[0]) if args and isinstance(args[0], int) else 0
    return round(n, digits)


def _f_case(fn: Callable[[str], str]) -> Callable[..., Any]:
    return lambda v, *args: fn(_stringify(v))


_FILTERS: Final[dict[str, Callable[..., Any]]] = {
    "float": _f_float,
    "int": _f_int,
    "round": _f_round,
    "lower": _f_case(str.lower),
    "upper": _f_case(str.upper),
}


def _stringify(v: Any) -> str:
    # Jinja renders Python values with str(): JSON false is "False", 1 is "1"; HA's schema
    # coerces payload_on/payload_off the same way (cv.string), so both sides agree.
    return str(v)


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template of the supported subset: literal text and `{{ expr }}` chunks."""

    source: str
    parts: tuple[str | Node, ...]

    @classmethod
    def parse(cls, source: str, roots: frozenset[str] = frozenset({"value", "value_json"})) -> Template:
        """Parse a template, or raise TemplateError when it is outside the subset (`{% %}`, calls, ...)."""
        if "{%" in source or "{#" in source:
            raise TemplateError("statements are not supported")
        parts: list[str | Node] = []
        pos = 0
        for m in _CHUNK.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            parts.append(_Parser(_tokens(m.group(1)), roots).expr())
            pos = m.end()
        if "{{" in source[pos:] or "}}" in source[pos:]:
            raise TemplateError("unbalanced braces")
        if pos < len(source):
            parts.append(source[pos:])
        return cls(source, tuple(parts))

    def render(self, variables: Mapping[str, Any]) -> Any:
        """The rendered, stripped string, or _UNDEFINED when a referenced value is absent."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            v = _eval(part, variables)
            if v is _UNDEFINED:
                return _UNDEFINED
            out.append(_stringify(v))
        return "".join(out).strip()


@functools.lru_cache(maxsize=4096)
def _parse_template(source: str) -> Template:
    # Most entities of a bridge share a handful of template texts; a Template is immutable,
    # so one parse serves them all (TemplateError is raised again for each, never cached).
    return Template.parse(source)


def _eval(node: Node, var: Mapping[str, Any]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "path":
        v = var.get(node[1], _UNDEFINED)
        for key in node[2]:
            if isinstance(v, Mapping) and isinstance(key, str):
                v = v.get(key, _UNDEFINED)
            elif isinstance(v, list) and isinstance(key, int) and not isinstance(key, bool) and -len(v) <= key < len(v):
                v = v[key]
            else:
                return _UNDEFINED
        return v
    if op == "defined":
        return (_eval(node[1], var) is not _UNDEFINED) != node[2]
    if op == "cond":
        defined = (_eval(node[2], var) is not _UNDEFINED) != node[3]
        return _eval(node[1] if defined else node[4], var)
    v = _eval(node[2], var)
    if v is _UNDEFINED:
        return _UNDEFINED
    return _FILTERS[node[1]](v, *node[3])


# ---------------------------------------------------------------------------------- tables

# binary_sensor device_class -> (kind, invert): HA `lock` ON means unlocked; everything else
# listed is ON = detected/open/low, which is already the hub's sense.
_BINARY_CLASSES: Final[dict[str, tuple[Kind, bool]]] = {
    "motion": (Kind.MOTION, False),
    "occupancy": (Kind.OCCUPANCY, False),
    "presence": (Kind.PRESENCE, False),
    "door": (Kind.CONTACT, False),
    "window": (Kind.CONTACT, False),
    "opening": (Kind.CONTACT, False),
    "garage_door": (Kind.CONTACT, False),
    "smoke": (Kind.SMOKE, False),
    "gas": (Kind.GAS, False),
    "carbon_monoxide": (Kind.CARBON_MONOXIDE, False),
    "moisture": (Kind.WATER_LEAK, False),
    "tamper": (Kind.TAMPER, False),
    "vibration": (Kind.VIBRATION, False),
    "battery": (Kind.BATTERY_LOW, False),
    "lock": (Kind.LOCK, True),
}
_SENSOR_CLASSES: Final[dict[str, Kind]] = {
    "temperature": Kind.TEMPERATURE,
    "humidity": Kind.HUMIDITY,
    "illuminance": Kind.ILLUMINANCE,
    "power": Kind.POWER,
    "energy": Kind.ENERGY,
    "voltage": Kind.VOLTAGE,
    "current": Kind.CURRENT,
    "battery": Kind.BATTERY,
    "carbon_dioxide": Kind.CO2,
    "pm25": Kind.PM25,
    "pm10": Kind.PM10,
    "pressure": Kind.PRESSURE,
    "atmospheric_pressure": Kind.PRESSURE,
    "volatile_organic_compounds_parts": Kind.VOC,
    "carbon_monoxide": Kind.CO_LEVEL,  # the sensor's ppm; the binary_sensor class is the alarm
    "water": Kind.WATER,
    "sound_pressure": Kind.NOISE,
}
_COMPONENT_KINDS: Final[dict[str, Kind]] = {
    "switch": Kind.SWITCH,
    "light": Kind.LIGHT,
    "cover": Kind.COVER,
    "lock": Kind.LOCK,
    "climate": Kind.CLIMATE,
    "fan": Kind.FAN,
    "siren": Kind.SIREN,
    "valve": Kind.VALVE,
    "event": Kind.BUTTON,
    "device_automation": Kind.BUTTON,
}
# component -> the (topic key, template key, role) triples that carry its state
_STATE_SOURCES: Final[dict[str, tuple[tuple[str, str | None, str], ...]]] = {
    "cover": (("state_topic", "value_template", "state"), ("position_topic", "position_template", "position")),
    "climate": (
        ("mode_state_topic", "mode_state_template", "mode"),
        ("temperature_state_topic", "temperature_state_template", "target"),
        ("current_temperature_topic", "current_temperature_template", "current"),
    ),
    "light:json": (("state_topic", None, "json"),),
    "light:basic": (
        ("state_topic", "state_value_template", "on"),
        ("brightness_state_topic", "brightness_value_template", "brightness"),
        ("color_temp_state_topic", "color_temp_value_template", "color_temp"),
    ),
    "device_automation": (("topic", None, "trigger"),),
}
_DEFAULT_SOURCES: Final[tuple[tuple[str, str | None, str], ...]] = (("state_topic", "value_template", "state"),)
_COMMAND_TOPICS: Final = ("command_topic", "set_position_topic", "mode_command_topic", "temperature_command_topic")
_BOUND_KEYS: Final = ("min_temp", "min", "max_temp", "max", "temp_step", "step")
_COMPOSITE: Final = frozenset({"light", "cover", "climate"})
_SOS: Final = re.compile(r"(^|_)(sos|emergency|panic)($|_)")
_SAFE_ID: Final = re.compile(r"[^A-Za-z0-9_.:-]+")
_SNAKE: Final = re.compile(r"[^a-z0-9]+")
_SNAKE_CASE: Final = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*").fullmatch  # what _snake leaves as it is


def _s(v: Any, default: str) -> str:
    """A configured payload as HA's cv.string sees it: str() of whatever JSON gave."""
    return default if v is None or isinstance(v, (list, dict)) else str(v)


def _safe_id(native: str) -> str:
    """A native id with every run of characters a hub id may not hold replaced by `_`."""
    return native if native.isascii() and native.isalnum() else _SAFE_ID.sub("_", native)


def _snake(s: str) -> str:
    # Most ids are snake case already: a lowercase ASCII word needs no regex at all, others one
    # match, and only the rest the four steps.
    if len(s) <= 120 and ((s.isascii() and s.isalnum() and s.islower()) or _SNAKE_CASE(s)):
        return s
    return _SNAKE.sub("_", s.lower()).strip("_")[:120] or "entity"


# The enum members read for every config and report, held as constants: on Python 3.11 each
# `Kind.OTHER` goes through EnumType's __getattr__ hook (about 190 ns, compiled or not), while
# a Final name compiles to a C static.
_OTHER: Final = Kind.OTHER
_ONLINE: Final = AvailabilityState.ONLINE
_OFFLINE: Final = AvailabilityState.OFFLINE
_UNKNOWN: Final = AvailabilityState.UNKNOWN
_HA: Final = Protocol.HA
_PENDING: Final = Status.PENDING
_EVENT: Final = Category.EVENT

# ---------------------------------------------------------------------------------- entities


@dataclass(slots=True)
class _Entity:
    """One discovered entity with everything precomputed for decoding and encoding."""

    did: str
    config_topic: str
    component: str
    cfg: dict[str, Any]
    dev: str
    point: Point
    sources: list[tuple[str, Template | None, str]]
    avail: tuple[tuple[str, Template | None, str, str], ...]
    mode: str
    invert: bool
    # The device's `blocks` once this entity's device block was applied: while the device is
    # still there, applying the block again would change nothing, so a re-announcement may
    # skip the rebuild.
    blocks: int
    composite: dict[str, Scalar] | None  # a light's, cover's or climate's merged state, once it has one

    # Written out, not generated: mypyc compiles this one, while the __init__ that @dataclass
    # generates runs interpreted (a third of a microsecond more per entity).
    def __init__(
        self,
        did: str,
        config_topic: str,
        component: str,
        cfg: dict[str, Any],
        dev: str,
        point: Point,
        sources: list[tuple[str, Template | None, str]],
        avail: tuple[tuple[str, Template | None, str, str], ...],
        mode: str,
        invert: bool,
        blocks: int,
    ) -> None:
        self.did, self.config_topic, self.component, self.cfg, self.dev = did, config_topic, component, cfg, dev
        self.point, self.sources, self.avail, self.mode = point, sources, avail, mode
        self.invert, self.blocks, self.composite = invert, blocks, None


@dataclass(slots=True)
class _HaDevice:
    """A device assembled from its entities' device blocks."""

    id: str
    info: dict[str, str]
    identifiers: dict[str, str]
    via: str | None
    bridge: bool  # points read it (a bridge's points are diagnostic)
    blocks: int  # how many device blocks have changed info, identifiers, via or bridge
    entities: dict[str, _Entity]
    avail_payloads: dict[str, tuple[int, str]] | None  # by topic, once one came
    emitted: AvailabilityState
    # Caches of what _device_of builds, so that the entities of one device arriving one by
    # one cost one point each rather than a rebuild of every point each time. `points` is
    # extended as entities are appended and dropped (None) when one leaves or moves;
    # `device` is dropped on any change and rebuilt from `points` when next announced.
    points: dict[str, Point] | None
    others: int  # points of kind `other` in `points`
    device: Device | None

    # Written out, not generated: see _Entity.
    def __init__(
        self, id: str, info: dict[str, str], identifiers: dict[str, str], via: str | None, bridge: bool, blocks: int
    ) -> None:
        self.id, self.info, self.identifiers, self.via, self.bridge, self.blocks = (
            id,
            info,
            identifiers,
            via,
            bridge,
            blocks,
        )
        self.entities, self.avail_payloads, self.emitted = {}, None, _UNKNOWN
        self.points, self.others, self.device = None, 0, None


# The helpers below take a config as the dict JSON gives, not as a Mapping: compiled (mypyc),
# a dict's lookups are direct calls rather than method lookups.
def _template(cfg: dict[str, Any], key: str | None, notes: list[str]) -> tuple[bool, Template | None]:
    src = cfg.get(key) if key else None
    if src is None:
        return True, None
    if not isinstance(src, str):
        notes.append(f"{key} is not a string")
        return False, None
    try:
        return True, _parse_template(src)
    except TemplateError:
        notes.append(f"template not supported: {src}")
        return False, None


def _availability(cfg: dict[str, Any], notes: list[str]) -> tuple[tuple[str, Template | None, str, str], ...]:
    entries: list[dict[str, Any]]
    avty = cfg.get("availability")
    if isinstance(avty, list):
        entries = [a for a in avty if isinstance(a, dict)]
    elif isinstance(cfg.get("availability_topic"), str):
        entries = [
            {
                "topic": cfg["availability_topic"],
                "value_template": cfg.get("availability_template"),
                "payload_available": cfg.get("payload_available"),
                "payload_not_available": cfg.get("payload_not_available"),
            }
        ]
    else:
        return ()  # a tuple, not a list: an empty tuple is shared, a list per entity is one more object to collect
    out = []
    for a in entries:
        topic = a.get("topic")
        ok, tpl = _template(a, "value_template", notes)
        if isinstance(topic, str) and topic and ok:
            avail = _s(a.get("payload_available", cfg.get("payload_available")), "online")
            not_avail = _s(a.get("payload_not_available", cfg.get("payload_not_available")), "offline")
            out.append((topic, tpl, avail, not_avail))
    return tuple(out)


def _kind(component: str, cfg: dict[str, Any]) -> tuple[Kind, bool, str | None]:
    """The kind of an entity, whether its binary value is inverted, and why it is `other`."""
    dc = cfg.get("device_class")
    if component == "binary_sensor":
        if dc is None:
            return _OTHER, False, "no device_class"
        kind, invert = _BINARY_CLASSES.get(str(dc), (_OTHER, False))
        return kind, invert, None if kind is not _OTHER else f"binary_sensor device_class {dc!r} has no kind"
    if component == "sensor":
        if dc is None:
            return _OTHER, False, "no device_class"
        kind = _SENSOR_CLASSES.get(str(dc), _OTHER)
        return kind, False, None if kind is not _OTHER else f"sensor device_class {dc!r} has no kind"
    if component == "event" and dc == "doorbell":
        return Kind.DOORBELL, False, None
    if component == "device_automation" and _SOS.search(str(cfg.get("subtype", ""))):
        return Kind.SOS, False, None
    kind = _COMPONENT_KINDS.get(component, _OTHER)
    return kind, False, None if kind is not _OTHER else f"component {component!r} has no kind"


def _sources(component: str, cfg: dict[str, Any]) -> tuple[tuple[str, str | None, str], ...]:
    if component == "light":
        return _STATE_SOURCES["light:json" if cfg.get("schema") == "json" else "light:basic"]
    return _STATE_SOURCES.get(component, _DEFAULT_SOURCES)


def _point_key(cfg: dict[str, Any], object_id: str, component: str, kind: Kind) -> str:
    if component == "device_automation":
        return _snake(str(cfg.get("type") or "trigger")) if kind is not Kind.SOS else "sos"
    obj = cfg.get("object_id")
    return _snake(obj if isinstance(obj, str) and obj else object_id)


@functools.lru_cache(maxsize=256)
def _canonical_unit(unit: str) -> str | None:
    # A home uses a few dozen units; to_canonical runs a conversion to find out the name.
    return to_canonical(1.0, unit)[1]


def _bounds(cfg: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """min, max and step of a number or climate entity (climate's own keys first)."""
    return _bound(cfg, "min_temp", "min"), _bound(cfg, "max_temp", "max"), _bound(cfg, "temp_step", "step")


def _bound(cfg: dict[str, Any], key: str, alias: str) -> float | None:
    # cfg.get(key, cfg.get(alias)) without the second lookup when the first key is there
    v = cfg[key] if key in cfg else cfg.get(alias)
    return None if v is None else _num(v)


def _options(component: str, cfg: dict[str, Any]) -> tuple[str, ...]:
    opts, modes = cfg.get("options"), cfg.get("modes")
    if isinstance(opts, list):
        return tuple(str(o) for o in opts if isinstance(o, (str, int, float)))
    if isinstance(modes, list):
        return tuple(str(o) for o in modes if isinstance(o, str))
    if component == "device_automation" and isinstance(cfg.get("subtype"), str):
        return (cfg["subtype"],)
    return ()


_HA_ID: Final = device_id(Protocol.HA, "")  # "ha-": the hub id prefix of every device of this dialect
_INFO_TYPES: Final = (str, int, float)  # JSON scalars kept as device info; bool is excluded by type()
# The device block's keys that _device_of reads (model_id stands in for a missing model).
_INFO_KEYS: Final = ("name", "suggested_area", "manufacturer", "model", "model_id", "sw_version")
_NO_BLOCK: Final[dict[str, Any]] = {}

# The fields a validating call of each model would be given here (its fields_set), for the
# models _entity and _device_of build with `trusted` from values they produced themselves;
# every model built from one of these sets shares it (see `trusted`).
_POINT_SET: Final = set(Point.model_fields)
_DEVICE_SET: Final = set(Device.model_fields) - {"role", "seen_via", "address", "status", "availability"}
_DISCOVERED_SET: Final = {"ts", "device"}
_NO_AVAILABILITY: Final = Availability()
_REMOVED: Final = "homeassistant discovery config removed"


def _point(fields: dict[str, Any]) -> Point:
    """A Point from the values _entity computed, validated only when the key breaks the bounds."""
    key: str = fields["key"]
    # Every other field is typed by construction (kind a Kind, unit/name/source/note str or
    # None, bounds float or None, options a tuple of str, flags bool); the key is the one
    # value with a constraint that input can break: such a config is refused, and counted.
    if 0 < len(key) <= 200:
        return trusted(Point, fields, _POINT_SET)
    raise Rejected("bad_key", f"point key of {len(key)} characters (1-200 allowed)")


# The config keys read after discovery (decoders, encoders, the fallback name): an entity
# keeps only these, not the whole config (topics, templates and device block are parsed by then).
_COMMANDS: Final = (
    "command",
    "brightness_command",
    "color_temp_command",
    "mode_command",
    "temperature_command",
    "set_position",
)
_KEPT: Final = frozenset(
    {
        "name",
        "unit_of_measurement",
        "temperature_unit",
        "schema",
        "qos",
        "retain",
        "payload",
        "subtype",
        "event_types",
        "brightness_scale",
        "color_temp_kelvin",
        "position_open",
        "position_closed",
        *(f"payload_{w}" for w in ("on", "off", "lock", "unlock", "open", "close", "stop", "press")),
        *(f"state_{w}" for w in ("on", "off", "locked", "unlocked", "open", "opening", "closed", "closing", "stopped")),
        *(f"{c}_topic" for c in _COMMANDS),
        *(f"{c}_template" for c in _COMMANDS),
    }
)


def _kept(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of an entity's config read after discovery."""
    return {k: v for k, v in cfg.items() if k in _KEPT}


def _fallback_name(dev: _HaDevice) -> str:
    """A device without a name in its blocks is called by its first entity's name, else by its id."""
    first = next(iter(dev.entities.values()), None)
    name = first.cfg.get("name") if first else None
    return name if isinstance(name, str) and name else dev.id


def _discovered(now: datetime, device: Device) -> DeviceDiscovered:
    """The DeviceDiscovered event of a device _device_of built (both fields are typed already)."""
    return trusted(DeviceDiscovered, {"ts": now, "type": "device_discovered", "device": device}, _DISCOVERED_SET)


def _merge_point(points: dict[str, Point], p: Point) -> int:
    """Add one entity's point to a device's points in entity order; return 1 if it is a new `other` point."""
    have = points.get(p.key)
    if have is None:
        points[p.key] = p
        return 1 if p.kind is _OTHER else 0
    # device_automation triggers of one type share one point: merge their subtypes
    points[p.key] = have.model_copy(update={"options": tuple(dict.fromkeys(have.options + p.options))})
    return 0


# ---------------------------------------------------------------------------------- adapter


class HomeAssistantAdapter(CountedFeed):
    """Home Assistant MQTT discovery dialect (single-component and device-based configs)."""

    name: ClassVar[str] = "homeassistant"

    def __init__(self, prefix: str = "homeassistant", *, shortcuts: bool = True) -> None:
        self.prefix = prefix.rstrip("/")
        # Off: every config is parsed and every device rebuilt from all its entities, the
        # reference the shortcuts (re-announcements, devices built entity by entity) are
        # checked against.
        self.shortcuts = shortcuts
        self._root = self.prefix + "/"
        self.counters: Counter[str] = Counter()
        self._devices: dict[str, _HaDevice] = {}
        self._entities: dict[str, _Entity] = {}  # by discovery id
        self._by_config: dict[str, tuple[str, ...]] = {}  # config topic -> discovery ids
        # config topic -> hash() of the payload its entities (_by_config) were built from: HA
        # republishes every retained config unchanged each time it (or the broker) restarts.
        # The payload's own hash (computed once, kept by the bytes object), not the payload:
        # a keyed 64-bit hash no device can aim a collision at, in 32 bytes instead of hundreds.
        self._configs: dict[str, int] = {}
        self._state_index: dict[str, list[_Entity]] = {}
        self._avail_index: dict[str, set[str]] = {}  # topic -> device ids
        self._seq = 0

    def subscriptions(self) -> list[str]:
        """Discovery topics, plus every state/availability topic the configs seen so far name."""
        return [
            f"{self.prefix}/+/+/config",
            f"{self.prefix}/+/+/+/config",
            *sorted(self._state_index.keys() | self._avail_index.keys()),
        ]

    def device(self, device_id_: str) -> Device | None:
        """The device as last discovered, by hub id."""
        d = self._devices.get(device_id_)
        return self._device_of(d) if d else None

    # -- feed -------------------------------------------------------------------------------

    def _feed(self, msg: Message, now: datetime) -> list[Event]:
        topic = msg.topic  # a plain class's attribute: a lookup each time, even compiled
        events: list[Event] = []
        entities = self._state_index.get(topic)
        if entities:
            events.extend(self._on_state(entities, msg, now))
        devs = self._avail_index.get(topic)
        if devs:
            events.extend(self._on_availability(devs, msg, now))
        if entities or devs:
            return events
        if topic.startswith(self._root) and topic.endswith("/config"):
            again = self._reannounced(msg, now)
            return again if again is not None else self._on_config(msg, now)
        self.counters["unknown_topic"] += 1
        return []

    # -- discovery --------------------------------------------------------------------------

    def _reannounced(self, msg: Message, now: datetime) -> list[Event] | None:
        """The events of a config identical to the one its entities were built from, or None.

        Parsing it again would rebuild the same entities: their devices are checked to be as
        their device blocks left them (another config of the device may have changed its name
        or made it a bridge since), and what the rebuild would do besides is replayed — the
        entities move to the end of their device's order, their composite state restarts —
        so that the events are the ones a full parse gives.
        """
        seen = self._configs.get(msg.topic)
        if seen is None or seen != hash(msg.payload) or not self.shortcuts:
            return None
        built: list[_Entity] = []
        for did in self._by_config.get(msg.topic, ()):
            e = self._entities.get(did)
            dev = self._devices.get(e.dev) if e is not None else None
            if e is None or dev is None or e.blocks != dev.blocks:
                return None
            built.append(e)
        if len(built) == 1 and self._is_last(built[0]):
            built[0].composite = None
            return self._announce({built[0].dev}, now, _REMOVED)
        for e in built:
            e.composite = None
            self._register(e)
        return self._announce({e.dev for e in built}, now, _REMOVED)

    def _is_last(self, e: _Entity) -> bool:
        """Whether registering e again would change no order: it is already last everywhere."""
        if next(reversed(self._devices[e.dev].entities)) != e.did:
            return False
        return all(self._state_index[topic][-1] is e for topic, _, _ in e.sources)

    def _on_config(self, msg: Message, now: datetime) -> list[Event]:
        topic, payload = msg.topic, msg.payload
        inner = topic[len(self.prefix) + 1 : -len("/config")]
        parts = inner.split("/")
        if len(parts) not in (2, 3) or not all(parts) or "+" in inner or "#" in inner:
            raise Rejected("bad_topic", topic)
        component, object_id = parts[0], parts[-1]
        node = parts[1] if len(parts) == 3 else None
        self._configs.pop(topic, None)
        previous = self._by_config.get(topic)
        touched = {self._entities[d].dev for d in previous if d in self._entities} if previous else set()
        if not payload:
            for did in self._by_config.pop(topic, ()):
                self._drop(did)
            return self._announce(touched, now, _REMOVED)
        cfg = expand(decode_object(payload))
        if cfg.get("migrate_discovery") is True:
            self.counters["migrate_discovery"] += 1
            return []
        if component == "device":
            comps = cfg.get("components")
            if not isinstance(comps, dict) or not isinstance(cfg.get("device"), dict):
                raise Rejected("bad_config", "device-based discovery needs `device` and `components`")
            shared = {k: v for k, v in cfg.items() if k not in ("components", "~")}
            built = []
            for cid, comp in comps.items():
                if not isinstance(comp, dict) or not isinstance(comp.get("platform"), str):
                    raise Rejected("bad_config", f"component {cid!r} without a platform")
                did = f"{topic} {cid}"
                if set(comp) <= {"platform"}:
                    if did in self._entities:
                        touched.add(self._entities[did].dev)
                        self._drop(did)
                    continue
                built.append(self._entity(did, topic, comp["platform"], {**shared, **comp}, str(cid)))
            ids = tuple(sorted({e.did for e in built}))
        else:
            did = f"{component} {node} {object_id}" if node else f"{component} {object_id}"
            built = [self._entity(did, topic, component, cfg, object_id)]
            ids = (did,)
        if previous:
            for did in set(previous).difference(ids):
                self._drop(did)
        self._by_config[topic] = ids
        for e in built:
            self._register(e)
            touched.add(e.dev)
        self._configs[topic] = hash(payload)
        return self._announce(touched, now, _REMOVED)

    def _entity(self, did: str, topic: str, component: str, cfg: dict[str, Any], object_id: str) -> _Entity:
        dev = self._device_for(cfg, did)
        notes: list[str] = []
        kind, invert, why = _kind(component, cfg)
        if why:
            notes.append(why)
        sources: list[tuple[str, Template | None, str]] = []
        wanted = 0
        for topic_key, tpl_key, role in _sources(component, cfg):
            t = cfg.get(topic_key)
            if not isinstance(t, str) or not t:
                continue
            wanted += 1
            ok, tpl = _template(cfg, tpl_key, notes)
            if ok:
                sources.append((t, tpl, role))
        if wanted and not sources:
            kind = _OTHER
        if component == "light" and cfg.get("schema") == "template":
            kind, sources = _OTHER, []
            notes.append("light template schema not supported")
        unit = cfg.get("unit_of_measurement")
        unit = unit if isinstance(unit, str) else None
        canon = _canonical_unit(unit) if unit else None
        wanted_unit = KINDS[kind].unit
        if component == "sensor" and wanted_unit and canon not in (None, wanted_unit):
            kind = _OTHER
            notes.append(f"unit {unit!r} is not convertible to {wanted_unit}")
        key = _point_key(cfg, object_id, component, kind)
        if dev.entities:  # the first entity of a device has every key to itself
            key = self._unique_key(dev, did, key, component)
        writable = False
        for k in _COMMAND_TOPICS:
            command = cfg.get(k)
            if isinstance(command, str) and command:
                writable = True
                break
        # name null = the device's main feature (the device name shows); omitted = device_class
        name = cfg.get("name") if "name" in cfg else cfg.get("device_class")
        diagnostic = (
            cfg.get("entity_category") in ("config", "diagnostic")
            or cfg.get("enabled_by_default") is False
            or dev.bridge
        )
        src = None
        for _, tpl, _ in sources:
            if tpl:
                src = tpl.source
                break
        if not src and sources:
            src = sources[0][0]
        lo, hi, step = _bounds(cfg) if any(k in cfg for k in _BOUND_KEYS) else (None, None, None)
        point = _point(
            {
                "key": key,
                "kind": kind,
                "unit": KINDS[kind].unit if kind is not _OTHER else canon,
                "writable": writable,
                "min": lo,
                "max": hi,
                "step": step,
                "options": _options(component, cfg),
                "name": name if isinstance(name, str) and name else None,
                "source": src,
                "note": "; ".join(notes) or None,
                "diagnostic": diagnostic,
            }
        )
        avail = _availability(cfg, notes)
        mode = str(cfg.get("availability_mode") or "latest")
        # positional: keywords cost a slotted dataclass twice as much, once per entity of a home
        return _Entity(did, topic, component, _kept(cfg), dev.id, point, sources, avail, mode, invert, dev.blocks)

    def _device_for(self, cfg: dict[str, Any], did: str) -> _HaDevice:
        # The block leaves the entity's config (what it says is kept in the device): two objects
        # fewer per entity for the garbage collector to track while the entity lives.
        # Compiled, get and del are direct calls where pop is a method call, all() over a
        # generator is a native loop, and the ids typed list[str] take native string methods.
        raw = cfg.get("device")
        if raw is not None:
            del cfg["device"]
        block: dict[str, Any] = raw if isinstance(raw, dict) else _NO_BLOCK
        ids = block.get("identifiers")
        idlist: list[str]
        if isinstance(ids, list) and all(type(i) is str for i in ids):
            idlist = cast(list[str], [i for i in ids if i])  # the usual list of strings
        else:
            idlist = [str(i) for i in (ids if isinstance(ids, list) else [ids]) if isinstance(i, (str, int)) and str(i)]
        uid = cfg.get("unique_id")
        if idlist:
            native = idlist[0]
        elif isinstance(uid, (str, int)) and str(uid):
            native = str(uid)
        else:
            native = did.replace(" ", "_")
        hid = _HA_ID + (_safe_id(native) or "device")[:250]
        dev = self._devices.get(hid)
        # Only what _device_of reads is kept: a block's serial number, hardware version and
        # portal address would be a third of what a device holds, for nothing.
        info: dict[str, str] = {}
        for k in _INFO_KEYS:
            v = block.get(k)
            # type() rather than isinstance: JSON gives exactly these types, and bool (an int) is not info
            if v is not None and type(v) in _INFO_TYPES:
                info[k] = v if type(v) is str else str(v)
        identifiers: dict[str, str] = {}
        bridge = dev.bridge if dev is not None else False
        if idlist:
            identifiers["ha"] = idlist[0]
            for i in idlist:
                ieee = normalize_ieee(i.removeprefix("zigbee2mqtt_")) if i.startswith("zigbee2mqtt_0x") else None
                if ieee:
                    identifiers["ieee"] = ieee
                bridge = bridge or i.startswith("zigbee2mqtt_bridge_")
        elif isinstance(uid, (str, int)):
            identifiers["unique_id"] = str(uid)
        conns = block.get("connections")
        for c in conns if isinstance(conns, list) else []:
            if isinstance(c, list) and len(c) == 2 and c[0] == "mac" and isinstance(c[1], str):
                mac = normalize_mac(c[1])
                if mac:
                    identifiers["mac"] = mac
        via_device = block.get("via_device")
        via = _HA_ID + _safe_id(via_device)[:250] if isinstance(via_device, str) and via_device else None
        if dev is None:  # a new device: its first block is all it knows, nothing to compare
            blocks = 1 if info or identifiers or via is not None or bridge else 0
            dev = self._devices[hid] = _HaDevice(hid, info, identifiers, via, bridge, blocks)
            return dev
        if not (  # a block the device already holds (the usual: each entity repeats it) changes nothing
            bridge is dev.bridge
            and info.items() <= dev.info.items()
            and identifiers.items() <= dev.identifiers.items()
            and (via is None or via == dev.via)
        ):
            dev.info.update(info)
            # Replaced, not updated: the Device last built shares the dict (see _device_of).
            dev.identifiers = {**dev.identifiers, **identifiers}
            if via is not None:
                dev.via = via
            dev.bridge = bridge
            dev.blocks += 1
        dev.device = None
        return dev

    def _unique_key(self, dev: _HaDevice, did: str, base: str, component: str) -> str:
        current = dev.entities.get(did)
        if current is not None and current.point.key.startswith(base):
            return current.point.key
        # A new entity (the usual): the device's cached points are keyed by every other
        # entity's key already, so the n-th entity of a device costs no set of n - 1 keys.
        taken: dict[str, Point] | set[str] = (
            dev.points
            if current is None and dev.points is not None
            else {e.point.key for d, e in dev.entities.items() if d != did}
        )
        if base not in taken:
            return base
        # device_automation triggers of one type share one point; keep the first entity's key
        if component == "device_automation":
            return base
        key, n = f"{base}_{_snake(component)}", 2
        while key in taken:
            key, n = f"{base}_{n}", n + 1
        return key

    def _register(self, e: _Entity) -> None:
        if e.did in self._entities:
            self._drop(e.did, keep_device=True)
        self._entities[e.did] = e
        dev = self._devices[e.dev]
        dev.entities[e.did] = e
        dev.device = None
        if dev.points is not None:  # e is the last entity: its point goes last, as a rebuild would put it
            dev.others += _merge_point(dev.points, e.point)
        for topic, _, _ in e.sources:
            self._state_index.setdefault(topic, []).append(e)
        for topic, _, _, _ in e.avail:
            self._avail_index.setdefault(topic, set()).add(dev.id)

    def _drop(self, did: str, keep_device: bool = False) -> None:
        e = self._entities.pop(did, None)
        if e is None:
            return
        dev = self._devices.get(e.dev)
        if dev is not None:
            dev.entities.pop(did, None)
            dev.points, dev.device = None, None
        for topic, _, _ in e.sources:
            left = [x for x in self._state_index.get(topic, []) if x is not e]
            if left:
                self._state_index[topic] = left
            else:
                self._state_index.pop(topic, None)
        for topic, _, _, _ in e.avail:
            if dev is not None and not any(topic == a[0] for x in dev.entities.values() for a in x.avail):
                self._avail_index.get(topic, set()).discard(dev.id)
                if not self._avail_index.get(topic):
                    self._avail_index.pop(topic, None)

    def _device_of(self, dev: _HaDevice) -> Device:
        """The device as the hub model describes it, built once per change of its entities or blocks."""
        if not self.shortcuts:
            dev.points, dev.device = None, None
        if dev.device is not None:
            return dev.device
        if dev.points is None:
            dev.points, dev.others = {}, 0
            for e in dev.entities.values():
                dev.others += _merge_point(dev.points, e.point)
        info = dev.info
        # Every field below is a str or None by construction (info holds str() of JSON
        # scalars, ids are cut to 253 characters), so the model is built without validation.
        dev.device = trusted(
            Device,
            {
                "id": dev.id,
                "name": info.get("name") or _fallback_name(dev),
                "protocol": _HA,
                "room": info.get("suggested_area") or None,
                "role": None,
                "manufacturer": info.get("manufacturer"),
                "model": info.get("model") or info.get("model_id"),
                "firmware": info.get("sw_version"),
                "identifiers": dev.identifiers,  # shared: _device_for replaces it, never changes it
                "via": dev.via,
                "seen_via": (),
                "address": None,
                "status": _PENDING,
                "availability": _NO_AVAILABILITY,
                "points": tuple(dev.points.values()),
            },
            _DEVICE_SET,
        )
        return dev.device

    def _announce(self, touched: set[str], now: datetime, reason: str) -> list[Event]:
        events: list[Event] = []
        for did in sorted(touched) if len(touched) > 1 else touched:  # the usual config touches one
            dev = self._devices.get(did)
            if dev is None:
                continue
            if dev.entities:
                device = self._device_of(dev)
                if dev.others:  # a Counter's += is two calls through its class, even adding nothing
                    self.counters["other_points"] += dev.others
                events.append(_discovered(now, device))
            else:
                del self._devices[did]
                events.append(DeviceRemoved(ts=now, device_id=did, reason=reason))
        return events

    # -- state ------------------------------------------------------------------------------

    def _on_state(self, entities: list[_Entity], msg: Message, now: datetime) -> list[Event]:
        text = decode_text(msg.payload)
        variables: dict[str, Any] = {"value": text}
        if text[:1] in ("{", "["):
            try:
                variables["value_json"] = parse_json(msg.payload)
            except ValueError:
                variables["value_json"] = _UNDEFINED
        per_device: dict[str, dict[str, Value]] = {}
        events: list[Event] = []
        for e in entities:
            for topic, tpl, role in e.sources:
                if topic != msg.topic:
                    continue
                s = tpl.render(variables) if tpl else text
                if s is _UNDEFINED:
                    continue
                decode = _DECODERS.get((e.component, role)) or _DECODERS.get(("*", role))
                if decode is None:
                    continue
                try:
                    v = decode(e, s, variables)
                except TemplateError as exc:
                    self.counters["template_error"] += 1
                    log.debug("template on %s failed: %s", msg.topic, exc)
                    continue
                if v is _SKIP:
                    continue
                if KINDS[e.point.kind].category is _EVENT:
                    if not msg.retain:
                        events.append(PointEvent.model_construct(ts=now, device_id=e.dev, key=e.point.key, value=v))
                    continue
                if e.component in _COMPOSITE and isinstance(v, dict):
                    e.composite = {**(e.composite or {}), **v}
                    v = dict(e.composite)
                per_device.setdefault(e.dev, {})[e.point.key] = v
        for did, values in per_device.items():
            events.insert(0, state_changed(now, did, values))
        if not per_device and not events and variables.get("value_json") is _UNDEFINED:
            raise Rejected("invalid_json", f"state on {msg.topic} is not valid JSON")
        return events

    # -- availability -----------------------------------------------------------------------

    def _on_availability(self, devs: set[str], msg: Message, now: datetime) -> list[Event]:
        text = decode_text(msg.payload)
        self._seq += 1
        events: list[Event] = []
        for did in sorted(devs):
            dev = self._devices.get(did)
            if dev is None:
                continue
            if dev.avail_payloads is None:
                dev.avail_payloads = {}
            dev.avail_payloads[msg.topic] = (self._seq, text)
            state = _device_availability(dev)
            if state != dev.emitted and state is not _UNKNOWN:
                dev.emitted = state
                events.append(
                    AvailabilityChanged.model_construct(
                        ts=now,
                        device_id=did,
                        availability=Availability.model_construct(
                            state=state,
                            reason=f"homeassistant availability: {state.value} ({msg.topic})",
                            last_seen=now if state is _ONLINE else None,
                        ),
                    )
                )
        return events

    # -- encode -----------------------------------------------------------------------------

    def encode(self, device: Device, values: Mapping[str, Value]) -> list[Message]:
        """The messages (command topics and payloads as the configs define them) that set these values."""
        try:
            dev = self._devices.get(device.id)
            if dev is None:
                raise Rejected("unknown_device", device.id)
            out: list[Message] = []
            for key, value in values.items():
                e = next((x for x in dev.entities.values() if x.point.key == key), None)
                if e is None or not e.point.writable:
                    raise Rejected("not_writable", f"{device.id}: {key}")
                encoder = _ENCODERS.get(e.component, _encode_generic)
                out.extend(encoder(e, value))
            return out
        except Rejected as exc:
            self.counters[exc.reason] += 1
            raise


def _entity_availability(e: _Entity, payloads: Mapping[str, tuple[int, str]]) -> AvailabilityState:
    states: list[tuple[int, AvailabilityState]] = []
    for topic, tpl, on, off in e.avail:
        got = payloads.get(topic)
        if got is None:
            states.append((0, _UNKNOWN))
            continue
        seq, text = got
        variables: dict[str, Any] = {"value": text}
        try:
            variables["value_json"] = parse_json(text) if text[:1] in ("{", "[") else _UNDEFINED
        except ValueError:
            variables["value_json"] = _UNDEFINED
        try:
            s = tpl.render(variables) if tpl else text
        except TemplateError:
            s = _UNDEFINED
        state = {on: _ONLINE, off: _OFFLINE}.get(s) if isinstance(s, str) else None
        states.append((seq, state or _UNKNOWN))
    known = [s for _, s in states]
    if e.mode == "all":
        if _OFFLINE in known:
            return _OFFLINE
        return _ONLINE if all(s is _ONLINE for s in known) else _UNKNOWN
    if e.mode == "any":
        if _ONLINE in known:
            return _ONLINE
        return _OFFLINE if _OFFLINE in known else _UNKNOWN
    return max(states, key=lambda x: x[0])[1] if states else _UNKNOWN


def _device_availability(dev: _HaDevice) -> AvailabilityState:
    states = {_entity_availability(e, dev.avail_payloads or {}) for e in dev.entities.values() if e.avail}
    if _ONLINE in states:
        return _ONLINE
    if _OFFLINE in states:
        return _OFFLINE
    return _UNKNOWN


# ---------------------------------------------------------------------------------- decoders


def _num(v: Any) -> float | None:
    if isinstance(v, int) and abs(v) > 10**300:
        return None
    return number(v)


def _d_binary(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    on, off = _s(e.cfg.get("payload_on"), "ON"), _s(e.cfg.get("payload_off"), "OFF")
    if s == on:
        return not e.invert
    if s == off:
        return e.invert
    return _SKIP


def _d_switch(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    on = _s(e.cfg.get("state_on"), _s(e.cfg.get("payload_on"), "ON"))
    off = _s(e.cfg.get("state_off"), _s(e.cfg.get("payload_off"), "OFF"))
    return True if s == on else False if s == off else _SKIP


def _d_sensor(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    if e.point.kind is _OTHER:
        return s
    try:
        n = float(s)  # what number() does for text, without its type dispatch: this runs per message
    except ValueError:
        return _SKIP
    if n - n != 0.0:  # NaN and infinities are not readings
        return _SKIP
    unit = e.cfg.get("unit_of_measurement")
    convert = converter(unit) if isinstance(unit, str) else None
    return n if convert is None else convert(n)


def _d_lock(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    locked, unlocked = _s(e.cfg.get("state_locked"), "LOCKED"), _s(e.cfg.get("state_unlocked"), "UNLOCKED")
    return True if s == locked else False if s == unlocked else _SKIP


def _d_cover_state(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    table = {
        _s(e.cfg.get("state_open"), "open"): "open",
        _s(e.cfg.get("state_opening"), "opening"): "opening",
        _s(e.cfg.get("state_closed"), "closed"): "closed",
        _s(e.cfg.get("state_closing"), "closing"): "closing",
        _s(e.cfg.get("state_stopped"), "stopped"): "stopped",
    }
    return {"state": table[s]} if s in table else _SKIP


def _d_cover_position(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    n = _num(s)
    lo, hi = _num(e.cfg.get("position_closed")) or 0.0, _num(e.cfg.get("position_open"))
    hi = 100.0 if hi is None else hi
    if n is None or hi == lo:
        return _SKIP
    return {"position": round(max(0.0, min(100.0, (n - lo) * 100.0 / (hi - lo))), 1)}


def _temp(e: _Entity, s: str) -> float | None:
    n = _num(s)
    unit = e.cfg.get("temperature_unit")
    return None if n is None else to_canonical(n, unit if isinstance(unit, str) else None)[0]


def _d_climate(role: str) -> Callable[[_Entity, str, Mapping[str, Any]], Any]:
    def decode(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
        if role == "mode":
            return {"mode": s} if s else _SKIP
        t = _temp(e, s)
        return _SKIP if t is None else {role: t}

    return decode


def _bri_pct(e: _Entity, raw: Any) -> float | None:
    n = _num(raw)
    scale = _num(e.cfg.get("brightness_scale")) or 255.0
    return None if n is None else round(max(0.0, min(100.0, n * 100.0 / scale)), 1)


def _kelvin(e: _Entity, raw: Any) -> float | None:
    n = _num(raw)
    if n is None or n < 1:
        return None
    return n if e.cfg.get("color_temp_kelvin") is True else to_canonical(n, "mired")[0]


def _d_light_json(e: _Entity, s: str, var: Mapping[str, Any]) -> Any:
    data = var.get("value_json")
    if not isinstance(data, Mapping):
        return _SKIP
    out: dict[str, Scalar] = {}
    if data.get("state") in ("ON", "OFF"):
        out["on"] = data["state"] == "ON"
    bri, ct = _bri_pct(e, data.get("brightness")), _kelvin(e, data.get("color_temp"))
    if bri is not None:
        out["brightness"] = bri
    if ct is not None:
        out["color_temp"] = ct
    return out or _SKIP


def _d_light_on(e: _Entity, s: str, var: Mapping[str, Any]) -> Any:
    on = _d_switch(e, s, var)
    return _SKIP if on is _SKIP else {"on": on}


def _d_light_bri(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    bri = _bri_pct(e, s)
    return _SKIP if bri is None else {"brightness": bri}


def _d_light_ct(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    ct = _kelvin(e, s)
    return _SKIP if ct is None else {"color_temp": ct}


def _d_event(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    try:
        data = parse_json(s)
    except ValueError:
        return _SKIP
    etype = data.get("event_type") if isinstance(data, Mapping) else None
    types = e.cfg.get("event_types")
    if not isinstance(etype, str) or (isinstance(types, list) and etype not in types):
        return _SKIP
    return etype


def _d_trigger(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    payload = e.cfg.get("payload")
    if payload is not None and s != _s(payload, ""):
        return _SKIP
    sub = e.cfg.get("subtype")
    return sub if isinstance(sub, str) and sub else s


def _d_raw(e: _Entity, s: str, _: Mapping[str, Any]) -> Any:
    return s


_DECODERS: Final[dict[tuple[str, str], Callable[[_Entity, str, Mapping[str, Any]], Any]]] = {
    ("binary_sensor", "state"): _d_binary,
    ("sensor", "state"): _d_sensor,
    ("number", "state"): lambda e, s, v: _num(s) if _num(s) is not None else _SKIP,
    ("switch", "state"): _d_switch,
    ("fan", "state"): _d_switch,
    ("siren", "state"): _d_switch,
    ("lock", "state"): _d_lock,
    ("cover", "state"): _d_cover_state,
    ("cover", "position"): _d_cover_position,
    ("climate", "mode"): _d_climate("mode"),
    ("climate", "target"): _d_climate("target"),
    ("climate", "current"): _d_climate("current"),
    ("light", "json"): _d_light_json,
    ("light", "on"): _d_light_on,
    ("light", "brightness"): _d_light_bri,
    ("light", "color_temp"): _d_light_ct,
    ("event", "state"): _d_event,
    ("device_automation", "trigger"): _d_trigger,
    ("*", "state"): _d_raw,
}

# ---------------------------------------------------------------------------------- encoders


def _publish(e: _Entity, topic_key: str, payload: str, tpl_key: str | None = None, var: str = "value") -> Message:
    topic = e.cfg.get(topic_key)
    if not isinstance(topic, str) or not topic:
        raise Rejected("not_writable", f"{e.point.key}: no {topic_key}")
    src = e.cfg.get(tpl_key) if tpl_key else None
    if isinstance(src, str):
        payload = _command_template(src, var, payload)
    qos = e.cfg.get("qos")
    return Message(
        topic,
        payload.encode(),
        retain=e.cfg.get("retain") is True,
        qos=qos if isinstance(qos, int) and not isinstance(qos, bool) and 0 <= qos <= 2 else 0,
    )


def _command_template(src: str, var: str, payload: str) -> str:
    # Only the bare-variable form is honoured: `{{ value }}` (or `{{ position }}` for covers)
    # inside any literal text, e.g. `{"options": {"log_level": "{{ value }}"}}`.
    try:
        tpl = Template.parse(src, frozenset({var}))
    except TemplateError:
        raise Rejected("template_not_supported", src[:80]) from None
    if any(not isinstance(p, str) and (p[0] != "path" or p[2]) for p in tpl.parts):
        raise Rejected("template_not_supported", src[:80])
    rendered = tpl.render({var: payload})
    return rendered if isinstance(rendered, str) else payload


def _fmt(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _want_bool(value: Value) -> bool:
    if isinstance(value, bool):
        return value
    raise Rejected("bad_value", f"expected a bool, got {value!r}")


def _want_number(value: Any, what: str) -> float:
    n = _num(value) if not isinstance(value, bool) else None
    if n is None:
        raise Rejected("bad_value", f"{what}: expected a number, got {value!r}")
    return n


def _encode_onoff(e: _Entity, value: Value) -> list[Message]:
    on = _want_bool(value)
    payload = _s(e.cfg.get("payload_on"), "ON") if on else _s(e.cfg.get("payload_off"), "OFF")
    return [_publish(e, "command_topic", payload, "command_template")]


def _encode_lock(e: _Entity, value: Value) -> list[Message]:
    lock = _want_bool(value)
    payload = _s(e.cfg.get("payload_lock"), "LOCK") if lock else _s(e.cfg.get("payload_unlock"), "UNLOCK")
    return [_publish(e, "command_topic", payload, "command_template")]


def _encode_light(e: _Entity, value: Value) -> list[Message]:
    v: dict[str, Any] = value if isinstance(value, dict) else {"on": _want_bool(value)}
    scale = _num(e.cfg.get("brightness_scale")) or 255.0
    bri = (
        round(max(0.0, min(100.0, _want_number(v["brightness"], "brightness"))) * scale / 100.0)
        if "brightness" in v
        else None
    )
    ct = None
    if "color_temp" in v:
        k = _want_number(v["color_temp"], "color_temp")
        if k < 1:
            raise Rejected("bad_value", f"color_temp {k}")
        ct = round(k) if e.cfg.get("color_temp_kelvin") is True else round(1_000_000.0 / k)
    if e.cfg.get("schema") == "json":
        body: dict[str, Any] = {}
        if "on" in v:
            body["state"] = "ON" if _want_bool(v["on"]) else "OFF"
        if bri is not None:
            body["brightness"] = bri
        if ct is not None:
            body["color_temp"] = ct
        if not body:
            raise Rejected("bad_value", f"nothing settable in {value!r}")
        return [_publish(e, "command_topic", json.dumps(body))]
    out: list[Message] = []
    if "on" in v:
        out.extend(_encode_onoff(e, _want_bool(v["on"])))
    if bri is not None:
        out.append(_publish(e, "brightness_command_topic", str(bri), "brightness_command_template"))
    if ct is not None:
        out.append(_publish(e, "color_temp_command_topic", str(ct), "color_temp_command_template"))
    if not out:
        raise Rejected("bad_value", f"nothing settable in {value!r}")
    return out


_COVER_PAYLOADS: Final[dict[str, tuple[str, str]]] = {
    "open": ("payload_open", "OPEN"),
    "close": ("payload_close", "CLOSE"),
    "closed": ("payload_close", "CLOSE"),
    "stop": ("payload_stop", "STOP"),
}


def _encode_cover(e: _Entity, value: Value) -> list[Message]:
    v: dict[str, Any] = value if isinstance(value, dict) else {"state": "open" if _want_bool(value) else "close"}
    out: list[Message] = []
    if "position" in v:
        pct = max(0.0, min(100.0, _want_number(v["position"], "position")))
        lo, hi = _num(e.cfg.get("position_closed")) or 0.0, _num(e.cfg.get("position_open"))
        hi = 100.0 if hi is None else hi
        out.append(
            _publish(
                e, "set_position_topic", _fmt(round(lo + pct * (hi - lo) / 100.0)), "set_position_template", "position"
            )
        )
    if "state" in v:
        spec = _COVER_PAYLOADS.get(str(v["state"]).lower())
        if spec is None:
            raise Rejected("bad_value", f"cover state {v['state']!r}")
        out.append(_publish(e, "command_topic", _s(e.cfg.get(spec[0]), spec[1])))
    if not out:
        raise Rejected("bad_value", f"nothing settable in {value!r}")
    return out


def _encode_climate(e: _Entity, value: Value) -> list[Message]:
    v: dict[str, Any] = value if isinstance(value, dict) else {"target": value}
    out: list[Message] = []
    if "mode" in v:
        out.append(_publish(e, "mode_command_topic", str(v["mode"]), "mode_command_template"))
    if "target" in v:
        c = _want_number(v["target"], "target")
        f = round(c * 9.0 / 5.0 + 32.0, 1) if e.cfg.get("temperature_unit") == "F" else c
        out.append(_publish(e, "temperature_command_topic", _fmt(f), "temperature_command_template"))
    if not out:
        raise Rejected("bad_value", f"nothing settable in {value!r}")
    return out


def _encode_button(e: _Entity, value: Value) -> list[Message]:
    return [_publish(e, "command_topic", _s(e.cfg.get("payload_press"), "PRESS"), "command_template")]


def _encode_generic(e: _Entity, value: Value) -> list[Message]:
    if isinstance(value, dict):
        raise Rejected("bad_value", f"{e.point.key}: expected a scalar")
    text = _fmt(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return [_publish(e, "command_topic", text, "command_template")]


_ENCODERS: Final[dict[str, Callable[[_Entity, Value], list[Message]]]] = {
    "switch": _encode_onoff,
    "fan": _encode_onoff,
    "siren": _encode_onoff,
    "lock": _encode_lock,
    "light": _encode_light,
    "cover": _encode_cover,
    "climate": _encode_climate,
    "button": _encode_button,
}
