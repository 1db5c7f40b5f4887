"""Signs of life: which point values mean a person did something, which rooms are bathrooms, when it is night.

One vocabulary for the hub's activity book (hub.activity) and the caregiver TUI's live view
(hub.tui.state), which merges live events onto what the hub publishes: they must agree.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from hub.model import Device, Kind, Value

# Kinds whose "true"/"on" value means a person did something in that room.
ACTIVITY_KINDS = frozenset({Kind.MOTION, Kind.OCCUPANCY, Kind.PRESENCE, Kind.CONTACT, Kind.BUTTON, Kind.SOS})
NIGHT_START, NIGHT_END = time(22, 0), time(7, 0)  # RULES.md's night for bathroom visits
VISIT_GAP = timedelta(minutes=10)  # bathroom activity closer than this is one visit
BATHROOM_WORDS = ("bath", "toilet", "wc", "卫生间", "浴室", "厕所")


def is_activity(device: Device | None, key: str, value: Value) -> bool:
    """Whether a value of a device's point means a person did something in its room."""
    if device is None or device.room is None:
        return False
    point = device.point(key)
    return point is not None and point.kind in ACTIVITY_KINDS and bool(value)


def is_bathroom(room: str) -> bool:
    """Whether a room id or name is a bathroom (for night visits)."""
    low = room.lower()
    return any(word in low for word in BATHROOM_WORDS)


def is_night(moment: datetime) -> bool:
    """Whether a local time falls in the night window (22:00–07:00)."""
    t = moment.time()
    return t >= NIGHT_START or t < NIGHT_END


def night_visits(times: list[datetime], night_of: date) -> list[datetime]:
    """Starts of bathroom visits (local times) in the night that ends on `night_of` (22:00 the day before to 07:00)."""
    start = datetime.combine(night_of - timedelta(days=1), NIGHT_START)
    end = datetime.combine(night_of, NIGHT_END)
    visits: list[datetime] = []
    last: datetime | None = None
    for t in sorted(t for t in times if start <= t.replace(tzinfo=None) < end):
        if last is None or t - last > VISIT_GAP:
            visits.append(t)
        last = t
    return visits
