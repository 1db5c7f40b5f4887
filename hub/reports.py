"""The two models every device report makes (its StateChanged, and the sender's Availability), built compiled."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from hub.model import Availability, AvailabilityState, StateChanged, Value
from hub.trusted import trusted

# Here rather than in hub.model, which pydantic keeps interpreted: called from the compiled
# adapters and registry, these were a Python frame each, a twelfth of the hub's loop under a
# flood (py-spy). The fields sets are what a validating call would be given (see `trusted`).
_STATE_SET: Final = {"ts", "device_id", "values"}
_AVAILABILITY_SET: Final = {"state", "reason", "last_seen"}
_ONLINE: Final = AvailabilityState.ONLINE  # a Final name, not the enum's attribute: see hub.native


def state_changed(ts: datetime, device_id: str, values: dict[str, Value]) -> StateChanged:
    """A StateChanged of already normalized values, built as `trusted` builds models (the per-message path)."""
    return trusted(
        StateChanged, {"ts": ts, "type": "state_changed", "device_id": device_id, "values": values}, _STATE_SET
    )


def online(last_seen: datetime) -> Availability:
    """Online, last heard from at `last_seen` (built as `trusted` builds models: every report makes one)."""
    return trusted(Availability, {"state": _ONLINE, "reason": None, "last_seen": last_seen}, _AVAILABILITY_SET)
