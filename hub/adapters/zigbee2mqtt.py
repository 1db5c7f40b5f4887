"""Zigbee2MQTT native API: bridge/devices exposes become points, state JSON becomes partial updates."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from hub.adapters.base import CountedFeed, Rejected
from hub.adapters.common import (
    converter,
    decode_json,
    decode_object,
    decode_text,
    normalize_ieee,
    number,
    shared_point,
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
    Value,
    device_id,
)
from hub.reports import state_changed
from hub.wire import Message

log = logging.getLogger(__name__)

_SKIP: Final = object()  # a converter's "this raw value means nothing": no value is emitted
_BIG: Final = 10**300  # JSON integers beyond this are not numbers a device means

# Free-text units seen in the zigbee-herdsman-converters corpus, mapped onto the spellings
# common.to_canonical knows; the corpus has `℃`, `ºC`, `  C`, `lux`, `Lx`, `watt` ...
_UNIT_ALIASES: dict[str, str] = {
    "℃": "°C",
    "ºC": "°C",
    "C": "°C",
    "℉": "°F",
    "F": "°F",
    "lux": "lx",
    "Lx": "lx",
    "w": "W",
    "watt": "W",
    "Volt": "V",
    "volt": "V",
    "breaths/min": "rpm",
    "mWt": "mW",
}

# Generic exposes classified by their `name` (never `property`: that carries the endpoint suffix).
_BY_NAME: dict[str, Kind] = {
    "occupancy": Kind.OCCUPANCY,
    "presence": Kind.PRESENCE,
    "motion": Kind.MOTION,
    "pir_detection": Kind.MOTION,
    "contact": Kind.CONTACT,
    "window": Kind.CONTACT,
    "door": Kind.CONTACT,
    "smoke": Kind.SMOKE,
    "gas": Kind.GAS,
    "carbon_monoxide": Kind.CARBON_MONOXIDE,
    "water_leak": Kind.WATER_LEAK,
    "tamper": Kind.TAMPER,
    "vibration": Kind.VIBRATION,
    "fall": Kind.FALL,
    "battery_low": Kind.BATTERY_LOW,
    "battery_status": Kind.BATTERY_LOW,
    "sos": Kind.SOS,
    "temperature": Kind.TEMPERATURE,
    "local_temperature": Kind.TEMPERATURE,
    "humidity": Kind.HUMIDITY,
    "illuminance": Kind.ILLUMINANCE,
    "illuminance_lux": Kind.ILLUMINANCE,
    "power": Kind.POWER,
    "energy": Kind.ENERGY,
    "voltage": Kind.VOLTAGE,
    "current": Kind.CURRENT,
    "battery": Kind.BATTERY,
    "co2": Kind.CO2,
    "eco2": Kind.CO2,
    "pm25": Kind.PM25,
    "pm10": Kind.PM10,
    "voc": Kind.VOC,
    "tvoc": Kind.VOC,
    "total_volatile_organic_compounds": Kind.VOC,
    "co": Kind.CO_LEVEL,
    "formaldehyde": Kind.FORMALDEHYDE,
    "formaldehyd": Kind.FORMALDEHYDE,
    "hcho": Kind.FORMALDEHYDE,
    "noise": Kind.NOISE,
    "noise_level": Kind.NOISE,
    "uv_index": Kind.UV_INDEX,
    "uv_level": Kind.UV_INDEX,  # zhc's 0-11 "UV level" is the UV index
    "voc_index": Kind.VOC_INDEX,
    "pressure": Kind.PRESSURE,
    "heart_rate": Kind.HEART_RATE,
    "breathing_rate": Kind.BREATH_RATE,
    "breath_rate": Kind.BREATH_RATE,
    "respiration_rate": Kind.BREATH_RATE,
    "state": Kind.SWITCH,
}

# A read-only binary whose name contains one of these words senses that thing
# (`area1Occupancy`, `carbon_monoxide_alarm_1`, `smoke_alarm`); checked in order.
_BINARY_WORDS: tuple[tuple[str, Kind], ...] = (
    ("carbon_monoxide", Kind.CARBON_MONOXIDE),
    ("gas_alarm", Kind.GAS),
    ("battery_low", Kind.BATTERY_LOW),
    ("occupancy", Kind.OCCUPANCY),
    ("presence", Kind.PRESENCE),
    ("motion", Kind.MOTION),
    ("smoke", Kind.SMOKE),
    ("leak", Kind.WATER_LEAK),
    ("tamper", Kind.TAMPER),
    ("vibration", Kind.VIBRATION),
    ("contact", Kind.CONTACT),
)

# A read-only numeric in one of these (canonical) units measures that quantity, whatever its
# name (`floor_temperature`, `power_phase_b`, `energy_today`); VA/VAR are deliberately absent.
_BY_UNIT: dict[str, Kind] = {
    "°C": Kind.TEMPERATURE,
    "W": Kind.POWER,
    "kWh": Kind.ENERGY,
    "V": Kind.VOLTAGE,
    "A": Kind.CURRENT,
    "lx": Kind.ILLUMINANCE,
    "hPa": Kind.PRESSURE,
    "L/min": Kind.WATER_FLOW,
}

# A volume in litres is water used (meters, valves), unless the name says gas: gas meters also count in m³.
_NOT_WATER = re.compile(r"gas|fuel|oil")

# Enums that carry a binary state: the values that mean "yes". A row applies only when the
# expose offers one of those values, so that a generic name (`state`) stays safe.
_ENUM_ALARMS: dict[str, tuple[Kind, frozenset[str]]] = {
    "fall_status": (Kind.FALL, frozenset({"fall_warning", "fall_alarm"})),
    "fall_down_status": (Kind.FALL, frozenset({"maybe_fall", "fall"})),
    "gas_sensor_state": (Kind.GAS, frozenset({"alarm"})),
    "co_state": (Kind.CARBON_MONOXIDE, frozenset({"alarm"})),
    "door_state": (Kind.CONTACT, frozenset({"open", "error_forced_open"})),
    "human_motion_state": (Kind.PRESENCE, frozenset({"active", "static", "small", "large"})),
    "movement": (Kind.MOTION, frozenset({"movement"})),
    "motion_state": (Kind.MOTION, frozenset({"small", "medium", "large", "far", "near"})),
    "state": (Kind.PRESENCE, frozenset({"presence", "move"})),
    "status": (Kind.FALL, frozenset({"falling"})),  # a fall sensor's posture status
    "pressure_state": (Kind.OCCUPANCY, frozenset({"sit", "sedentary"})),  # a bed/chair strap: someone is on it
    "current_device_status": (Kind.WATER_LEAK, frozenset({"water_leakage", "water_shortage & water_leakage"})),
}

# Read-only exposes the vocabulary has no kind for, which a resident-facing hub treats as
# diagnostic the way Home Assistant's entity_category does: shown to installers, left out of
# coverage. First match wins; the reason becomes the point's note. README (adapters) has the
# table with the reasoning per group.
_THRESHOLD_REASON = "device-side threshold alarm on a reading the hub also receives"
# An alarm enum whose every value names a threshold (`over_temperature`, `alarm_co2`) is one too.
_THRESHOLD_VALUE = re.compile(r"^(over|below|above|high|low|alarm)_[a-z0-9_]+$")
_IDLE_WORDS = frozenset({"off", "normal", "ok", "none", "idle"})
_DIAGNOSTIC_UNITS: dict[str, str] = {
    **{
        unit: "electrical quality (power factor, AC frequency, reactive/apparent power)"
        for unit in ("VA", "kVA", "VAR", "VAr", "var", "kvar", "VArh", "kVArh", "varh", "kvarh", "Hz")
    },
    **{unit: "raw level behind the device's own alarm point" for unit in ("%LEL", "LEL", "LEL %")},
    **{unit: "particle detail beyond PM2.5 and PM10 (the sizes with WHO guideline values)" for unit in ("#/cm³", "µm")},
}
_DIAGNOSTIC_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^action_"), "detail of the action event (user, zone, code, angle ...)"),
    (
        re.compile(r"power_factor|frequency|reactive|apparent"),
        "electrical quality (power factor, AC frequency, reactive/apparent power)",
    ),
    (re.compile(r"^[A-Z0-9+-]+$|^pulse_|^elec_statistics"), "utility meter register (Linky TIC label, pulses)"),
    (re.compile(r"^pm(1|4)$|^pm_"), "particle detail beyond PM2.5 and PM10 (the sizes with WHO guideline values)"),
    (
        re.compile(
            r"distance|target|gate|location_|angle|_axis$|^side$|motion_speed|motion_direction|orientation|^dis_"
            r"|sensitivity|strength"
        ),
        "radar or accelerometer geometry, used to tune the sensor",
    ),
    (
        re.compile(r"(smoke|gas|occupancy)_(density|level|value)|smoke_density_dbm|^gas_density$|^current_pressure$"),
        "raw level behind the device's own alarm point",
    ),
    (
        re.compile(r"irrigation|watering|rain_delay|feeding|portions|weight_per_day"),
        "run record of an irrigation valve or pet feeder (durations, start and end times, portions)",
    ),
    (re.compile(r"buzzer|linkage"), "the detector's own sounder and linkage (its alarm point carries the alarm)"),
    (
        re.compile(
            r"fault|error|overheat|self_test|^test$|checking_result|contamination|endoflife|life_?time|uptime"
            r"|reboot|rejoin|reported_packages|rssi|version|firmware|clock|local_time|wifi|server_|^rf_|link_"
            r"|bind|group_id|pairing|calibration|scan_result|collect_status|camera_ready|learning"
            r"|meter_(number|id)|metering_device_type|formatting|multiplier|divisor|unit_of_measure|check_meter"
            r"|rtc_|power_?(source|type)|^power$|ac_connected|sensor_(status|error)|wire_break|connection_control"
            r"|charg|battery_state|_count$|^cycle_|correction|filter|_data$"
        ),
        "device health and housekeeping (faults, self-test, counters, firmware, power source)",
    ),
    (
        re.compile(
            r"schedule|records|program|plan|history|options|setting|ir_code|ir_timings|received|pin|code|user|^last_"
            r"|relock|protection|permission|child_lock|interconnect|alarm_switch|mute|_unit$|regions"
        ),
        "schedule, record or stored setting",
    ),
    (
        re.compile(
            r"^(probe_)?(temperature|humidity|illuminance|tds|ec|uv|pressure|(soil_)?fertility|moisture|water|power)"
            r"_(warning|warn|alarm|alarm_active)$"
        ),
        _THRESHOLD_REASON,
    ),
    (
        re.compile(
            r"running|motor|moving|valve|position|percent_state|preheat|window_(open|detect|state)|open_window"
            r"|boost|countdown|time_left|load_estimate|heating_demand|adaptation|frost|comp_state|mode$|hooks|fan_(speed|rpm)"
            r"|^device_state$|external_trigger|alarm_alarm|^lock_status$"
        ),
        "internal state of a thermostat, valve or motor (the actuator point carries what it does)",
    ),
)


# Kinds a caregiver needs even when zhc tags them `diagnostic` (it tags battery and action so).
_ALWAYS_SHOWN = frozenset({Kind.BATTERY, Kind.BATTERY_LOW, Kind.BUTTON, Kind.SOS, Kind.DOORBELL, Kind.FALL})

_SOS_ACTION = re.compile(r"(^|_)(sos|emergency|panic)($|_)")
_COVER_STATES: dict[str, str] = {"OPEN": "open", "CLOSE": "closed", "STOP": "stopped"}
_COVER_COMMANDS: dict[str, str] = {"open": "OPEN", "close": "CLOSE", "closed": "CLOSE", "stop": "STOP"}
_LOCK_STATES: dict[str, bool] = {"locked": True, "unlocked": False}
_ACCESS_SET = 2
_MAX_PENDING = 1000


@dataclass(slots=True)
class _Field:
    """How one key of the state JSON feeds one point (or one sub-key of a composite point)."""

    point: str
    conv: Callable[[Any], Any]
    sub: str | None = None
    event: bool = False
    sos: bool = False  # an `action` whose SOS-like values are routed to the `sos` point


@dataclass(slots=True)
class _Writer:
    """What encode needs to turn a normalized value of one point back into Z2M's properties."""

    kind: str
    props: dict[str, Any]


