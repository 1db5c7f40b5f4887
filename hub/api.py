"""The hub API: its MQTT topics and one pydantic model per payload (shared by the hub and the TUI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hub.model import Availability, Device, DeviceDiscovered, Event, Frozen, StateChanged, Value
from hub.trusted import trusted


class HubStatus(Frozen):
    """`status`: retained, and the hub's last will says offline."""

    state: Literal["online", "offline"]
    version: str | None = None
    started_at: datetime | None = None
    broker: str | None = None


class HubHealth(Frozen):
    """`health`: the hub's own health, retained and refreshed at every health check (`hub status` reads it)."""

    ts: datetime
    broker_connected: bool
    broker_since: datetime | None = None  # since when connected, or disconnected
    broker_error: str | None = None  # the link's last fault, e.g. a login refused after a password change
    broker_attempts: int = 0
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    db_bytes: int | None = None
    history_paused: str | None = None  # why state history is not being recorded (alerts always are)
    history_dropped: int = 0
    last_backup_at: datetime | None = None
    last_backup_ok: bool | None = None
    last_backup_error: str | None = None
    last_backup_file: str | None = None
    problems: tuple[str, ...] = ()  # open health problems: disk_low, broker_down, backup_failed


class DeviceState(Frozen):
    """`devices/<id>/state`: the merged last known values of a device."""

    ts: datetime | None
    values: dict[str, Value]
    availability: Availability


class _Inbound(BaseModel):
    # Requests come from other programs and people: unknown fields are refused so that a
    # typo ("valeus") is reported instead of silently doing nothing.
    model_config = ConfigDict(frozen=True, extra="forbid")


class SetRequest(_Inbound):
    """`devices/<id>/set`: set points of an adopted device."""

    values: dict[str, Value] = Field(min_length=1)


class AdoptRequest(_Inbound):
    """`inbox/<id>/adopt`: let a pending device take part, with a name and a room."""

    name: str | None = Field(default=None, max_length=200)
    room: str | None = Field(default=None, max_length=200)


class IgnoreRequest(_Inbound):
    """`inbox/<id>/ignore`: keep a discovered device out of the home for good."""


class AckRequest(_Inbound):
    """`alerts/<id>/ack`: a caregiver acknowledges an alert."""

    by: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    channel: str = "mqtt"


HouseMode = Literal["home", "away", "visitor", "sleep", "vacation"]


class ModeRequest(_Inbound):
    """`mode/set`: change the house mode, optionally until a time."""

    mode: HouseMode
    until: datetime | None = None
    by: str | None = None


class ModeState(Frozen):
    """`mode`: the current house mode, retained."""

    mode: HouseMode
    until: datetime | None = None
    since: datetime | None = None


class RuleSetRequest(_Inbound):
    """`rules/<id>/set`: enable, disable or snooze a rule."""

    enabled: bool | None = None
    snooze_minutes: int | None = Field(default=None, ge=0, le=7 * 24 * 60)


Severity = Literal["info", "warning", "critical"]
AlertState = Literal["raised", "notified", "acknowledged", "resolved", "cancelled_by_resident", "expired"]
Language = Literal["zh-CN", "en"]


class Delivery(Frozen):
    """One notification attempt to one caregiver over one channel, and its result."""

    caregiver: str
    tier: int
    channel: str  # the apprise URL's scheme (ntfy, json, dingtalk …), never the secret URL itself
    at: datetime
    ok: bool
    error: str | None = None


class AlertView(Frozen):
    """`alerts/<id>`: an open alert as every TUI shows it (retained while open, cleared when closed)."""

    id: str
    rule_id: str
    rule_kind: str
    room: str | None = None
    severity: Severity
    state: AlertState
    raised_at: datetime
    updated_at: datetime
    count: int = 1  # repeats of the same (rule, room) while open
    escalation_step: int = 0  # 0 = resident stage / not yet notified; n = n-th notification round
    tier: int | None = None  # the caregiver tier being asked now
    deliveries: tuple[Delivery, ...] = ()
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_channel: str | None = None
    note: str | None = None
    ack_seconds: float | None = None  # time to acknowledge, from raised_at
    device_ids: tuple[str, ...] = ()
    # Plain-language texts by language: what happened (with room and time) and what to do.
    message: dict[Language, str]
    advice: dict[Language, str] = Field(default_factory=dict)


RuleRunState = Literal["armed", "counting", "idle", "muted", "snoozed", "disabled"]


class RuleView(Frozen):
    """`rules/<id>`: a rule's state for the TUI (retained)."""

    id: str
    kind: str
    room: str | None = None
    enabled: bool = True
    state: RuleRunState
    deadline: datetime | None = None  # when a countdown fires, if one runs
    muted_until: datetime | None = None  # by the house mode
    snoozed_until: datetime | None = None
    last_fired: datetime | None = None
    title: dict[Language, str] = Field(default_factory=dict)


EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def _utc_json(obj: object) -> bytes | None:
    # orjson writes what pydantic's serializers write for these payloads (times with "Z", NaN as
    # null) in a fifth of their time. None for what it refuses (integers beyond 64 bits): the
    # caller has pydantic write those.
    try:
        return orjson.dumps(obj, option=orjson.OPT_UTC_Z)
    except TypeError:
        return None


def event_json(event: Event) -> bytes:
    """An event as `hub/<home>/events` carries it (as EVENT_ADAPTER dumps it, minus finding its type in the union)."""
    if isinstance(event, StateChanged):  # one for every changed report
        fast = _utc_json({"ts": event.ts, "type": event.type, "device_id": event.device_id, "values": event.values})
        if fast is not None:
            return fast
    return type(event).__pydantic_serializer__.to_json(event)


