"""The one source of time: a real clock, and a simulated clock for replay and tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What every part of the hub asks for the time and for waiting."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait this long on this clock."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Wait until this moment on this clock (at once when it has passed)."""
        ...


class RealClock:
    """Wall-clock time; waits are asyncio sleeps."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait this long."""
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: datetime) -> None:
        """Wait until this moment; re-checks so that a clock jump never fires a deadline early."""
        while (left := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110 - a deadline, not an event
            # Sleep in bounded steps: a suspended box or an NTP step would otherwise leave
            # a long sleep far off its deadline.
            await asyncio.sleep(min(left, 60.0))


class SimClock:
    """Simulated time that moves only when told to: replay a month in seconds, test rules exactly."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware start")
        self._now = start
        self._seq = itertools.count()
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """The simulated current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait this long in simulated time."""
        await self.sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, when: datetime) -> None:
        """Wait until the simulated clock reaches this moment."""
        if when <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (when, next(self._seq), fut))
        await fut

    def next_deadline(self) -> datetime | None:
        """The earliest moment anyone waits for, if anyone waits."""
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)
        return self._waiters[0][0] if self._waiters else None

    async def advance_to(self, when: datetime) -> None:
        """Move time forward to `when`, waking every waiter in deadline order on the way."""
        while (deadline := self.next_deadline()) is not None and deadline <= when:
            self._now = max(self._now, deadline)
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
            # Let the woken task run (and perhaps schedule new waiters) before going on.
            for _ in range(3):
                await asyncio.sleep(0)
        self._now = max(self._now, when)

    async def advance(self, seconds: float) -> None:
        """Move time forward by this many seconds."""
        await self.advance_to(self._now + timedelta(seconds=seconds))
