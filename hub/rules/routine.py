"""Routine history for `routine_change`: stored rows turned back into activity, and the weekly digest.

Pure functions only: the runtime reads the store off the loop and hands rows here; the rule and
`hub replay` compute the digest from the activity log they keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from hub.api import Language
from hub.model import Value

Category = Literal["bathroom", "kitchen", "exit", "other"]
WEEK = timedelta(days=7)
DIGEST_SPAN = 3 * WEEK  # this week and the previous two
SPAN_SLACK = timedelta(days=1)  # a recording's first day may begin at any hour
FLAG_CHANGE = 0.30  # RULES.md: flag a change of 30 % or more
NIGHT = (time(22, 0), time(6, 0))
DAY_STARTS = time(5, 0)  # the first activity of a day counts from 05:00 (earlier is the night)
MEALS = ((time(6, 0), time(10, 0)), (time(11, 0), time(14, 0)), (time(17, 0), time(20, 0)))
# One trip or one exit is many sensor reports: reports closer than this are the same episode.
EPISODE_GAP: dict[Category, timedelta] = {"bathroom": timedelta(minutes=15), "exit": timedelta(minutes=5)}


class Change(NamedTuple):
    """One point value of a device that changed (or a momentary event), as rules receive them."""

    ts: datetime
    device_id: str
    key: str
    value: Value


def changes(rows: Iterable[tuple[datetime, str, dict[str, Any]]], points: Iterable[Change] = ()) -> list[Change]:
    """Stored merged state rows (and point events) back to what changed, oldest first.

    History rows hold a device's whole merged state, so a row's changes are the keys that differ
    from the device's previous row (the first row of a device counts whole).
    """
    before: dict[str, dict[str, Any]] = {}
    found: list[Change] = list(points)
    for ts, device_id, values in sorted(rows, key=lambda r: r[0]):
        last = before.setdefault(device_id, {})
        found += [Change(ts, device_id, k, v) for k, v in values.items() if k not in last or last[k] != v]
        last.update(values)
    found.sort(key=lambda c: c.ts)
    return found


def point_changes(rows: Iterable[tuple[datetime, str, dict[str, Any]]]) -> list[Change]:
    """Stored point events (ts, device, payload) as changes; payloads without a key are skipped."""
    return [Change(ts, dev, str(p["key"]), p.get("value")) for ts, dev, p in rows if isinstance(p.get("key"), str)]


@dataclass(frozen=True, slots=True)
class Measure:
    """One routine figure: this week's value beside the mean of the two weeks before."""

    name: str
    now: float | None
    before: float | None
    change: float | None  # relative: +0.5 is 50 % more
    flagged: bool


@dataclass(frozen=True, slots=True)
class Digest:
    """The weekly routine digest: four figures compared with the previous two weeks."""

    end: datetime
    measures: tuple[Measure, ...]

    @property
    def flagged(self) -> tuple[Measure, ...]:
        """The figures that changed by 30 % or more."""
        return tuple(m for m in self.measures if m.flagged)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "end": self.end.isoformat(),
            "measures": [
                {"name": m.name, "now": m.now, "before": m.before, "change": m.change, "flagged": m.flagged}
                for m in self.measures
            ],
        }


def _in(t: time, span: tuple[time, time]) -> bool:
    start, end = span
    return start <= t < end if start < end else t >= start or t < end


def _episodes(times: Sequence[datetime], gap: timedelta) -> int:
    count, last = 0, None
    for ts in times:
        if last is None or ts - last > gap:
            count += 1
        last = ts
    return count


def _week(log: Sequence[tuple[datetime, Category]], start: datetime, tz: ZoneInfo) -> dict[str, float | None]:
    end = start + WEEK
    rows = [(ts.astimezone(tz), cat) for ts, cat in log if start <= ts < end]
    night_bath = [ts for ts, cat in rows if cat == "bathroom" and _in(ts.time(), NIGHT)]
    exits = [ts for ts, cat in rows if cat == "exit"]
    first: dict[Any, datetime] = {}
    meals: set[tuple[Any, int]] = set()
    for ts, cat in rows:
        if ts.time() >= DAY_STARTS and ts.date() not in first:
            first[ts.date()] = ts
        if cat == "kitchen":
            meals.update((ts.date(), n) for n, span in enumerate(MEALS) if _in(ts.time(), span))
    minutes = [ts.hour * 60 + ts.minute for ts in first.values()]
    return {
        "night_bathroom_trips": float(_episodes(night_bath, EPISODE_GAP["bathroom"])),
        "first_activity_minute": sum(minutes) / len(minutes) if minutes else None,
        "meals": float(len(meals)),
        "exits": float(_episodes(exits, EPISODE_GAP["exit"])),
    }


def _measure(name: str, now: float | None, weeks: list[float | None]) -> Measure:
    known = [w for w in weeks if w is not None]
    before = sum(known) / len(known) if known else None
    if now is None or before is None:
        return Measure(name, now, before, None, False)
    if before == 0:
        return Measure(name, now, before, None, now != 0)
    change = (now - before) / before
    return Measure(name, now, before, round(change, 3), abs(change) >= FLAG_CHANGE - 1e-9)


def weekly_digest(log: Sequence[tuple[datetime, Category]], end: datetime, tz: ZoneInfo) -> Digest | None:
    """The week before `end` against the two weeks before it; None without three weeks of history."""
    if not log or log[0][0] > end - DIGEST_SPAN + SPAN_SLACK:
        return None
    weeks = [_week(log, end - WEEK * n, tz) for n in (1, 2, 3)]
    names = ("night_bathroom_trips", "first_activity_minute", "meals", "exits")
    return Digest(end, tuple(_measure(n, weeks[0][n], [weeks[1][n], weeks[2][n]]) for n in names))


LABELS: dict[str, dict[Language, str]] = {
    "night_bathroom_trips": {"zh-CN": "夜间如厕次数", "en": "night bathroom trips"},
    "first_activity_minute": {"zh-CN": "每天首次活动时间", "en": "first activity of the day"},
    "meals": {"zh-CN": "用餐（厨房活动）次数", "en": "meals (kitchen use)"},
    "exits": {"zh-CN": "出门次数", "en": "exits"},
}


def _figure(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == "first_activity_minute":
        return f"{int(value) // 60:02d}:{int(value) % 60:02d}"
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def describe(digest: Digest, lang: Language) -> str:
    """The digest's figures in one line of a language (flagged ones marked with their change)."""
    parts = []
    for m in digest.measures:
        text = f"{LABELS[m.name][lang]} {_figure(m.name, m.now)} ({_figure(m.name, m.before)})"
        if m.flagged:
            text += f" {m.change:+.0%}" if m.change is not None else " !"
        parts.append(text)
    return "; ".join(parts)


__all__ = ["Category", "Change", "Digest", "Measure", "changes", "describe", "point_changes", "weekly_digest"]
