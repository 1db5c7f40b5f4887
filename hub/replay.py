"""`hub replay`: run a home's rules over a recording on the simulated clock and show the alerts they raise.

Three formats, told apart by their first line:
- the hub's own `hub export` JSON lines (device, state and event rows);
- recorded MQTT traffic as `hub normalize` reads it (JSON lines with "topic", "payload" and a
  "ts", or `mosquitto_sub -v` lines with a leading ISO time), fed through the dialect adapters;
- CASAS smart-home research data (`date time sensor [sensor2] value [label]`), with a small
  mapping file from sensor names to rooms, kinds and roles.

Installers tune thresholds on a real week this way before going live; the tests use it too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from hub.adapters import build_adapters
from hub.adapters.base import Adapter, Rejected
from hub.api import EVENT_ADAPTER, Language, Severity
from hub.clock import SimClock
from hub.config import Config, Role
from hub.model import (
    Device,
    DeviceAdopted,
    DeviceDiscovered,
    Event,
    Kind,
    Point,
    Protocol,
    StateChanged,
    Status,
    Value,
)
from hub.normalize import LineRejected, parse_line
from hub.registry import Forward, Named, Registry
from hub.rules.effects import Act, AlertChanged
from hub.rules.engine import Engine
from hub.rules.library import RoutineChangeRule
from hub.rules.routine import Digest, describe
from hub.rules.spec import parse_rules
from hub.wire import Message, topic_matches

Format = Literal["export", "mqtt", "casas"]
_TS_KEYS = ("ts", "time", "timestamp")
_CASAS_LINE = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?)\s+(\S+)\s+(.*)$")
_CASAS_VALUES: dict[str, bool] = {"ON": True, "OFF": False, "OPEN": True, "CLOSE": False, "CLOSED": False}


class ReplayError(ValueError):
    """A recording (or mapping file) that cannot be replayed, with the reason."""


# ------------------------------------------------------------------------------ CASAS mapping


class CasasSensor(BaseModel):
    """How one CASAS sensor takes part in the home."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    room: str | None = None
    kind: Kind
    role: Role | None = None
    device: str | None = Field(None, description="Hub device id (default: casas-<sensor>).")


