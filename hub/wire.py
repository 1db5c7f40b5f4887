"""An MQTT message as plain data, so that parsers and encoders never touch a client library."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message, received or to be published. Payloads stay bytes: decoding is the reader's job."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0


@functools.lru_cache(maxsize=4096)
def filter_matcher(pattern: str) -> Callable[[str], object]:
    """A test of topics against a valid filter with `+` and `#` (MQTT 3.1.1 §4.7), compiled once per filter.

    Every distinct topic of a large home's start-up is tried against the wildcard filters that
    may match it: splitting both for each try was a fifth of the hub's start-up.
    """
    regex = ""
    for i, level in enumerate(pattern.split("/")):
        if level == "#":
            regex += "(?:/.*)?" if i else ".*"  # `a/#` matches `a` itself too
            break
        regex += ("/" if i else "") + ("[^/]*" if level == "+" else re.escape(level))
    if pattern[:1] in ("+", "#"):
        regex = r"(?!\$)" + regex  # a wildcard never matches the first level of a `$` topic
    return re.compile(regex, re.DOTALL).fullmatch


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether a topic matches a subscription filter with `+` and `#` wildcards (MQTT 3.1.1 §4.7)."""
    return filter_matcher(pattern)(topic) is not None
