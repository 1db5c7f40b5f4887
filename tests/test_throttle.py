"""The state throttle: at once, then the last item of a key at the window's end; never a dropped key's item."""

from __future__ import annotations

import asyncio

from hub.throttle import Throttle

EVERY = 0.05


class Sent:
    """What a throttle sent, in order, with an event for each send."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.more = asyncio.Event()

    def __call__(self, item: str) -> None:
        self.items.append(item)
        self.more.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.items) < count:
                self.more.clear()
                await self.more.wait()


async def test_first_goes_at_once_and_only_the_last_of_a_window_follows() -> None:
    sent = Sent()
    t: Throttle[str, str] = Throttle(EVERY, sent)
    t.offer("a", "a1")
    assert sent.items == ["a1"]  # no wait for the first
    t.offer("a", "a2")
    t.offer("b", "b1")  # another key has a window of its own
    t.offer("a", "a3")
    assert sent.items == ["a1", "b1"]
    await sent.until(3)
    assert sent.items == ["a1", "b1", "a3"]  # a2 was replaced before its window ended


async def test_windows_stop_when_nothing_is_held_and_the_next_item_goes_at_once() -> None:
    sent = Sent()
    t: Throttle[str, str] = Throttle(EVERY, sent)
    t.offer("a", "a1")
    t.offer("a", "a2")
    await sent.until(2)
    # a2 went at the end of the first window, which makes "a" sent in the second: a3 waits.
    t.offer("a", "a3")
    assert sent.items == ["a1", "a2"]
    await sent.until(3)
    # The third window ends with nothing held, and the windows stop: a4 goes at once. (What is
    # waited for here is time itself, the window, not another task.)
    await asyncio.sleep(EVERY * 2)
    assert t._timer is None
    t.offer("a", "a4")
    assert sent.items == ["a1", "a2", "a3", "a4"]


async def test_a_dropped_key_sends_nothing_more_and_flush_sends_what_is_held() -> None:
    sent = Sent()
    t: Throttle[str, str] = Throttle(EVERY, sent)
    for key in ("gone", "kept"):
        t.offer(key, f"{key}1")
        t.offer(key, f"{key}2")
    t.drop("gone")
    t.flush()
    assert sent.items == ["gone1", "kept1", "kept2"]
    assert t._timer is None
    t.offer("kept", "kept3")  # a flush ends the window: the next item goes at once
    assert sent.items[-1] == "kept3"
