"""The home's activity summary (`hub/<home>/activity`): today's and yesterday's activity, kept by the hub.

Built from the store's history when the hub starts and updated from every forwarded event, so
that a caregiver who opens the TUI in the afternoon sees the whole day, not only what happened
since. Pure summary function + a thin async shell that publishes it retained.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from hub.api import ActivitySummary, DayActivity, Topics
from hub.clock import Clock
from hub.model import Device, Event, PointEvent, StateChanged, Value
from hub.mqtt import Link
from hub.signs import NIGHT_START, is_activity, is_bathroom, is_night, night_visits
from hub.store import Store, StoreError

log = logging.getLogger(__name__)

PUBLISH_EVERY = 5.0  # seconds: at most one retained publish this often (and at each day change)
MAX_MARKS = 200_000  # activity marks kept (two and a half days of a very busy home)

Mark = tuple[datetime, str]  # (aware time, room) of one activity
Row = tuple[datetime, str, dict[str, Any]]  # a stored (ts, device id, values or event payload)


def summarize(marks: Iterable[Mark], now: datetime, tz: tzinfo, tz_name: str) -> ActivitySummary:
    """Today's and yesterday's (local) hourly counts per room, night bathroom visits and first activity."""
    today = now.astimezone(tz).date()
    days = (today - timedelta(days=1), today)
    rooms: dict[date, dict[str, list[int]]] = {d: {} for d in days}
    first: dict[date, datetime] = {}
    bathroom: list[datetime] = []
    for ts, room in marks:
        local = ts.astimezone(tz)
        day = local.date()
        if is_bathroom(room):
            bathroom.append(local)
        if day not in rooms:
            continue
        rooms[day].setdefault(room, [0] * 24)[local.hour] += 1
        if not is_night(local) and (day not in first or local < first[day]):
            first[day] = local
    bathroom.sort()
    out = {
        d: DayActivity(rooms=rooms[d], night_bathroom_visits=night_visits(bathroom, d), first_activity=first.get(d))
        for d in days
    }
    return ActivitySummary(ts=now, timezone=tz_name, days=out)


class ActivityBook:
    """Activity marks of the last days, fed by the store's history and by forwarded events."""

    def __init__(self, timezone: str, device: Callable[[str], Device | None], clock: Clock) -> None:
        self.tz_name, self.tz = timezone, ZoneInfo(timezone)
        self.device = device
        self.clock = clock
        self.marks: deque[Mark] = deque(maxlen=MAX_MARKS)
        # (device, key) -> whether its last stored value meant activity (for rising edges).
        self._on: dict[tuple[str, str], bool] = {}
        self.dirty = True
        self.published = 0
        self.failures = 0  # history reads that failed

    def _state(self, ts: datetime, device_id: str, values: dict[str, Any]) -> None:
        # A stored row holds the merged state (every point), so only a rising edge counts.
        device = self.device(device_id)
        for key, value in values.items():
            now_on = is_activity(device, key, value)
            was_on = self._on.get((device_id, key), False)
            self._on[(device_id, key)] = now_on
            if now_on and not was_on and device is not None and device.room is not None:
                self.marks.append((ts, device.room))
                self.dirty = True

    def _momentary(self, ts: datetime, device_id: str, key: str, value: Value) -> None:
        device = self.device(device_id)
        if is_activity(device, key, value) and device is not None and device.room is not None:
            self.marks.append((ts, device.room))
            self.dirty = True

    def load(self, states: Iterable[Row], points: Iterable[Row]) -> None:
        """Replay stored history, oldest first: state rows (ts, device, values) and point_event payloads."""
        rows = [(ts, True, dev, data) for ts, dev, data in states] + [(ts, False, dev, d) for ts, dev, d in points]
        rows.sort(key=lambda row: row[0])
        for ts, is_state, device_id, data in rows:
            if is_state:
                self._state(ts, device_id, data)
            elif isinstance(data.get("key"), str):
                self._momentary(ts, device_id, data["key"], data.get("value"))

    def listener(self, event: Event) -> None:
        """Count one forwarded event (the hub calls this for every event)."""
        # A live StateChanged carries only what changed: each activity value in it counts, as in the TUI.
        if isinstance(event, StateChanged):
            for key, value in event.values.items():
                self._on[(event.device_id, key)] = is_activity(self.device(event.device_id), key, value)
                self._momentary(event.ts, event.device_id, key, value)
        elif isinstance(event, PointEvent):
            self._momentary(event.ts, event.device_id, event.key, event.value)

    def since(self) -> datetime:
        """The start of yesterday's night (local 22:00 two days ago), where history is read from."""
        today = self.clock.now().astimezone(self.tz).date()
        return datetime.combine(today - timedelta(days=2), NIGHT_START, self.tz).astimezone(UTC)

    def summary(self) -> ActivitySummary:
        """The summary now."""
        return summarize(self.marks, self.clock.now(), self.tz, self.tz_name)

    async def restore(self, store: Store, device_ids: Collection[str]) -> None:
        """Load these devices' history since yesterday's night from the store (a failure starts empty, logged)."""
        try:
            states, points = await asyncio.to_thread(store.device_history_since, device_ids, self.since())
        except (StoreError, SQLAlchemyError) as exc:
            self.failures += 1
            log.error("activity: history could not be read, starting from now: %s", exc)
            return
        self.load(states, points)
        log.info("activity: %d marks restored from %d history rows", len(self.marks), len(states) + len(points))

    async def run(self, link: Link, topics: Topics) -> None:
        """Publish the summary retained when it changed (at most every PUBLISH_EVERY s) and at each day change."""
        await link.wait_connected(timeout=None)
        day: date | None = None
        while True:
            today = self.clock.now().astimezone(self.tz).date()
            if self.dirty or today != day:
                self.dirty, day = False, today
                await link.set_retained(topics.activity, self.summary().model_dump_json().encode())
                self.published += 1
            await self.clock.sleep(PUBLISH_EVERY)