@dataclass(slots=True)
class _Table:
    """Everything derived from one device's exposes: points, the state decoder, the encoders."""

    points: list[Point] = field(default_factory=list)
    fields: dict[str, list[_Field]] = field(default_factory=dict)
    writers: dict[str, _Writer] = field(default_factory=dict)

    def key(self, base: str) -> str:
        """A point key not used yet on this device, derived from `base`."""
        taken = {p.key for p in self.points}
        key, n = base, 2
        while key in taken:
            key, n = f"{base}_{n}", n + 1
        return key

    def feed(self, prop: str, f: _Field) -> None:
        """Route the state key `prop` to a field."""
        self.fields.setdefault(prop, []).append(f)


@dataclass(slots=True)
class _Dev:
    """One known device: its model, tables and last state as the adapter tracks them."""

    ieee: str
    name: str
    device: Device
    table: _Table
    composite: dict[str, dict[str, Scalar]] = field(default_factory=dict)
    own: AvailabilityState = AvailabilityState.UNKNOWN
    emitted: AvailabilityState = AvailabilityState.UNKNOWN


# ---------------------------------------------------------------------------------- exposes


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _norm_unit(unit: Any) -> str | None:
    if not isinstance(unit, str) or not unit.strip():
        return None
    return _UNIT_ALIASES.get(unit.strip(), unit.strip())


