"""What every dialect adapter provides: subscriptions, a parser fed message by message, an encoder."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Protocol

from hub.model import Device, Event, Value
from hub.wire import Message


class Rejected(ValueError):
    """A message an adapter refuses, with a short machine-countable reason and a detail for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Adapter(Protocol):
    """One dialect. `feed` and `encode` are pure apart from the adapter's own topic tables."""

    name: ClassVar[str]

    def subscriptions(self) -> list[str]:
        """The topic filters this dialect needs."""
        ...

    def feed(self, msg: Message, now: datetime) -> list[Event]:
        """Turn one message into normalized events; raise Rejected for anything malformed."""
        ...

    def encode(self, device: Device, values: Mapping[str, Value]) -> list[Message]:
        """The messages that set these normalized values on the device; raise Rejected if it cannot."""
        ...


class CountedFeed:
    """Base of adapters whose `feed` counts every rejection by reason before raising it."""

    counters: Counter[str]

    def feed(self, msg: Message, now: datetime) -> list[Event]:
        """Turn one message into normalized events; raise Rejected (counted) for anything malformed."""
        try:
            return self._feed(msg, now)
        except Rejected as exc:
            self.counters[exc.reason] += 1
            raise

    def _feed(self, msg: Message, now: datetime) -> list[Event]:
        raise NotImplementedError