class CasasMap(BaseModel):
    """The mapping file of a CASAS recording: sensors by name, and the recording's time zone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str | None = Field(None, description="Zone of the recording's local times (default: the home's).")
    sensors: dict[str, CasasSensor] = Field(default_factory=dict)
    prefixes: dict[str, Kind] = Field(
        default_factory=lambda: {"M": Kind.MOTION, "MA": Kind.MOTION, "D": Kind.CONTACT, "T": Kind.TEMPERATURE},
        description="Kinds of sensors not listed, by the letters their names start with.",
    )

    def sensor(self, name: str) -> CasasSensor | None:
        """A sensor's mapping: listed, else by its name's prefix (no room)."""
        if name in self.sensors:
            return self.sensors[name]
        prefix = re.match(r"[A-Za-z]+", name)
        kind = self.prefixes.get(prefix.group(0)) if prefix else None
        return CasasSensor(kind=kind) if kind else None


def load_casas_map(path: Path) -> CasasMap:
    """Read a CASAS mapping file (YAML or JSON)."""
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        return CasasMap.model_validate(data or {})
    except (OSError, YAMLError) as exc:
        raise ReplayError(f"cannot read the mapping file {path}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ReplayError(f"{path}: {where}: {first['msg']}") from None


def casas_device_id(name: str, sensor: CasasSensor) -> str:
    """The hub id of a CASAS sensor."""
    return sensor.device or f"casas-{name.lower()}"


# ------------------------------------------------------------------------------ recordings


@dataclass(slots=True)
class Recording:
    """Devices known before the first event, then timed items: events, or MQTT messages for the adapters."""

    format: Format
    devices: list[Device] = field(default_factory=list)
    items: list[tuple[datetime, Event | Message]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def detect(first_line: str) -> Format:
    """The format of a recording from its first non-blank line."""
    text = first_line.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ReplayError("the first line looks like JSON but is not") from None
        if isinstance(data, dict) and "table" in data:
            return "export"
        return "mqtt"
    if _CASAS_LINE.match(text) and not re.match(r"^\S+T\S+\s+\S*/", text):
        return "casas"
    return "mqtt"


def _aware(text: str, tz: ZoneInfo) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo else ts.replace(tzinfo=tz)


def read_export(lines: Iterable[str]) -> Recording:
    """A `hub export` file: devices, then their state rows (as changes) and events, in time order."""
    rec = Recording("export")
    merged: dict[str, dict[str, Value]] = {}
    rows: list[tuple[datetime, int, Event]] = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            table = row.get("table")
            if table == "device":
                rec.devices.append(Device.model_validate(row["description"]))
            elif table == "state":
                ts = datetime.fromisoformat(row["ts"])
                rows.append((ts, n, StateChanged(ts=ts, device_id=row["device_id"], values=row["values"])))
            elif table == "event":
                event = EVENT_ADAPTER.validate_python(row["payload"])
                if not isinstance(event, DeviceDiscovered | DeviceAdopted):
                    rows.append((event.ts, n, event))
            else:
                rec.skipped[f"table.{table}"] += 1
        except (ValueError, KeyError, TypeError, ValidationError):
            rec.skipped["bad_line"] += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    for ts, _, event in rows:
        if isinstance(event, StateChanged):
            # History rows hold the merged state; the rules want what changed.
            before = merged.setdefault(event.device_id, {})
            changed = {k: v for k, v in event.values.items() if before.get(k, _MISSING) != v}
            before.update(event.values)
            if not changed:
                continue
            event = event.model_copy(update={"values": changed})
        rec.items.append((ts, event))
    return rec


_MISSING = object()


def read_mqtt(lines: Iterable[str], tz: ZoneInfo) -> Recording:
    """Recorded MQTT traffic: JSON lines with a "ts", or `<ISO time> <topic> <payload>` lines."""
    rec = Recording("mqtt")
    last: datetime | None = None
    for n, line in enumerate(lines, start=1):
        raw = line.rstrip("\r\n")
        if not raw.strip() or raw.startswith("#"):
            continue
        ts: datetime | None = None
        if raw.lstrip().startswith("{"):
            try:
                stamp = next((v for k, v in json.loads(raw).items() if k in _TS_KEYS), None)
                ts = _aware(str(stamp), tz) if stamp is not None else None
            except (ValueError, AttributeError):
                rec.skipped["bad_time"] += 1
                continue
        else:
            head, _, rest = raw.partition(" ")
            try:
                ts = _aware(head, tz)
                raw = rest
            except ValueError:
                ts = None
        parsed = parse_line(raw.encode("utf-8", "surrogatepass"), n)
        if parsed is None:
            continue
        if isinstance(parsed, LineRejected):
            rec.skipped[parsed.reason] += 1
            continue
        ts = ts or last
        if ts is None:
            rec.skipped["no_time"] += 1
            continue
        last = ts
        rec.items.append((ts.astimezone(UTC), parsed))
    return rec


def read_casas(lines: Iterable[str], mapping: CasasMap, tz: ZoneInfo) -> Recording:
    """CASAS lines `date time sensor [sensor2] value [label]` with the sensors' mapping."""
    rec = Recording("casas")
    zone = ZoneInfo(mapping.timezone) if mapping.timezone else tz
    known: dict[str, Device] = {}
    for line in lines:
        m = _CASAS_LINE.match(line.strip())
        if not m:
            if line.strip():
                rec.skipped["bad_line"] += 1
            continue
        day, clock, name, rest = m.groups()
        sensor = mapping.sensor(name)
        if sensor is None:
            rec.skipped[f"unmapped.{name}"] += 1
            continue
        words = rest.split()
        # An optional second sensor name comes before the value; labels come after it.
        value_word = words[1] if len(words) > 1 and mapping.sensor(words[0]) is not None else words[0]
        value = _casas_value(value_word, sensor.kind)
        if value is None:
            rec.skipped["bad_value"] += 1
            continue
        ts = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=zone).astimezone(UTC)
        dev_id = casas_device_id(name, sensor)
        if dev_id not in known:
            known[dev_id] = Device(
                id=dev_id,
                name=name,
                protocol=Protocol.CONFIG,
                room=sensor.room,
                role=sensor.role.value if sensor.role else None,
                status=Status.ADOPTED,
                points=(Point(key=sensor.kind.value, kind=sensor.kind),),
            )
        rec.items.append((ts, StateChanged(ts=ts, device_id=dev_id, values={sensor.kind.value: value})))
    rec.devices = list(known.values())
    rec.items.sort(key=lambda item: item[0])
    return rec