def _binary_conv(on: Any, off: Any) -> Callable[[Any], Any]:
    # Compared literally (type included): Z2M's contact has value_on False, so `contact: true`
    # (closed) is "off" = not open - the inversion is undone by the definition itself.
    def conv(raw: Any) -> Any:
        if type(raw) is type(on) and raw == on:
            return True
        if type(raw) is type(off) and raw == off:
            return False
        return _SKIP

    return conv


def _numeric_conv(unit: str | None) -> Callable[[Any], Any]:
    convert = converter(unit)  # chosen once per expose, not per message
    floor = 1.0 if unit == "mired" else float("-inf")

    def conv(raw: Any) -> Any:
        # `v` typed float: compiled, the checks below are arithmetic on a C double, where an
        # untyped value made each one a call (two fifths of a state message's conversions).
        v: float
        cls = type(raw)
        if cls is float:
            v = raw  # a JSON float; `v - v` is 0.0 only when it is finite (json.loads allows NaN)
            if v - v != 0.0:
                return _SKIP
        elif cls is int and -_BIG < raw < _BIG:
            v = float(raw)
        else:
            n = _number(raw)  # numbers sent as strings, and everything that is not a number
            if n is None:
                return _SKIP
            v = n
        if v < floor:
            return _SKIP
        return v if convert is None else convert(v)

    return conv


def _raw_conv(raw: Any) -> Any:
    if raw is None or isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, dict) and all(v is None or isinstance(v, (bool, int, float, str)) for v in raw.values()):
        return {str(k): v for k, v in raw.items()}
    # Nested lists/objects (schedules, IR codes) are kept readable as compact JSON text.
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)


def _enum_alarm_conv(yes: frozenset[str]) -> Callable[[Any], Any]:
    return lambda raw: raw in yes if isinstance(raw, str) else _SKIP


def _cover_state_conv(raw: Any) -> Any:
    return _COVER_STATES.get(raw, raw.lower()) if isinstance(raw, str) else _SKIP


def _lock_state_conv(raw: Any) -> Any:
    return _LOCK_STATES.get(raw, _SKIP) if isinstance(raw, str) else _SKIP


def _brightness_conv(vmax: float) -> Callable[[Any], Any]:
    def conv(raw: Any) -> Any:
        v = _number(raw)
        return _SKIP if v is None else round(max(0.0, min(100.0, v * 100.0 / vmax)), 1)

    return conv


def _mired_conv(raw: Any) -> Any:
    v = _number(raw)
    return _SKIP if v is None or v < 1 else to_canonical(v, "mired")[0]


def _classify(e: Mapping[str, Any], unit: str | None) -> tuple[Kind, str | None]:
    """The kind of one generic expose, and the reason when it is `other`."""
    etype, name = e.get("type"), str(e.get("name") or "")
    writable = bool(_access(e) & _ACCESS_SET)
    kind = _BY_NAME.get(name)
    if kind is not None and _type_fits(kind, etype):
        return kind, None
    if etype == "binary" and not writable:
        for word, k in _BINARY_WORDS:
            if word in name.lower():
                return k, None
    if etype == "numeric" and not writable and unit in _BY_UNIT:
        return _BY_UNIT[unit], None
    if etype == "numeric" and not writable and unit == "L" and not _NOT_WATER.search(name):
        return Kind.WATER, None
    alarm = _enum_alarm(e) if etype == "enum" else None
    if alarm is not None:
        return alarm[0], None
    return Kind.OTHER, f"no kind for {etype} expose {name!r}"


def _enum_alarm(e: Mapping[str, Any]) -> tuple[Kind, frozenset[str]] | None:
    """The kind and "yes" values of an enum that carries a binary state, if it is one."""
    row = _ENUM_ALARMS.get(str(e.get("name") or ""))
    offered = {v for v in _list(e.get("values")) if isinstance(v, str)}
    return row if row is not None and row[1] & offered else None


