"""What the TUI knows about one or more homes, built only from hub API messages (pure, no Textual)."""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from pydantic import BaseModel, ValidationError

from hub.api import EVENT_ADAPTER, ActivitySummary, AlertView, DeviceState, HubStatus, ModeState, RuleView
from hub.model import Device, PointEvent, StateChanged, Value
from hub.signs import is_activity, is_bathroom, is_night

log = logging.getLogger(__name__)

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
HISTORY_PER_DEVICE = 20  # recent values kept for a device's detail view
ACTIVITY_DAYS = 2  # today and yesterday


@dataclass
class Home:
    """One home's hub API state as last seen on the broker."""

    home_id: str
    status: HubStatus | None = None
    mode: ModeState | None = None
    devices: dict[str, Device] = field(default_factory=dict)
    states: dict[str, DeviceState] = field(default_factory=dict)
    inbox: dict[str, Device] = field(default_factory=dict)
    alerts: dict[str, AlertView] = field(default_factory=dict)
    rules: dict[str, RuleView] = field(default_factory=dict)
    history: dict[str, deque[tuple[datetime, str, Value]]] = field(default_factory=dict)
    # (room, local date, hour) -> activity count, for today's and yesterday's strips.
    activity: Counter[tuple[str, date, int]] = field(default_factory=Counter)
    # Local times of activity in bathrooms, for night visits (bounded to ACTIVITY_DAYS).
    bathroom: deque[datetime] = field(default_factory=lambda: deque(maxlen=5000))
    first_activity: dict[date, datetime] = field(default_factory=dict)
    activity_as_of: datetime | None = None  # the hub's last activity summary (history before this TUI started)

    def sorted_alerts(self) -> list[AlertView]:
        """Open alerts, most severe first, then oldest first."""
        return sorted(self.alerts.values(), key=alert_key)

    def critical_unacknowledged(self) -> list[AlertView]:
        """Critical alerts nobody has acknowledged yet (the banner)."""
        return [a for a in self.sorted_alerts() if a.severity == "critical" and a.acknowledged_at is None]


def alert_key(alert: AlertView) -> tuple[int, datetime, str]:
    """Sort key of an alert: severity, then raised time, then id (a stable order)."""
    return (SEVERITY_RANK.get(alert.severity, 9), alert.raised_at, alert.id)


