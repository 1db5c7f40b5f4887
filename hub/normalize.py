"""`hub normalize`: what the hub makes of recorded MQTT traffic, device by device, with coverage figures.

The core is pure: `read_capture` turns capture lines into messages (or line rejections),
`normalize` feeds them to every enabled adapter and folds the events through a Registry
exactly as the hub does, and `render_text` / `report_json` print the result.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from hub.adapters import build_adapters
from hub.adapters.base import Adapter, Rejected
from hub.config import ConfigError, Discovery, format_problems, load_config
from hub.model import Device, DeviceDiscovered, Kind, Value
from hub.registry import Named, Registry
from hub.wire import Message, topic_matches

DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # the hub's own default mqtt.max_payload_bytes
# A capture replays in one go; every message gets this one timestamp so output is reproducible.
CAPTURE_TIME = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LineRejected:
    """A capture line that is not a message, or a message refused before any adapter saw it."""

    line: int
    reason: str
    detail: str = ""


def _json_line(raw: bytes, n: int) -> Message | LineRejected:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return LineRejected(n, "bad_capture_line", f"JSON line: {str(exc)[:80]}")
    if not isinstance(data, dict) or not isinstance(data.get("topic"), str) or not data["topic"]:
        return LineRejected(n, "bad_capture_line", 'JSON line without a "topic" string')
    payload = data.get("payload")
    # A string payload is the message text; anything else is the JSON the device sent.
    if payload is None:
        body = b""
    elif isinstance(payload, str):
        body = payload.encode("utf-8", "surrogatepass")
    else:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Message(data["topic"], body, retain=data.get("retain") is True)


def _sub_line(raw: bytes, n: int) -> Message | LineRejected:
    # `mosquitto_sub -v` prints `topic payload`; it shows no retain flag, so none is assumed.
    topic_raw, _, payload = raw.partition(b" ")
    try:
        topic = topic_raw.decode("utf-8")
    except UnicodeDecodeError:
        return LineRejected(n, "bad_capture_line", "topic is not UTF-8")
    if not topic or "+" in topic or "#" in topic:
        return LineRejected(n, "bad_capture_line", f"not a topic: {topic[:60]!r}")
    return Message(topic, payload)


def parse_line(raw: bytes, n: int, max_bytes: int = DEFAULT_MAX_BYTES) -> Message | LineRejected | None:
    """One capture line as a message; None for blank and comment lines. Oversize lines are never parsed."""
    line = raw.rstrip(b"\r\n")
    if len(line) > max_bytes:
        # A JSON line's payload cannot be shorter than the line that carries it, minus its
        # quoting; a plain line's payload is the line minus the topic. Both are refused unread.
        return LineRejected(n, "too_large", f"{len(line)} bytes > {max_bytes}")
    if not line.strip() or line.startswith(b"#"):
        return None
    parsed = _json_line(line, n) if line.lstrip().startswith(b"{") else _sub_line(line, n)
    if isinstance(parsed, Message) and len(parsed.payload) > max_bytes:
        return LineRejected(n, "too_large", f"{len(parsed.payload)}-byte payload > {max_bytes}")
    return parsed


def read_capture(stream: BinaryIO, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Message | LineRejected]:
    """Every message of a capture, in order, with the lines that are not messages as rejections."""
    for n, raw in enumerate(stream, start=1):
        parsed = parse_line(raw, n, max_bytes)
        if parsed is not None:
            yield parsed


@dataclass(slots=True)
class Normalized:
    """What a capture normalizes to: the registry's devices and values, and every count."""

    registry: Registry
    messages: int = 0
    unrouted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_examples: dict[str, str] = field(default_factory=dict)

    def devices(self) -> list[tuple[Device, dict[str, Value]]]:
        """Every device with its merged last values, sorted by id."""
        out = []
        for dev in self.registry.devices():
            rec = self.registry.get(dev.id)
            out.append((dev, dict(rec.values) if rec else {}))
        return out

    def coverage(self) -> dict[str, Any]:
        """Devices, points mapped to a kind, points left `other` and why, diagnostic points and why."""
        counts: Counter[str] = Counter()
        other: Counter[str] = Counter()
        diagnostic: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        for dev in self.registry.devices():
            counts["devices"] += 1
            for p in dev.points:
                counts["points"] += 1
                if p.diagnostic:
                    diagnostic[_why(p.note, "diagnostic: ", _SETTING if p.writable else _TAGGED)] += 1
                elif p.kind is Kind.OTHER:
                    other[p.note or "no reason given"] += 1
                else:
                    kinds[p.kind.value] += 1
        mapped, left = sum(kinds.values()), sum(other.values())
        return {
            "devices": counts["devices"],
            "points": counts["points"],
            "diagnostic": sum(diagnostic.values()),
            "considered": mapped + left,
            "mapped": mapped,
            "other": left,
            "ratio": round(mapped / (mapped + left), 4) if mapped + left else 1.0,
            "by_kind": dict(kinds.most_common()),
            "other_reasons": dict(other.most_common()),
            "diagnostic_reasons": dict(diagnostic.most_common()),
            "messages": self.messages,
            "unrouted": self.unrouted,
            "rejected": sum(self.rejected.values()),
            "rejected_reasons": dict(self.rejected.most_common()),
        }


_SETTING = "device setting (writable, not an actuator)"
_TAGGED = "tagged diagnostic by its dialect (linkquality, entity_category, zhc category, chip sensors)"


def _why(note: str | None, prefix: str, default: str) -> str:
    return note.removeprefix(prefix) if note and note.startswith(prefix) else default


