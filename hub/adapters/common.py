"""What every dialect shares: JSON decoding with reasons, unit conversion to canonical units, ids."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import orjson

from hub.adapters.base import Rejected
from hub.model import Point

# Deeper JSON than this is refused: real device payloads nest a few levels, and the code that
# reads a payload must never meet one that would exhaust its frames.
MAX_DEPTH = 64


def decode_text(payload: bytes) -> str:
    """The payload as UTF-8 text, or Rejected("not_utf8")."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None


def decode_json(payload: bytes) -> Any:
    """The payload parsed as JSON, or Rejected with "invalid_json" / "too_deep" / "not_utf8"."""
    # Parsed first, measured after: both parsers stop a bomb themselves (orjson at 1,024
    # levels, json.loads at the recursion limit), and walking the few containers of a parsed
    # message costs a fraction of scanning every byte of it beforehand.
    try:
        data = parse_json(payload)
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    except ValueError as exc:
        if _depth_exceeds(payload, MAX_DEPTH):
            raise Rejected("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels") from None
        raise Rejected("invalid_json", str(exc)) from None
    if isinstance(data, (dict, list)) and _deeper_than(data, MAX_DEPTH):
        raise Rejected("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    return data


_ORJSON_UP_TO = 256 * 1024  # bytes: the longest payload orjson parses (see parse_json)


def parse_json(data: bytes | str) -> Any:
    """JSON parsed as json.loads would, mostly by orjson (which reads integers beyond 64 bits as floats)."""
    # orjson parses in a quarter of json.loads' time, UTF-8 check included. But it builds a
    # tree of the whole document first, at some 15 times the payload's size: a big home's 9 MB
    # bridge/devices peaked at 134 MB in orjson against 37 MB in json.loads, and the hub's
    # resident memory never came back down. Such payloads are rare: json.loads takes them.
    if len(data) <= _ORJSON_UP_TO:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json.loads may still take it (NaN, integers beyond 64 bits): the rare payload parses twice
    try:
        # Bytes are decoded as UTF-8 and nothing else (json.loads would guess UTF-16 or -32).
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except RecursionError:
        # Nested past the parser's limit: no JSON to read, as for any other invalid JSON
        # (decode_json refuses such payloads earlier, but templates parse state text too).
        raise ValueError("JSON nested too deep to parse") from None


def decode_object(payload: bytes) -> dict[str, Any]:
    """The payload parsed as a JSON object, or Rejected("not_an_object")."""
    data = decode_json(payload)
    if not isinstance(data, dict):
        raise Rejected("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def _deeper_than(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether parsed JSON nests its containers more than `limit` levels deep (the top one is level 1)."""
    # A stack, not recursion: the walk itself must not run out of frames.
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        container, level = stack.pop()
        if level > limit:
            return True
        # Two loops rather than one over either: compiled, each is a native dict or list loop.
        if isinstance(container, dict):
            for v in container.values():
                if isinstance(v, (dict, list)):
                    stack.append((v, level + 1))
        else:
            for v in container:
                if isinstance(v, (dict, list)):
                    stack.append((v, level + 1))
    return False


def _depth_exceeds(payload: bytes, limit: int) -> bool:
    # For a payload that did not parse: a cheap upper bound on nesting that ignores brackets
    # inside strings, which tells a bomb from other broken JSON. The running depth is summed in
    # C over the brackets alone: a Python loop over every byte of a 9 MB payload held the loop
    # for half a second.
    brackets = payload.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def number(value: Any) -> float | None:
    """A finite number from a JSON value (numbers sent as strings included), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            f = float(value)
        except OverflowError:  # a JSON integer with hundreds of digits
            return None
    elif isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    # Finite: `f - f` is 0.0 for every finite float and nan for inf and nan (compiled, arithmetic
    # on a C double, where the tuple of infinities was built and parsed at every call).
    return f if f - f == 0.0 else None


# Unit conversions to the canonical units of hub.model.KINDS, keyed by the vendor's unit.
# Each entry: (canonical unit, converter).
_UNITS: dict[str, tuple[str, Callable[[float], float]]] = {
    "°F": ("°C", lambda v: round((v - 32.0) * 5.0 / 9.0, 2)),
    "F": ("°C", lambda v: round((v - 32.0) * 5.0 / 9.0, 2)),
    "°C": ("°C", lambda v: v),
    "C": ("°C", lambda v: v),
    "mV": ("V", lambda v: v / 1000.0),
    "V": ("V", lambda v: v),
    "mA": ("A", lambda v: v / 1000.0),
    "A": ("A", lambda v: v),
    "Wh": ("kWh", lambda v: v / 1000.0),
    "kWh": ("kWh", lambda v: v),
    "MWh": ("kWh", lambda v: v * 1000.0),
    "Wmin": ("kWh", lambda v: v / 60000.0),  # Shelly Gen1 reports energy in watt-minutes
    "kW": ("W", lambda v: v * 1000.0),
    "mW": ("W", lambda v: v / 1000.0),
    "W": ("W", lambda v: v),
    "mired": ("K", lambda v: round(1_000_000.0 / v) if v else 0.0),
    "hPa": ("hPa", lambda v: v),
    "mbar": ("hPa", lambda v: v),
    "Pa": ("hPa", lambda v: round(v / 100.0, 4)),
    "kPa": ("hPa", lambda v: round(v * 10.0, 4)),
    "bar": ("hPa", lambda v: round(v * 1000.0, 4)),
    "psi": ("hPa", lambda v: round(v * 68.947573, 4)),
    "inHg": ("hPa", lambda v: round(v * 33.863886, 4)),
    "mmHg": ("hPa", lambda v: round(v * 1.333224, 4)),
    "L": ("L", lambda v: v),
    "mL": ("L", lambda v: v / 1000.0),
    "m³": ("L", lambda v: round(v * 1000.0, 6)),
    "m3": ("L", lambda v: round(v * 1000.0, 6)),
    "ft³": ("L", lambda v: round(v * 28.316847, 6)),
    "gal": ("L", lambda v: round(v * 3.785412, 6)),  # US gallons: the devices that use them are US-market
    # The same micro-gram per cubic metre, spelt with the micro sign, the Greek mu or ASCII.
    "µg/m³": ("µg/m³", lambda v: v),
    "μg/m³": ("µg/m³", lambda v: v),
    "ug/m3": ("µg/m³", lambda v: v),
    "µg/m3": ("µg/m³", lambda v: v),
    "mg/m³": ("µg/m³", lambda v: round(v * 1000.0, 6)),
    "mg/m3": ("µg/m³", lambda v: round(v * 1000.0, 6)),
    "dBA": ("dBA", lambda v: v),
    "L/min": ("L/min", lambda v: v),
    "L/h": ("L/min", lambda v: round(v / 60.0, 6)),
    "m³/h": ("L/min", lambda v: round(v * 1000.0 / 60.0, 6)),
    "gal/min": ("L/min", lambda v: round(v * 3.785412, 6)),
    "dB(A)": ("dBA", lambda v: v),
}


def converter(unit: str | None) -> Callable[[float], float] | None:
    """The function that brings a value in this unit to the canonical unit; None when none is needed."""
    row = _UNITS.get(unit) if unit is not None else None
    return None if row is None or row[0] == unit else row[1]


def to_canonical(value: float, unit: str | None) -> tuple[float, str | None]:
    """Convert a value in a vendor unit to the hub's canonical unit; unknown units pass through."""
    if unit is None or unit not in _UNITS:
        return value, unit
    canonical, convert = _UNITS[unit]
    return convert(value), canonical


_MAC_HEX = re.compile(r"[^0-9A-Fa-f]")


def normalize_mac(mac: str) -> str | None:
    """A MAC address as 12 upper-case hex digits without separators, or None if it is not one."""
    digits = _MAC_HEX.sub("", mac)
    return digits.upper() if len(digits) == 12 else None


def normalize_ieee(ieee: str) -> str | None:
    """A Zigbee IEEE address as `0x` + 16 lower-case hex digits, or None if it is not one."""
    digits = ieee.lower().removeprefix("0x")
    if len(digits) == 16 and not _MAC_HEX.search(digits):
        return "0x" + digits
    return None


# The points adapters hold, by their field values (in declaration order): devices of one
# model (a home of a hundred identical plugs, thousands of sensors of one definition) share
# their points rather than each holding its own copies. Points are frozen, so sharing one
# changes nothing that can be seen. A plain dict, not a weak one (whose every lookup runs
# Python code): when it is full it starts again, which only ends some sharing.
_POINTS: dict[tuple[Any, ...], Point] = {}
_POINTS_MAX = 16_384


def shared_point(point: Point) -> Point:
    """The point equal to this one that an adapter already holds, else this one (kept for the next)."""
    key = tuple(point.__dict__.values())
    kept = _POINTS.get(key)
    if kept is not None:
        return kept
    if len(_POINTS) >= _POINTS_MAX:
        _POINTS.clear()
    _POINTS[key] = point
    return point