def _casas_value(word: str, kind: Kind) -> Value:
    if word.upper() in _CASAS_VALUES:
        return _CASAS_VALUES[word.upper()]
    try:
        number = float(word)
    except ValueError:
        return None
    return number if kind not in (Kind.MOTION, Kind.CONTACT) else number > 0


def read(path: Path, config: Config, casas_map: Path | None = None, fmt: Format | None = None) -> Recording:
    """Read a recording in any of the three formats (detected unless given)."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror}") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not line.startswith("#")), "")
    if not first:
        raise ReplayError(f"{path} holds no recording")
    fmt = fmt or detect(first)
    tz = ZoneInfo(config.home.timezone)
    if fmt == "export":
        return read_export(lines)
    if fmt == "casas":
        if casas_map is None:
            raise ReplayError("a CASAS recording needs --map FILE: which sensor is which room, kind and role")
        return read_casas(lines, load_casas_map(casas_map), tz)
    return read_mqtt(lines, tz)


# ------------------------------------------------------------------------------ running


@dataclass(slots=True)
class Raised:
    """One alert the rules raised (or made worse) during the replay, and how it ended."""

    at: datetime
    alert_id: str
    rule_id: str
    kind: str
    room: str | None
    severity: Severity
    event: str  # raised or severity_raised
    message: dict[Language, str]
    state: str
    count: int


@dataclass(slots=True)
class Result:
    """What a replay found."""

    alerts: list[Raised] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    events: int = 0
    start: datetime | None = None
    end: datetime | None = None
    skipped: Counter[str] = field(default_factory=Counter)
    digests: dict[str, Digest] = field(default_factory=dict)  # routine_change rule -> its last week

    def summary(self) -> dict[str, dict[str, int]]:
        """Per rule: alerts by severity and actions taken."""
        out: dict[str, dict[str, int]] = {}
        for a in self.alerts:
            row = out.setdefault(a.rule_id, {})
            row[a.severity] = row.get(a.severity, 0) + 1
            row["alerts"] = row.get("alerts", 0) + (a.event == "raised")
        for rule_id, n in self.actions.items():
            out.setdefault(rule_id, {})["actions"] = n
        return dict(sorted(out.items()))


class _Feeder:
    """MQTT messages through the adapters (as the hub routes them), events straight to the registry."""

    def __init__(self, config: Config, registry: Registry) -> None:
        self.adapters: Mapping[str, Adapter] = build_adapters(config.discovery)
        self.registry = registry
        self.routes: dict[str, list[Adapter]] = {}
        self.skipped: Counter[str] = Counter()

    def events(self, item: Event | Message, ts: datetime) -> Iterator[Event]:
        if not isinstance(item, Message):
            yield from self._apply(item)
            return
        routes = self.routes.get(item.topic)
        if routes is None:
            routes = [a for a in self.adapters.values() if any(topic_matches(f, item.topic) for f in a.subscriptions())]
            self.routes[item.topic] = routes
        if not routes:
            self.skipped["unrouted"] += 1
        for adapter in routes:
            try:
                produced = adapter.feed(item, ts)
            except Rejected as exc:
                self.skipped[f"{adapter.name}.{exc.reason}"] += 1
                continue
            for event in produced:
                if isinstance(event, DeviceDiscovered):
                    self.routes.clear()  # subscriptions may have grown
                yield from self._apply(event)

    def _apply(self, event: Event) -> Iterator[Event]:
        for effect in self.registry.apply(event):
            if isinstance(effect, Forward):
                yield effect.event


async def run(config: Config, recording: Recording, *, all_devices: bool = False) -> Result:
    """Run the config's rules over a recording on a simulated clock; the alerts they would raise."""
    result = Result(skipped=Counter(recording.skipped))
    if not recording.items:
        return result
    named = {d.id: Named(d.name, d.room, d.role.value if d.role else None) for d in config.devices}
    registry = Registry(named, auto_adopt=all_devices)
    # Devices the recording knows are adopted as they were (export) or by the mapping (CASAS).
    registry.decisions.update({d.id: d.status for d in recording.devices if d.status is not Status.PENDING})
    start = recording.items[0][0]
    registry.seed(recording.devices, {})
    clock = SimClock(start)
    engine = Engine(config, parse_rules(config), registry, now=start, notify=False, views=False)
    engine.start()
    feeder = _Feeder(config, registry)
    by_id: dict[str, list[Raised]] = {}
    result.start = start
    for ts, item in recording.items:
        if ts > clock.now():
            await clock.advance_to(ts)
            engine.advance(ts)
        for event in feeder.events(item, ts):
            result.events += 1
            engine.feed(event)
        if engine.out:
            _collect(engine, result, by_id)
    end = recording.items[-1][0]
    engine.advance(end)
    _collect(engine, result, by_id)
    result.end = end
    for rule in engine.rules.values():
        if isinstance(rule, RoutineChangeRule) and (digest := rule.digest(end)) is not None:
            result.digests[rule.id] = digest
    result.skipped.update(feeder.skipped)
    return result


