"""What the pure rules engine and alert book ask their shell to do, and the one timer table they share."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.api import AlertView, ModeState, RuleView
from hub.model import Value


@dataclass(frozen=True, slots=True)
class TimerSaved:
    """A deadline was armed (or moved): store it so that it survives a restart."""

    key: str
    owner: str
    deadline: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TimerDeleted:
    """A deadline fired or was disarmed: forget it."""

    key: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One line of an alert's audit trail."""

    transition: str
    ts: datetime
    actor: str | None = None
    channel: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AlertChanged:
    """An alert changed: store it (with its book-keeping), append its audit rows, publish or clear it."""

    view: AlertView
    book: dict[str, Any]
    audits: tuple[AuditRow, ...]
    open: bool


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the caregivers of one tier (or every tier, when tier is None) about an alert."""

    alert_id: str
    step: int
    tier: int | None
    reason: str = "escalation"


@dataclass(frozen=True, slots=True)
class Act:
    """Set points on a device, on behalf of a rule."""

    rule_id: str
    device_id: str
    values: dict[str, Value]
    ts: datetime


@dataclass(frozen=True, slots=True)
class RuleChanged:
    """A rule's status changed: publish it (retained)."""

    view: RuleView


@dataclass(frozen=True, slots=True)
class ModeChanged:
    """The house mode changed (a request, or a visitor countdown that ran out): publish it."""

    state: ModeState


Effect = TimerSaved | TimerDeleted | AlertChanged | Notify | Act | RuleChanged | ModeChanged


@dataclass(slots=True)
class Timers:
    """Every armed deadline by key, soonest first; each change is also written to the outbox."""

    out: list[Effect]
    entries: dict[str, tuple[datetime, str, dict[str, Any]]] = field(default_factory=dict)
    _heap: list[tuple[datetime, int, str]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def arm(self, key: str, owner: str, deadline: datetime, data: dict[str, Any] | None = None) -> None:
        """Arm (or move) the deadline with this key."""
        payload = dict(data or {})
        if self.entries.get(key) == (deadline, owner, payload):
            return
        self.entries[key] = (deadline, owner, payload)
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        self.out.append(TimerSaved(key, owner, deadline, payload))

    def load(self, key: str, owner: str, deadline: datetime, data: dict[str, Any]) -> None:
        """Put back a stored deadline at start-up (it is stored already: nothing to write)."""
        self.entries[key] = (deadline, owner, dict(data))
        heapq.heappush(self._heap, (deadline, next(self._seq), key))

    def disarm(self, key: str) -> None:
        """Forget a deadline if it is armed."""
        if self.entries.pop(key, None) is not None:
            self.out.append(TimerDeleted(key))

    def get(self, key: str) -> tuple[datetime, str, dict[str, Any]] | None:
        """The deadline, owner and data armed under this key."""
        return self.entries.get(key)

    def deadline(self, key: str) -> datetime | None:
        """When the timer with this key fires, if it is armed."""
        entry = self.entries.get(key)
        return entry[0] if entry else None

    def next_deadline(self) -> datetime | None:
        """The soonest armed deadline."""
        heap = self._heap
        while heap:
            deadline, _, key = heap[0]
            entry = self.entries.get(key)
            if entry is not None and entry[0] == deadline:
                return deadline
            heapq.heappop(heap)  # moved or disarmed since it was pushed
        return None

    def pop_due(self, now: datetime) -> tuple[str, datetime, str, dict[str, Any]] | None:
        """Take the soonest deadline at or before now off the table (the caller says when it is gone)."""
        deadline = self.next_deadline()
        if deadline is None or deadline > now:
            return None
        _, _, key = heapq.heappop(self._heap)
        _, owner, data = self.entries.pop(key)
        return key, deadline, owner, data