def discovered_json(event: DeviceDiscovered, device_text: str) -> bytes:
    """A DeviceDiscovered as `event_json` writes it, around its device's JSON when that is written already.

    A description is most of the event, and the store has just written it (a big home's start
    discovers thousands).
    """
    ts = orjson.dumps(event.ts, option=orjson.OPT_UTC_Z)
    return b"".join((b'{"ts":', ts, b',"type":"device_discovered","device":', device_text.encode(), b"}"))


_STATE_FIELDS = {"ts", "values", "availability"}


def state_json(ts: datetime | None, values: dict[str, Value], availability: Availability) -> bytes:
    """A `devices/<id>/state` payload from the registry's already checked values (sent for every report)."""
    av = availability
    written = _utc_json(
        {
            "ts": ts,
            "values": values,
            "availability": {"state": av.state, "reason": av.reason, "last_seen": av.last_seen},
        }
    )
    if written is None:
        state = trusted(DeviceState, {"ts": ts, "values": values, "availability": availability}, _STATE_FIELDS)
        return DeviceState.__pydantic_serializer__.to_json(state)
    # A copy of its length: the link keeps every device's last state, and orjson's own bytes
    # hold on to the whole block it wrote them in (~4 KB each: +21 MB at 10,000 devices).
    return memoryview(written).tobytes()


class DayActivity(Frozen):
    """One local day of a home's activity: counts per room by hour, night bathroom visits, first activity."""

    rooms: dict[str, list[int]]  # room -> 24 counts, local hours 0-23
    night_bathroom_visits: list[datetime]  # starts, in the night ending this day
    first_activity: datetime | None = None  # local time, outside the night window (22:00-07:00)


class ActivitySummary(Frozen):
    """`activity`: retained today's and yesterday's activity, kept by the hub from its stored history."""

    ts: datetime  # as of this moment: every event forwarded before it is counted
    timezone: str  # the home's time zone, which days and hours are in
    days: dict[date, DayActivity]


@dataclass(frozen=True, slots=True)
class Topics:
    """Every hub API topic of one home, built from the topic root `hub/<home id>`."""

    root: str

    @classmethod
    def for_home(cls, home_id: str, prefix: str = "hub") -> Topics:
        """The topics of the home with this id."""
        return cls(f"{prefix}/{home_id}")

    @property
    def status(self) -> str:
        """Retained hub status and last will."""
        return f"{self.root}/status"

    @property
    def events(self) -> str:
        """Every typed event, not retained."""
        return f"{self.root}/events"

    @property
    def mode(self) -> str:
        """Retained house mode."""
        return f"{self.root}/mode"

    @property
    def mode_set(self) -> str:
        """Requests to change the house mode."""
        return f"{self.root}/mode/set"

    def device(self, device_id: str) -> str:
        """Retained device description."""
        return f"{self.root}/devices/{device_id}"

    def device_state(self, device_id: str) -> str:
        """Retained merged state of a device."""
        return f"{self.root}/devices/{device_id}/state"

    def inbox(self, device_id: str) -> str:
        """Retained pending device."""
        return f"{self.root}/inbox/{device_id}"

    def alert(self, alert_id: str) -> str:
        """Retained open alert."""
        return f"{self.root}/alerts/{alert_id}"

    def rule(self, rule_id: str) -> str:
        """Retained rule status."""
        return f"{self.root}/rules/{rule_id}"

    @property
    def activity(self) -> str:
        """Retained activity summary of today and yesterday (ActivitySummary)."""
        return f"{self.root}/activity"

    @property
    def health(self) -> str:
        """Retained health of the hub itself (broker link, disk, backups)."""
        return f"{self.root}/health"

    def requests(self) -> list[str]:
        """The filters the hub subscribes to for requests addressed to it."""
        r = self.root
        return [
            f"{r}/devices/+/set",
            f"{r}/inbox/+/adopt",
            f"{r}/inbox/+/ignore",
            f"{r}/alerts/+/ack",
            f"{r}/rules/+/set",
            f"{r}/mode/set",
        ]

    def parse_request(self, topic: str) -> tuple[str, str] | None:
        """Split a request topic into (verb, id): ("set", device id), ("adopt", id), ("mode", "")."""
        if not topic.startswith(self.root + "/"):
            return None
        parts = topic[len(self.root) + 1 :].split("/")
        match parts:
            case ["devices", ident, "set"] if ident:
                return ("set", ident)
            case ["inbox", ident, ("adopt" | "ignore") as verb] if ident:
                return (verb, ident)
            case ["alerts", ident, "ack"] if ident:
                return ("ack", ident)
            case ["rules", ident, "set"] if ident:
                return ("rule_set", ident)
            case ["mode", "set"]:
                return ("mode", "")
        return None


# Which payload model validates each request verb; the hub's dispatcher looks verbs up here.
REQUEST_MODELS: dict[str, type[_Inbound]] = {
    "set": SetRequest,
    "adopt": AdoptRequest,
    "ignore": IgnoreRequest,
    "ack": AckRequest,
    "rule_set": RuleSetRequest,
    "mode": ModeRequest,
}


class RequestError(ValueError):
    """A request to the hub that cannot be accepted, with a reason fit for a log line."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_request(model: type[_Inbound], payload: bytes) -> _Inbound:
    """Validate one request payload; raise RequestError with a short reason on anything wrong."""
    # Empty means `{}` so that `mosquitto_pub -n` works for ignore.
    text = payload or b"{}"
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        kind = "invalid_json" if first["type"] == "json_invalid" else "invalid_payload"
        raise RequestError(kind, f"{where}: {first['msg']}") from None


def device_payload(device: Device) -> bytes:
    """The retained JSON description of a device."""
    return device.model_dump_json().encode()