def _diagnostic_reason(e: Mapping[str, Any], name: str, unit: str | None) -> str | None:
    """Why a read-only expose without a kind is diagnostic, or None when it is a real gap."""
    if unit in _DIAGNOSTIC_UNITS:
        return _DIAGNOSTIC_UNITS[unit]
    alarms = {v for v in _list(e.get("values")) if isinstance(v, str)} - _IDLE_WORDS
    if "alarm" in name and alarms and all(_THRESHOLD_VALUE.match(v) for v in alarms):
        return _THRESHOLD_REASON
    snake = _snake(name)  # camelCase names (`deviceBindNumber`) match the snake_case patterns too
    return next((why for pattern, why in _DIAGNOSTIC_NAMES if pattern.search(name) or pattern.search(snake)), None)


def _type_fits(kind: Kind, etype: Any) -> bool:
    return bool(etype == ("numeric" if KINDS[kind].category is Category.NUMERIC else "binary"))


def _access(e: Mapping[str, Any]) -> int:
    a = e.get("access")
    return a if isinstance(a, int) and not isinstance(a, bool) else 1


def _num(v: Any) -> float | None:
    return _number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _number(v: Any) -> float | None:
    # common.number() lets float() overflow on a JSON integer beyond float range.
    return None if isinstance(v, int) and abs(v) > 10**300 else number(v)


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _generic(e: Mapping[str, Any], t: _Table, setting: bool = False) -> None:
    """One generic expose (binary/numeric/enum/text/composite/list) becomes one point."""
    prop, name, etype = _text(e.get("property")), str(e.get("name") or ""), e.get("type")
    if prop is None:
        return
    if name == "action" and etype == "enum":
        _action(e, prop, t)
        return
    vendor_unit = _norm_unit(e.get("unit"))
    canon_unit = to_canonical(1.0, vendor_unit)[1] if etype == "numeric" else None
    kind, note = _classify(e, canon_unit)
    info = KINDS[kind]
    if info.unit is not None and canon_unit not in (None, info.unit):
        kind, note = Kind.OTHER, f"unit {vendor_unit!r} is not convertible to {info.unit}"
    access = _access(e)
    writable = bool(access & _ACCESS_SET)
    category = e.get("category")
    diagnostic = name == "linkquality" or category in ("config", "diagnostic")
    if kind is Kind.OTHER and writable:
        # A settable property that is not an actuator is a device setting (child_lock,
        # calibration, effect...): installers see it, residents and coverage do not.
        diagnostic = True
    elif kind is Kind.OTHER and not diagnostic and (reason := _diagnostic_reason(e, name, canon_unit)) is not None:
        diagnostic, note = True, f"diagnostic: {reason}"
    if setting:
        diagnostic = True
    if kind in _ALWAYS_SHOWN:
        diagnostic = False
    key = t.key(_snake(prop))
    options = (
        tuple(str(v) for v in _list(e.get("values")) if isinstance(v, (str, int, float))) if etype == "enum" else ()
    )
    lo, hi = _num(e.get("value_min")), _num(e.get("value_max"))
    if etype == "numeric" and vendor_unit is not None:
        lo = to_canonical(lo, vendor_unit)[0] if lo is not None and lo >= 1 else None
        hi = to_canonical(hi, vendor_unit)[0] if hi is not None and hi >= 1 else None
        if vendor_unit == "mired":
            lo, hi = hi, lo
    t.points.append(
        Point(
            key=key,
            kind=kind,
            unit=info.unit if kind is not Kind.OTHER else canon_unit,
            writable=writable,
            min=lo,
            max=hi,
            step=_num(e.get("value_step")),
            options=options,
            name=_text(e.get("label")) or name or None,
            source=f"zigbee2mqtt:{prop}",
            note=note,
            diagnostic=diagnostic,
        )
    )
    if etype == "binary":
        conv = _binary_conv(e.get("value_on", True), e.get("value_off", False))
    elif etype == "numeric":
        conv = _numeric_conv(vendor_unit)
    elif etype == "enum" and (alarm := _enum_alarm(e)) is not None:
        conv = _enum_alarm_conv(alarm[1])
    else:
        conv = _raw_conv
    t.feed(prop, _Field(key, conv, event=KINDS[kind].category is Category.EVENT))
    if writable:
        t.writers[key] = _Writer(
            str(etype),
            {"prop": prop, "on": e.get("value_on"), "off": e.get("value_off"), "unit": vendor_unit, "values": options},
        )


def _action(e: Mapping[str, Any], prop: str, t: _Table) -> None:
    values = [v for v in _list(e.get("values")) if isinstance(v, str)]
    sos = [v for v in values if _SOS_ACTION.search(v)]
    key = t.key(_snake(prop))
    t.points.append(
        Point(
            key=key,
            kind=Kind.BUTTON,
            options=tuple(values),
            name=_text(e.get("label")) or "Action",
            source=f"zigbee2mqtt:{prop}",
        )
    )
    if sos and t.key("sos") == "sos":
        t.points.append(
            Point(
                key="sos", kind=Kind.SOS, options=tuple(sos), name="SOS", source=f"zigbee2mqtt:{prop}=" + "|".join(sos)
            )
        )
    t.feed(prop, _Field(key, _raw_conv, event=True, sos=bool(sos)))


