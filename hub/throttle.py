"""A per-key throttle with a trailing edge: the first item goes at once, later ones wait for the window's end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Throttle(Generic[K, V]):
    """Sends a key's item at once if none went in the current window, else holds the last one until it ends.

    Every key's last item is sent within `every` seconds of being offered, and a key sends at
    most about one item a window after its first. Windows run back to back while items flow
    and stop when a window ends with nothing held.
    """

    def __init__(self, every: float, send: Callable[[V], None]) -> None:
        self.every = every
        self._send = send
        self._sent: set[K] = set()  # keys sent in the current window
        self._held: dict[K, V] = {}  # the last item of each key that waits for the window's end
        self._timer: asyncio.TimerHandle | None = None

    def offer(self, key: K, item: V) -> None:
        """Send now, or hold as the key's last item until the window ends."""
        if key in self._sent:
            self._held[key] = item
            return
        self._sent.add(key)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.every, self._window_ends)
        self._send(item)

    def drop(self, key: K) -> None:
        """Forget a key's held item (its subject is gone: sending it later would bring it back)."""
        self._held.pop(key, None)

    def flush(self) -> None:
        """Send every held item now and stop the windows (before the link closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held, self._sent = self._held, {}, set()
        for item in held.values():
            self._send(item)

    def _window_ends(self) -> None:
        # What was held is sent now, and its keys start the next window as sent.
        held, self._held = self._held, {}
        self._sent = set(held)
        self._timer = asyncio.get_running_loop().call_later(self.every, self._window_ends) if held else None
        for item in held.values():
            self._send(item)
