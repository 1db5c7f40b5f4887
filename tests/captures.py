"""The shared real captures (../shared/fixtures, laid beside the checkout on CI too) as test inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from hub.adapters.base import Rejected
from hub.wire import Message

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
# What the hub API lets through to an adapter's encoder (it validates requests as hub.model
# Value): any value, right for the point or wrong, but never a list. The compiled adapters
# check their arguments' types as declared, so a list would be a TypeError, not a rejection.
VALUES: st.SearchStrategy[Any] = _SCALARS | st.dictionaries(st.text(max_size=6), _SCALARS, max_size=3)


def fixture(folder: str, name: str) -> dict[str, Any]:
    """One capture file as its JSON record (topic, payload_raw, retained, source …)."""
    data: dict[str, Any] = json.loads((FIXTURES / folder / name).read_text(encoding="utf-8"))
    return data


def message(folder: str, name: str, *, topic: str | None = None, retain: bool | None = None) -> Message:
    """One capture as the MQTT message it was, optionally on another topic or retain flag."""
    fx = fixture(folder, name)
    keep = bool(fx.get("retained")) if retain is None else retain
    return Message(topic or fx["topic"], fx["payload_raw"].encode(), retain=keep)


def outcome(call: Callable[[], Any]) -> Any:
    """What a call returned, or the Rejected it raised (any other exception propagates)."""
    try:
        return call()
    except Rejected as exc:
        return exc
