"""An MQTT message as plain data, so that parsers and encoders never touch a client library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message, received or to be published. Payloads stay bytes: decoding is the reader's job."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether a topic matches a subscription filter with `+` and `#` wildcards (MQTT 3.1.1 §4.7)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    pat = pattern.split("/")
    top = topic.split("/")
    for i, level in enumerate(pat):
        if level == "#":
            return True
        if i >= len(top):
            return False
        if level != "+" and level != top[i]:
            return False
    return len(pat) == len(top)