def _features(e: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    feats = e.get("features")
    return [f for f in feats if isinstance(f, Mapping)] if isinstance(feats, list) else []


def _specific(e: Mapping[str, Any], t: _Table) -> None:
    """A light/switch/cover/lock/climate/fan: one actuator point, its extra features as points."""
    etype = str(e["type"])
    kind = Kind(etype)
    endpoint = e.get("endpoint")
    key = t.key(f"{etype}_{_snake(str(endpoint))}" if isinstance(endpoint, (str, int)) and endpoint != "" else etype)
    props: dict[str, Any] = {}
    used: set[int] = set()
    writable = False
    lo = hi = None
    for i, f in enumerate(_features(e)):
        role = _ROLES.get((etype, str(f.get("name"))))
        prop = _text(f.get("property"))
        if role is None or prop is None or role in props:
            continue
        used.add(i)
        props[role] = prop
        writable = writable or bool(_access(f) & _ACCESS_SET)
        props[role + ":on"], props[role + ":off"] = f.get("value_on", "ON"), f.get("value_off", "OFF")
        props[role + ":min"], props[role + ":max"] = _num(f.get("value_min")), _num(f.get("value_max"))
        props[role + ":unit"] = _norm_unit(f.get("unit"))
        conv, sub = _role_conv(etype, role, f)
        t.feed(prop, _Field(key, conv, sub))
        if role == "target":
            lo, hi = props["target:min"], props["target:max"]
    color = any(str(f.get("name")) in ("color_xy", "color_hs") for f in _features(e))
    t.points.append(
        Point(
            key=key,
            kind=kind,
            unit=KINDS[kind].unit,
            writable=writable,
            min=lo,
            max=hi,
            name=key.replace("_", " ").capitalize(),
            source="zigbee2mqtt:" + ",".join(sorted({v for k, v in props.items() if ":" not in k})),
            note="colour (xy/hs) is not normalized" if color else None,
        )
    )
    t.writers[key] = _Writer(etype, props)
    for i, f in enumerate(_features(e)):
        if i not in used and str(f.get("name")) not in ("color_xy", "color_hs"):
            _expose(f, t, setting=True)


# (specific type, feature name) -> role in the actuator's value
_ROLES: dict[tuple[str, str], str] = {
    ("switch", "state"): "on",
    ("fan", "state"): "on",
    ("lock", "state"): "on",
    ("lock", "lock_state"): "lock_state",
    ("light", "state"): "on",
    ("light", "brightness"): "brightness",
    ("light", "color_temp"): "color_temp",
    ("cover", "state"): "state",
    ("cover", "position"): "position",
    ("cover", "tilt"): "tilt",
    ("climate", "local_temperature"): "current",
    ("climate", "occupied_heating_setpoint"): "target",
    ("climate", "current_heating_setpoint"): "target",
    ("climate", "system_mode"): "mode",
    ("climate", "running_state"): "running",
}

# Actuators whose normalized value is a flat mapping rather than a bool.
_COMPOSITE = frozenset({"light", "cover", "climate"})


def _role_conv(etype: str, role: str, f: Mapping[str, Any]) -> tuple[Callable[[Any], Any], str | None]:
    sub = role if etype in _COMPOSITE else None
    if role == "on":
        return _binary_conv(f.get("value_on", "ON"), f.get("value_off", "OFF")), sub
    if role == "lock_state":
        return _lock_state_conv, None
    if role == "brightness":
        return _brightness_conv(_num(f.get("value_max")) or 254.0), sub
    if role == "color_temp":
        return _mired_conv, sub
    if role == "state":
        if f.get("type") == "binary":
            on = _binary_conv(f.get("value_on"), f.get("value_off"))
            return (lambda raw: {True: "open", False: "closed"}.get(on(raw), _SKIP)), sub
        return _cover_state_conv, sub
    if role in ("current", "target"):
        return _numeric_conv(_norm_unit(f.get("unit"))), sub
    return _raw_conv, sub


_SPECIFIC_TYPES = frozenset({"light", "switch", "fan", "cover", "lock", "climate"})


def _expose(e: Any, t: _Table, setting: bool = False) -> None:
    if not isinstance(e, Mapping):
        return
    etype = e.get("type")
    if isinstance(etype, str) and etype in _SPECIFIC_TYPES and "features" in e:
        _specific(e, t)
    else:
        _generic(e, t, setting)


_SNAKE_1 = re.compile(r"([a-z0-9])([A-Z])")
_SNAKE_2 = re.compile(r"[^a-z0-9]+")


def _snake(s: str) -> str:
    out = _SNAKE_2.sub("_", _SNAKE_1.sub(r"\1_\2", s).lower()).strip("_")
    return out[:120] or "value"


def build_table(exposes: Any) -> _Table:
    """The points, state decoder and encoders of one device from its `definition.exposes`."""
    t = _Table()
    for e in exposes if isinstance(exposes, list) else []:
        _expose(e, t)
    t.points = [shared_point(p) for p in t.points]
    return t


# Tables by the text of the exposes they were built from (repr: exact for every JSON value,
# NaN and big integers included), with their points as a Device holds them.
Tables = dict[str, tuple[_Table, tuple[Point, ...]]]


def _table_for(exposes: Any, tables: Tables | None) -> tuple[_Table, tuple[Point, ...]]:
    # A table is a function of the exposes alone and is never changed once built: the devices
    # of one definition (a home's many sensors of one model) share it, built once.
    if tables is None:
        table = build_table(exposes)
        return table, tuple(table.points)
    text = repr(exposes)
    built = tables.get(text)
    if built is None:
        table = build_table(exposes)
        built = tables[text] = (table, tuple(table.points))
    return built


def device_from_entry(
    entry: Mapping[str, Any], via: str | None = None, tables: Tables | None = None
) -> tuple[Device, _Table] | None:
    """A Device and its tables from one bridge/devices entry; None for the Coordinator and undefined ones.

    With `tables`, devices whose exposes are alike share one table (kept there by the exposes' text).
    """
    ieee = normalize_ieee(str(entry.get("ieee_address", "")))
    definition = entry.get("definition")
    name = entry.get("friendly_name")
    if ieee is None or not isinstance(name, str) or not name:
        raise Rejected("bad_device", f"entry without ieee_address/friendly_name: {str(entry)[:80]}")
    if entry.get("type") == "Coordinator" or not isinstance(definition, Mapping):
        return None
    table, points = _table_for(definition.get("exposes"), tables)
    device = Device(
        id=device_id(Protocol.Z2M, ieee),
        name=name,
        protocol=Protocol.Z2M,
        manufacturer=_text(definition.get("vendor")) or _text(entry.get("manufacturer")),
        model=_text(definition.get("model")) or _text(entry.get("model_id")),
        firmware=_text(entry.get("software_build_id")),
        identifiers={"ieee": ieee},
        via=via,
        points=points,
    )
    return device, table


def coverage(devices: Iterable[Any]) -> dict[str, Any]:
    """How much of a bridge/devices list normalizes to known kinds (diagnostic/setting points excluded)."""
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for entry in devices:
        counts["entries"] += 1
        try:
            built = device_from_entry(entry) if isinstance(entry, Mapping) else None
        except Rejected:
            counts["rejected"] += 1
            continue
        if built is None:
            counts["skipped"] += 1
            continue
        counts["devices"] += 1
        for p in built[0].points:
            counts["points"] += 1
            if p.diagnostic:
                counts["diagnostic"] += 1
                continue
            counts["considered"] += 1
            kinds[p.kind.value] += 1
            if p.kind is Kind.OTHER:
                other[(p.source or p.key).removeprefix("zigbee2mqtt:")] += 1
    considered = counts["considered"]
    mapped = considered - kinds["other"]
    return {
        **{k: counts[k] for k in ("entries", "devices", "skipped", "rejected", "points", "diagnostic", "considered")},
        "mapped": mapped,
        "other": kinds["other"],
        "ratio": mapped / considered if considered else 1.0,
        "by_kind": dict(kinds.most_common()),
        "top_other": other.most_common(25),
    }


# ---------------------------------------------------------------------------------- adapter


def _availability_word(payload: bytes) -> str:
    text = decode_text(payload).strip()
    if text.startswith("{"):
        state = decode_object(payload).get("state")
        if not isinstance(state, str):
            raise Rejected("bad_availability", "JSON availability without a string `state`")
        text = state
    word = text.lower()
    if word not in ("online", "offline"):
        raise Rejected("bad_availability", f"unknown availability {text[:40]!r}")
    return word


def _parse_last_seen(v: Any, now: datetime) -> datetime:
    if isinstance(v, str):
        try:
            ts = datetime.fromisoformat(v)
        except ValueError:
            return now
        return ts if ts.tzinfo else ts.replace(tzinfo=now.tzinfo)
    n = number(v)
    if n is not None and 0 < n < 1e14:
        return datetime.fromtimestamp(n / 1000.0, UTC)
    return now


_STATE_WORDS: dict[str, AvailabilityState] = {"online": AvailabilityState.ONLINE, "offline": AvailabilityState.OFFLINE}
_ROLE_STATE, _ROLE_AVAILABILITY = 0, 1
_NOT_VALUES = frozenset({"last_seen", "linkquality", "elapsed", "update", "update_available", "color_mode"})


class Zigbee2MqttAdapter(CountedFeed):
    """Zigbee2MQTT dialect: map topics by friendly name from bridge/devices, decode with precomputed tables."""

    name: ClassVar[str] = "zigbee2mqtt"

    def __init__(self, base_topic: str = "zigbee2mqtt") -> None:
        self.base = base_topic.rstrip("/")
        self.counters: Counter[str] = Counter()
        self._devices: dict[str, _Dev] = {}  # by ieee
        self._by_id: dict[str, _Dev] = {}
        self._routes: dict[str, tuple[_Dev, int]] = {}
        self._pending: dict[str, Message] = {}
        self._bridge: AvailabilityState = AvailabilityState.UNKNOWN
        self._special: dict[str, Callable[[Message, datetime], list[Event]]] = {
            f"{self.base}/bridge/devices": self._on_devices,
            f"{self.base}/bridge/state": self._on_bridge_state,
            f"{self.base}/bridge/event": self._on_bridge_event,
        }

    def subscriptions(self) -> list[str]:
        """Everything under the base topic (friendly names may hold any number of levels)."""
        return [f"{self.base}/#"]

    def device(self, device_id_: str) -> Device | None:
        """The device as last discovered, by hub id."""
        d = self._by_id.get(device_id_)
        return d.device if d else None

    # -- feed -------------------------------------------------------------------------------

    def _feed(self, msg: Message, now: datetime) -> list[Event]:
        route = self._routes.get(msg.topic)
        if route is not None:
            dev, role = route
            if role == _ROLE_STATE:
                return self._on_state(dev, msg, now)
            return self._on_availability(dev, msg, now)
        special = self._special.get(msg.topic)
        if special is not None:
            return special(msg, now)
        if msg.topic.startswith(f"{self.base}/bridge/") or msg.topic.endswith(("/set", "/get")):
            self.counters["ignored"] += 1
            return []
        # A retained state can arrive before bridge/devices names its device: keep the latest
        # per topic and replay it once the topic is known.
        if msg.payload and len(self._pending) < _MAX_PENDING:
            self._pending[msg.topic] = msg
        self.counters["unknown_topic"] += 1
        return []

    def _on_state(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        if not msg.payload:
            return []
        data = decode_object(msg.payload)
        fields = dev.table.fields
        values: dict[str, Value] = {}
        events: list[Event] = []
        touched: set[str] = set()
        for k, raw in data.items():
            for f in fields.get(k, ()):
                v = f.conv(raw)
                if v is _SKIP:
                    continue
                if f.event:
                    if msg.retain or v is False or v is None or v == "":
                        continue  # events are never replayed, and "no press" is not a press
                    key = "sos" if f.sos and isinstance(v, str) and _SOS_ACTION.search(v) else f.point
                    events.append(PointEvent.model_construct(ts=now, device_id=dev.device.id, key=key, value=v))
                elif f.sub is not None:
                    dev.composite.setdefault(f.point, {})[f.sub] = v
                    touched.add(f.point)
                else:
                    values[f.point] = v
        for key in touched:
            values[key] = dict(dev.composite[key])
        if values:
            events.insert(0, state_changed(now, dev.device.id, values))
        elif not events and "last_seen" in data and data.keys() <= _NOT_VALUES:
            dev.emitted = self._effective(dev)
            seen = _parse_last_seen(data["last_seen"], now)
            events.append(self._availability(dev, now, "zigbee2mqtt last_seen", seen))
        return events

    def _on_availability(self, dev: _Dev, msg: Message, now: datetime) -> list[Event]:
        if not msg.payload:
            return []
        dev.own = _STATE_WORDS[_availability_word(msg.payload)]
        return self._availability_changed(dev, now, f"zigbee2mqtt availability: {dev.own.value}")

    def _effective(self, dev: _Dev) -> AvailabilityState:
        if self._bridge is AvailabilityState.OFFLINE:
            return AvailabilityState.OFFLINE
        return dev.own

    def _availability_changed(self, dev: _Dev, now: datetime, reason: str) -> list[Event]:
        state = self._effective(dev)
        if state == dev.emitted:
            return []
        dev.emitted = state
        if self._bridge is AvailabilityState.OFFLINE:
            reason = "zigbee2mqtt bridge offline"
        return [self._availability(dev, now, reason, now if state is AvailabilityState.ONLINE else None)]

    def _availability(self, dev: _Dev, now: datetime, reason: str, last_seen: datetime | None) -> Event:
        state = self._effective(dev)
        return AvailabilityChanged.model_construct(
            ts=now,
            device_id=dev.device.id,
            availability=Availability.model_construct(state=state, reason=reason, last_seen=last_seen),
        )

    def _on_bridge_state(self, msg: Message, now: datetime) -> list[Event]:
        if not msg.payload:
            return []
        self._bridge = _STATE_WORDS[_availability_word(msg.payload)]
        reason = f"zigbee2mqtt bridge {self._bridge.value}"
        return [e for d in self._devices.values() for e in self._availability_changed(d, now, reason)]

    def _on_bridge_event(self, msg: Message, now: datetime) -> list[Event]:
        if not msg.payload:
            return []
        data = decode_object(msg.payload)
        info = data.get("data")
        if data.get("type") != "device_leave" or not isinstance(info, Mapping):
            return []
        ieee = normalize_ieee(str(info.get("ieee_address", "")))
        dev = self._devices.get(ieee) if ieee else None
        if dev is None:
            return []
        self._forget(dev)
        return [DeviceRemoved(ts=now, device_id=dev.device.id, reason="zigbee2mqtt device_leave")]

    def _on_devices(self, msg: Message, now: datetime) -> list[Event]:
        if not msg.payload:
            return []
        data = decode_json(msg.payload)
        if not isinstance(data, list):
            raise Rejected("not_a_list", f"bridge/devices must be a JSON array, got {type(data).__name__}")
        coordinator = next(
            (e.get("ieee_address") for e in data if isinstance(e, Mapping) and e.get("type") == "Coordinator"), None
        )
        coord = normalize_ieee(coordinator) if isinstance(coordinator, str) else None
        via = device_id(Protocol.Z2M, coord) if coord else None
        events: list[Event] = []
        present: set[str] = set()
        tables: Tables = {}  # shared by the devices of this list with alike exposes
        for entry in data:
            events.extend(self._on_entry(entry, via, now, present, tables))
        for ieee, dev in list(self._devices.items()):
            if ieee not in present:
                self._forget(dev)
                events.append(
                    DeviceRemoved(ts=now, device_id=dev.device.id, reason="absent from zigbee2mqtt bridge/devices")
                )
        self._reroute()
        for topic in [t for t in self._pending if t in self._routes]:
            retained = self._pending.pop(topic)
            try:
                events.extend(self._feed(Message(topic, retained.payload, retain=True), now))
            except Rejected as exc:
                self.counters[exc.reason] += 1
                log.info("replayed %s rejected: %s", topic, exc)
        return events

    def _on_entry(self, entry: Any, via: str | None, now: datetime, present: set[str], tables: Tables) -> list[Event]:
        if not isinstance(entry, Mapping):
            self.counters["bad_device"] += 1
            return []
        ieee = normalize_ieee(str(entry.get("ieee_address", "")))
        if ieee:
            present.add(ieee)
        try:
            built = device_from_entry(entry, via, tables)
        except (Rejected, ValueError) as exc:
            # One malformed entry must not hide the rest of the network; pydantic's
            # ValidationError is a ValueError.
            self.counters["bad_device"] += 1
            log.warning("zigbee2mqtt device entry skipped: %s", str(exc)[:200])
            return []
        if built is None:
            self.counters["coordinator" if entry.get("type") == "Coordinator" else "no_definition"] += 1
            return []
        device, table = built
        self.counters["other_points"] += sum(1 for p in device.points if p.kind is Kind.OTHER)
        old = self._devices.get(device.identifiers["ieee"])
        if old is not None and old.device == device:
            return []
        dev = _Dev(ieee=device.identifiers["ieee"], name=device.name, device=device, table=table)
        if old is not None:
            dev.own, dev.emitted, dev.composite = old.own, old.emitted, old.composite
            self._by_id.pop(old.device.id, None)
        self._devices[dev.ieee] = dev
        self._by_id[device.id] = dev
        return [DeviceDiscovered(ts=now, device=device)]

    def _forget(self, dev: _Dev) -> None:
        self._devices.pop(dev.ieee, None)
        self._by_id.pop(dev.device.id, None)
        self._reroute()

    def _reroute(self) -> None:
        # Availability topics first, state topics over them: a device literally named
        # `a/b/availability` wins over the availability topic of `a/b` (longest name first).
        routes: dict[str, tuple[_Dev, int]] = {}
        for dev in self._devices.values():
            routes[f"{self.base}/{dev.name}/availability"] = (dev, _ROLE_AVAILABILITY)
        for dev in self._devices.values():
            routes[f"{self.base}/{dev.name}"] = (dev, _ROLE_STATE)
        self._routes = routes

    # -- encode -----------------------------------------------------------------------------

    def encode(self, device: Device, values: Mapping[str, Value]) -> list[Message]:
        """One `<base>/<friendly_name>/set` message carrying every value in Z2M's native form."""
        dev = self._by_id.get(device.id)
        if dev is None:
            raise Rejected("unknown_device", device.id)
        payload: dict[str, Any] = {}
        for key, value in values.items():
            writer = dev.table.writers.get(key)
            point = dev.device.point(key)
            if writer is None or point is None or not point.writable:
                raise Rejected("not_writable", f"{device.id}: {key}")
            encoder = _ENCODERS.get(writer.kind)
            if encoder is None:
                raise Rejected("not_writable", f"{device.id}: {key} ({writer.kind})")
            payload.update(encoder(writer.props, value))
        if not payload:
            raise Rejected("bad_value", "nothing to set")
        return [Message(f"{self.base}/{dev.name}/set", json.dumps(payload).encode())]


def _bool(value: Value) -> bool:
    if isinstance(value, bool):
        return value
    raise Rejected("bad_value", f"expected a bool, got {value!r}")


def _mapping(value: Value, fallback: str) -> dict[str, Scalar]:
    if isinstance(value, dict):
        return value
    return {fallback: value}


def _encode_onoff(p: dict[str, Any], value: Value) -> dict[str, Any]:
    if "on" not in p:
        raise Rejected("not_writable", "no state feature")
    return {p["on"]: p["on:on"] if _bool(value) else p["on:off"]}


def _encode_light(p: dict[str, Any], value: Value) -> dict[str, Any]:
    v = _mapping(value, "on")
    out: dict[str, Any] = {}
    if "on" in v:
        out.update(_encode_onoff(p, _bool(v["on"])))
    if "brightness" in v and "brightness" in p:
        pct = number(v["brightness"])
        if pct is None:
            raise Rejected("bad_value", f"brightness {v['brightness']!r}")
        out[p["brightness"]] = round(max(0.0, min(100.0, pct)) * (p["brightness:max"] or 254.0) / 100.0)
    if "color_temp" in v and "color_temp" in p:
        k = number(v["color_temp"])
        if k is None or k <= 0:
            raise Rejected("bad_value", f"color_temp {v['color_temp']!r}")
        mired = round(1_000_000.0 / k)
        lo, hi = p["color_temp:min"], p["color_temp:max"]
        out[p["color_temp"]] = int(min(hi, max(lo, mired)) if lo is not None and hi is not None else mired)
    if not out:
        raise Rejected("bad_value", f"nothing settable in {value!r}")
    return out


def _encode_cover(p: dict[str, Any], value: Value) -> dict[str, Any]:
    v = _mapping(value, "state")
    out: dict[str, Any] = {}
    if isinstance(v.get("state"), bool):
        v = {**v, "state": "open" if v["state"] else "close"}
    if "state" in v and "state" in p:
        cmd = _COVER_COMMANDS.get(str(v["state"]).lower())
        if cmd is None:
            raise Rejected("bad_value", f"cover state {v['state']!r}")
        out[p["state"]] = cmd
    for role in ("position", "tilt"):
        if role in v and role in p:
            n = number(v[role])
            if n is None:
                raise Rejected("bad_value", f"{role} {v[role]!r}")
            out[p[role]] = round(max(0.0, min(100.0, n)))
    if not out:
        raise Rejected("bad_value", f"nothing settable in {value!r}")
    return out


def _encode_climate(p: dict[str, Any], value: Value) -> dict[str, Any]:
    v = _mapping(value, "target")
    out: dict[str, Any] = {}
    if "target" in v and "target" in p:
        c = number(v["target"])
        if c is None:
            raise Rejected("bad_value", f"target {v['target']!r}")
        out[p["target"]] = _from_canonical(c, p["target:unit"])
    if "mode" in v and "mode" in p:
        out[p["mode"]] = str(v["mode"])
    if not out:
        raise Rejected("bad_value", f"nothing settable in {value!r}")
    return out


def _encode_binary(p: dict[str, Any], value: Value) -> dict[str, Any]:
    return {p["prop"]: p["on"] if _bool(value) else p["off"]}


def _encode_numeric(p: dict[str, Any], value: Value) -> dict[str, Any]:
    n = number(value)
    if n is None:
        raise Rejected("bad_value", f"expected a number, got {value!r}")
    return {p["prop"]: _from_canonical(n, p["unit"])}


def _encode_enum(p: dict[str, Any], value: Value) -> dict[str, Any]:
    if str(value) not in p["values"]:
        raise Rejected("bad_value", f"{value!r} is not one of {p['values'][:10]}")
    return {p["prop"]: value}


def _encode_text(p: dict[str, Any], value: Value) -> dict[str, Any]:
    return {p["prop"]: value}


# Inverse of common.to_canonical for the units a settable property is given in.
_FROM_CANONICAL: dict[str, Callable[[float], float]] = {
    "°F": lambda c: round(c * 9.0 / 5.0 + 32.0, 1),
    "mV": lambda v: v * 1000.0,
    "mA": lambda v: v * 1000.0,
    "Wh": lambda v: v * 1000.0,
    "kW": lambda v: v / 1000.0,
    "mired": lambda k: round(1_000_000.0 / k) if k else 0.0,
}


def _from_canonical(v: float, unit: str | None) -> int | float:
    out = _FROM_CANONICAL[unit](v) if unit in _FROM_CANONICAL else v
    return int(out) if float(out).is_integer() else out


_ENCODERS: dict[str, Callable[[dict[str, Any], Value], dict[str, Any]]] = {
    "switch": _encode_onoff,
    "fan": _encode_onoff,
    "lock": _encode_onoff,
    "light": _encode_light,
    "cover": _encode_cover,
    "climate": _encode_climate,
    "binary": _encode_binary,
    "numeric": _encode_numeric,
    "enum": _encode_enum,
    "text": _encode_text,
}