class _Router:
    """Which adapters a topic goes to, by their (growing) subscriptions, cached per topic."""

    def __init__(self, adapters: Mapping[str, Adapter]) -> None:
        self.adapters = adapters
        self.filters: dict[str, list[str]] = {name: a.subscriptions() for name, a in adapters.items()}
        self.cache: dict[str, list[tuple[str, Adapter]]] = {}

    def refresh(self, name: str) -> None:
        """Re-read one adapter's subscriptions (they grow as devices are discovered)."""
        filters = self.adapters[name].subscriptions()
        if filters != self.filters[name]:
            self.filters[name] = filters
            self.cache.clear()

    def route(self, topic: str) -> list[tuple[str, Adapter]]:
        """The adapters whose subscriptions match the topic (each once)."""
        hit = self.cache.get(topic)
        if hit is None:
            hit = [
                (name, a)
                for name, a in self.adapters.items()
                if any(topic_matches(f, topic) for f in self.filters[name])
            ]
            self.cache[topic] = hit
        return hit


def normalize(
    items: Iterable[Message | LineRejected],
    discovery: Discovery | None = None,
    named: Mapping[str, Named] | None = None,
    now: datetime = CAPTURE_TIME,
) -> Normalized:
    """Feed every message to the enabled adapters and fold their events through a Registry as the hub does."""
    adapters = build_adapters(discovery or Discovery())
    router = _Router(adapters)
    result = Normalized(Registry(named, auto_adopt=True))
    for item in items:
        if isinstance(item, LineRejected):
            _reject(result, item.reason, f"line {item.line}: {item.detail}")
            continue
        result.messages += 1
        routes = router.route(item.topic)
        if not routes:
            result.unrouted += 1
        for name, adapter in routes:
            try:
                events = adapter.feed(item, now)
            except Rejected as exc:
                _reject(result, f"{name}.{exc.reason}", f"{item.topic}: {exc.detail}")
                continue
            for event in events:
                if isinstance(event, DeviceDiscovered):
                    router.refresh(name)
                result.registry.apply(event)
    return result


def _reject(result: Normalized, reason: str, detail: str) -> None:
    result.rejected[reason] += 1
    result.rejected_examples.setdefault(reason, detail[:160])


# ---------------------------------------------------------------------------------- output


def report_json(result: Normalized) -> dict[str, Any]:
    """The whole result as one JSON-ready document: devices with points and values, and coverage."""
    devices = []
    for dev, values in result.devices():
        devices.append(
            {
                "id": dev.id,
                "name": dev.name,
                "protocol": dev.protocol.value,
                "manufacturer": dev.manufacturer,
                "model": dev.model,
                "identifiers": dev.identifiers,
                "availability": dev.availability.state.value,
                "points": [
                    {
                        "key": p.key,
                        "kind": p.kind.value,
                        "unit": p.unit,
                        "writable": p.writable,
                        "diagnostic": p.diagnostic,
                        "value": values.get(p.key),
                        "source": p.source,
                        "note": p.note,
                    }
                    for p in dev.points
                ],
            }
        )
    return {
        "devices": devices,
        "coverage": result.coverage(),
        "rejected_examples": result.rejected_examples,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def render_text(result: Normalized, *, top: int = 15) -> str:
    """A readable table per device, then the coverage summary."""
    lines: list[str] = []
    for dev, values in result.devices():
        title = f"{dev.id}  {dev.name!r}  [{dev.protocol.value}]  {dev.availability.state.value}"
        lines.append(title)
        lines.append(f"  {'point':<28} {'kind':<16} {'unit':<7} {'w':<2} {'value':<40} note")
        for p in dev.points:
            note = ("diag: " if p.diagnostic else "") + (p.note or "")
            lines.append(
                f"  {p.key[:28]:<28} {p.kind.value:<16} {p.unit or '-':<7} {'w' if p.writable else '-':<2} "
                f"{_cell(values.get(p.key)):<40} {note[:70]}"
            )
        lines.append("")
    c = result.coverage()
    lines += [
        "coverage",
        f"  devices: {c['devices']}   points: {c['points']}   diagnostic (left out): {c['diagnostic']}",
        f"  mapped to a kind: {c['mapped']}/{c['considered']} = {c['ratio']:.1%}   left as other: {c['other']}",
        f"  messages: {c['messages']}   unrouted: {c['unrouted']}   rejected: {c['rejected']}",
    ]
    for title, reasons in (
        ("other, why", c["other_reasons"]),
        ("diagnostic, why", c["diagnostic_reasons"]),
        ("rejected, why", c["rejected_reasons"]),
    ):
        if reasons:
            lines.append(f"  {title}:")
            for reason, n in list(reasons.items())[:top]:
                lines.append(f"    {n:>5}  {reason}")
            if len(reasons) > top:
                lines.append(f"    ({len(reasons) - top} more; --json lists all)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- command


def command(capture: str, config: str | None, as_json: bool, max_bytes: int) -> int:
    """`hub normalize CAPTURE`: print what the hub makes of a capture; exit 2 on an unreadable input."""
    discovery, named = None, None
    if config is not None:
        try:
            cfg = load_config(Path(config))
        except ConfigError as err:
            print(format_problems(err), file=sys.stderr)
            return 2
        discovery = cfg.discovery
        named = {d.id: Named(d.name, d.room, d.role.value if d.role else None) for d in cfg.devices}
    try:
        stream = sys.stdin.buffer if capture == "-" else open(capture, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"hub normalize: cannot read {capture}: {exc.strerror}", file=sys.stderr)
        return 2
    with stream:
        result = normalize(read_capture(stream, max_bytes), discovery, named)
    if as_json:
        print(json.dumps(report_json(result), ensure_ascii=False, indent=1, default=str))
    else:
        print(render_text(result))
    return 0