def _collect(engine: Engine, result: Result, by_id: dict[str, list[Raised]]) -> None:
    for effect in engine.drain():
        if isinstance(effect, Act):
            result.actions[effect.rule_id] += 1
            continue
        if not isinstance(effect, AlertChanged):
            continue
        view = effect.view
        for audit in effect.audits:
            if audit.transition in ("raised", "severity_raised"):
                row = Raised(
                    at=audit.ts,
                    alert_id=view.id,
                    rule_id=view.rule_id,
                    kind=view.rule_kind,
                    room=view.room,
                    severity=view.severity,
                    event=audit.transition,
                    message=dict(view.message),
                    state=view.state,
                    count=view.count,
                )
                result.alerts.append(row)
                by_id.setdefault(view.id, []).append(row)
        for row in by_id.get(view.id, ()):
            row.state, row.count = view.state, view.count


# ------------------------------------------------------------------------------ output


def as_json_lines(result: Result) -> Iterator[str]:
    """One JSON line per alert, then one with the summary."""
    for a in result.alerts:
        yield json.dumps(
            {
                "ts": a.at.isoformat(),
                "alert_id": a.alert_id,
                "rule_id": a.rule_id,
                "kind": a.kind,
                "room": a.room,
                "severity": a.severity,
                "event": a.event,
                "state": a.state,
                "count": a.count,
                "message": a.message,
            },
            ensure_ascii=False,
        )
    yield json.dumps(
        {
            "summary": result.summary(),
            "events": result.events,
            "start": result.start.isoformat() if result.start else None,
            "end": result.end.isoformat() if result.end else None,
            "skipped": dict(result.skipped),
            "digests": {rule_id: d.as_dict() for rule_id, d in result.digests.items()},
        },
        ensure_ascii=False,
    )


def as_table(result: Result, tz: ZoneInfo, lang: Language) -> str:
    """A readable table of the alerts and a summary per rule."""
    lines = [f"{'local time':<17} {'rule':<22} {'room':<12} {'severity':<9} {'ended':<22} message"]
    for a in result.alerts:
        worse = "↑ " if a.event == "severity_raised" else ""
        lines.append(
            f"{a.at.astimezone(tz):%Y-%m-%d %H:%M} {a.rule_id[:22]:<22} {(a.room or '-')[:12]:<12} "
            f"{worse + a.severity:<9} {a.state:<22} {a.message.get(lang, '')}"
        )
    span = ""
    if result.start and result.end:
        days = (result.end - result.start) / timedelta(days=1)
        span = f" over {days:.1f} days ({result.start.astimezone(tz):%Y-%m-%d} → {result.end.astimezone(tz):%Y-%m-%d})"
    lines += ["", f"{result.events} events{span}; {len(result.alerts)} alert rows", "per rule:"]
    for rule_id, row in result.summary().items():
        parts = [f"{k} {v}" for k, v in row.items()]
        lines.append(f"  {rule_id:<24} {', '.join(parts)}")
    for rule_id, digest in result.digests.items():
        lines.append(f"weekly digest of {rule_id} (last 7 days; the 2 weeks before in brackets):")
        lines.append(f"  {describe(digest, lang)}")
    if result.skipped:
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in result.skipped.most_common(10)))
    return "\n".join(lines)


def command(
    config: Config,
    path: Path,
    *,
    as_json: bool,
    casas_map: Path | None,
    fmt: Format | None,
    lang: Language | None,
    all_devices: bool,
) -> tuple[int, str]:
    """`hub replay`: the exit code and the text to print."""
    try:
        recording = read(path, config, casas_map, fmt)
    except ReplayError as exc:
        return 2, f"hub replay: {exc}"
    result = asyncio.run(run(config, recording, all_devices=all_devices))
    if as_json:
        return 0, "\n".join(as_json_lines(result))
    return 0, as_table(result, ZoneInfo(config.home.timezone), lang or config.home.language)


__all__: list[str] = ["Raised", "Recording", "ReplayError", "Result", "command", "read", "run"]
