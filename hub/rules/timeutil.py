"""Durations and daily time windows in the home's time zone, including windows that cross midnight."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|s)")
_HHMM = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)")
# A deadline that never comes: how a stored setting (a mode without end, a rule's switch) is kept
# in the timer table without ever firing.
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


def parse_duration(value: Any) -> timedelta:
    """'240m', '2h30m', '45s', '1.5h' or a number of minutes, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration should be a number of minutes or text like '20m', '2h', '30s'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(minutes=value)
    if not isinstance(value, str):
        raise ValueError("a duration should be a number of minutes or text like '20m', '2h', '30s'")
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not text or "".join(f"{n}{u}" for n, u in parts) != text:
        raise ValueError(f"'{value}' is not a duration: write e.g. '20m', '2h', '1h30m', '45s' or '2d'")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def format_duration(delta: timedelta) -> str:
    """A timedelta as the shortest text parse_duration reads back ('4h', '90s', '1h30m')."""
    seconds = int(delta.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": ["string", "number"], "description": "'20m', '2h', '30s', or minutes"}),
]


def _parse_hhmm(text: str) -> time:
    m = _HHMM.fullmatch(text.strip())
    if not m or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"'{text}' is not a time of day: write HH:MM, e.g. '07:00' or '22:30'")
    hour, minute = int(m.group(1)), int(m.group(2))
    return time(0, 0) if hour == 24 else time(hour, minute)


@dataclass(frozen=True, slots=True)
class Window:
    """A daily window of local time, e.g. 22:00-07:00 (crosses midnight) or 00:00-24:00 (always)."""

    start: time
    end: time
    text: str

    @classmethod
    def parse(cls, value: Any) -> Window:
        """'HH:MM-HH:MM' or 'always' as a Window."""
        if isinstance(value, Window):
            return value
        if not isinstance(value, str):
            raise ValueError("a time window should be text like '22:00-07:00' or 'always'")
        if value.strip().lower() in ("always", "00:00-24:00"):
            return cls(time(0), time(0), "always")
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError(f"'{value}' is not a time window: write 'HH:MM-HH:MM', e.g. '22:00-07:00'")
        a, b = _parse_hhmm(start), _parse_hhmm(end)
        if a == b:
            raise ValueError(f"'{value}' starts and ends at the same time: use 'always' for all day")
        return cls(a, b, f"{a:%H:%M}-{b:%H:%M}")

    @property
    def always(self) -> bool:
        """Whether the window covers the whole day."""
        return self.start == self.end

    def contains(self, ts: datetime, tz: ZoneInfo) -> bool:
        """Whether this moment is inside the window, in the home's local time."""
        if self.always:
            return True
        t = ts.astimezone(tz).time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def occurrence(self, ts: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        """(start, end) of the occurrence of the window that holds this moment, or None."""
        if self.always:
            day = ts.astimezone(tz).date()
            return at_local(day, time(0), tz), at_local(day + timedelta(days=1), time(0), tz)
        if not self.contains(ts, tz):
            return None
        local = ts.astimezone(tz)
        day = local.date()
        if self.start > self.end and local.time() < self.end:
            day -= timedelta(days=1)  # the night that began yesterday
        start = at_local(day, self.start, tz)
        end_day = day + timedelta(days=1) if self.start >= self.end else day
        return start, at_local(end_day, self.end, tz)

    def next_start(self, ts: datetime, tz: ZoneInfo) -> datetime:
        """The first start of the window strictly after this moment."""
        day = ts.astimezone(tz).date()
        for offset in range(3):
            start = at_local(day + timedelta(days=offset), self.start, tz)
            if start > ts:
                return start
        raise AssertionError("a daily window starts within two days")  # pragma: no cover

    def __str__(self) -> str:
        return self.text


WindowField = Annotated[
    Window,
    BeforeValidator(Window.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(always|\d\d:\d\d-\d\d:\d\d)$"}),
]
TimeOfDay = Annotated[
    time,
    BeforeValidator(lambda v: _parse_hhmm(v) if isinstance(v, str) else v),
    PlainSerializer(lambda t: f"{t:%H:%M}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d\d:\d\d$"}),
]


def at_local(day: date, t: time, tz: ZoneInfo) -> datetime:
    """The UTC moment of a local date and time in the home's zone."""
    return datetime.combine(day, t, tzinfo=tz).astimezone(UTC)


def next_local(ts: datetime, t: time, tz: ZoneInfo) -> datetime:
    """The first moment strictly after ts when the local clock shows t."""
    day = ts.astimezone(tz).date()
    for offset in range(3):
        moment = at_local(day + timedelta(days=offset), t, tz)
        if moment > ts:
            return moment
    raise AssertionError("a time of day comes back within two days")  # pragma: no cover


def window_deadline(last: datetime, duration: timedelta, window: Window, tz: ZoneInfo) -> datetime:
    """When a silence that began at `last` has lasted `duration` inside one occurrence of the window.

    The count starts at `last`, or at the window's start when `last` is outside it; a silence that
    cannot fit in what is left of an occurrence is counted again from the next start.
    """
    if window.always:
        return last + duration
    start = last if window.contains(last, tz) else window.next_start(last, tz)
    for _ in range(4):
        occurrence = window.occurrence(start, tz)
        assert occurrence is not None
        if start + duration <= occurrence[1]:
            return start + duration
        start = window.next_start(occurrence[1] - timedelta(microseconds=1), tz)
    # Longer than the window itself: it can only be reached across windows.
    return start + duration


def local_hhmm(ts: datetime, tz: ZoneInfo) -> str:
    """The local time of day as HH:MM."""
    return f"{ts.astimezone(tz):%H:%M}"