@dataclass
class Problems:
    """Messages the TUI could not read, counted by reason (never a crash)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, topic: str, detail: str) -> None:
        """Count one unreadable message and log it the first time its reason is seen."""
        self.counts[reason] += 1
        if self.counts[reason] == 1:
            log.warning("TUI: ignored a message on %s (%s): %s", topic, reason, detail)


def _parse(model: type[BaseModel], payload: bytes) -> Any:
    return model.model_validate_json(payload)


# (topic pattern below the home root, section it changes, handler)
Section = str
Apply = Callable[[Home, list[str], bytes, tzinfo], None]


def _status(home: Home, _p: list[str], payload: bytes, _tz: tzinfo) -> None:
    home.status = _parse(HubStatus, payload) if payload else None


def _mode(home: Home, _p: list[str], payload: bytes, _tz: tzinfo) -> None:
    home.mode = _parse(ModeState, payload) if payload else None


def _keyed(attr: str, model: type[BaseModel]) -> Apply:
    def apply(home: Home, parts: list[str], payload: bytes, _tz: tzinfo) -> None:
        table: dict[str, Any] = getattr(home, attr)
        if not payload:  # an empty retained payload clears the item (closed alert, moved device)
            table.pop(parts[1], None)
        else:
            table[parts[1]] = _parse(model, payload)

    return apply


def _event(home: Home, _p: list[str], payload: bytes, tz: tzinfo) -> None:
    event = EVENT_ADAPTER.validate_json(payload)
    if isinstance(event, StateChanged):
        keep = home.history.setdefault(event.device_id, deque(maxlen=HISTORY_PER_DEVICE))
        for key, value in event.values.items():
            keep.append((event.ts, key, value))
            if is_activity(home.devices.get(event.device_id), key, value):
                record_activity(home, home.devices[event.device_id].room, event.ts, tz)
    elif isinstance(event, PointEvent):
        device = home.devices.get(event.device_id)
        if is_activity(device, event.key, True) and device is not None:
            record_activity(home, device.room, event.ts, tz)


def _activity(home: Home, _p: list[str], payload: bytes, tz: tzinfo) -> None:
    # The hub's summary counts every event it forwarded before summary.ts, including those this
    # TUI already counted live: it replaces the live tallies, and later events add to it.
    summary = ActivitySummary.model_validate_json(payload)
    home.activity = Counter(
        {
            (room, day, hour): count
            for day, d in summary.days.items()
            for room, counts in d.rooms.items()
            for hour, count in enumerate(counts[:24])
            if count
        }
    )
    home.first_activity = {day: d.first_activity.astimezone(tz) for day, d in summary.days.items() if d.first_activity}
    visits = (v.astimezone(tz) for d in summary.days.values() for v in d.night_bathroom_visits)
    home.bathroom = deque(visits, maxlen=home.bathroom.maxlen)
    home.activity_as_of = summary.ts


ROUTES: list[tuple[tuple[str, ...], Section, Apply]] = [
    (("activity",), "events", _activity),
    (("status",), "status", _status),
    (("mode",), "mode", _mode),
    (("events",), "events", _event),
    (("devices", "+"), "devices", _keyed("devices", Device)),
    (("devices", "+", "state"), "devices", _keyed("states", DeviceState)),
    (("inbox", "+"), "inbox", _keyed("inbox", Device)),
    (("alerts", "+"), "alerts", _keyed("alerts", AlertView)),
    (("rules", "+"), "rules", _keyed("rules", RuleView)),
]


def _route(parts: list[str]) -> tuple[Section, Apply] | None:
    for pattern, section, apply in ROUTES:
        if len(pattern) == len(parts) and all(p in ("+", s) for p, s in zip(pattern, parts, strict=True)):
            return section, apply
    return None


def apply_message(
    home: Home, rel_topic: str, payload: bytes, tz: tzinfo, problems: Problems | None = None
) -> Section | None:
    """Apply one API message (topic below the home root) to a home; the section that changed, or None."""
    parts = rel_topic.split("/")
    routed = _route(parts)
    if routed is None:
        return None  # requests (…/ack, …/set) and topics the TUI does not show
    section, apply = routed
    try:
        apply(home, parts, payload, tz)
    except (ValidationError, ValueError) as exc:
        if problems is not None:
            problems.add("invalid_payload", rel_topic, str(exc).splitlines()[0])
        return None
    if section == "devices" and parts[1] in home.inbox and parts[1] in home.devices:
        home.inbox.pop(parts[1], None)  # adopted: the hub clears the inbox copy too, maybe later
    return section


def record_activity(home: Home, room: str | None, ts: datetime, tz: tzinfo) -> None:
    """Count one activity at a UTC time in a room, by local day and hour."""
    if room is None:
        return
    local = ts.astimezone(tz)
    day = local.date()
    home.activity[(room, day, local.hour)] += 1
    if not is_night(local) and (day not in home.first_activity or local < home.first_activity[day]):
        home.first_activity[day] = local
    if is_bathroom(room):
        home.bathroom.append(local)
    # Forget days older than the strips show; bounded however long the TUI runs.
    oldest = day - timedelta(days=ACTIVITY_DAYS)
    if len(home.activity) > 24 * 64 * ACTIVITY_DAYS:
        for k in [k for k in home.activity if k[1] <= oldest]:
            del home.activity[k]


def hour_counts(home: Home, room: str, day: date) -> list[int]:
    """Activity count per local hour (24 values) of a room on a day."""
    return [home.activity.get((room, day, h), 0) for h in range(24)]


def activity_rooms(home: Home) -> list[str]:
    """Rooms that have devices or activity, in first-seen order."""
    rooms = dict.fromkeys(d.room for d in home.devices.values() if d.room)
    rooms.update(dict.fromkeys(k[0] for k in home.activity))
    return list(rooms)


@dataclass
class Fleet:
    """Several homes seen on a central broker (`hub tui --fleet`)."""

    homes: dict[str, Home] = field(default_factory=dict)

    def home(self, home_id: str) -> Home:
        """The home with this id, created on first sight."""
        return self.homes.setdefault(home_id, Home(home_id))


def split_topic(topic: str, prefix: str) -> tuple[str, str] | None:
    """`hub/<home>/<rest>` -> (home, rest), or None for other topics."""
    head, _, rest = topic.partition("/")
    if head != prefix:
        return None
    home, _, rel = rest.partition("/")
    return (home, rel) if home and rel else None


def load_recorded(text: str) -> list[tuple[str, bytes]]:
    """Recorded API messages (JSON lines of {"topic", "payload"}) as (topic, payload bytes)."""
    out: list[tuple[str, bytes]] = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            payload = row["payload"]
            out.append((row["topic"], b"" if payload is None else json.dumps(payload).encode()))
    return out
