"""The devices.yaml schema (pydantic) and its loader, which reports every mistake with file:line:column.

Positions in messages are 1-based lines and columns; list indexes in paths (``devices[2]``) count
from 0, as in the pydantic location they come from. A problem with line 0 concerns the whole file
(missing, a directory, too large) and is printed as ``FILE: message``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

MAX_BYTES = 1024 * 1024
# The schema needs 4 levels; rules may nest a little more. Deeper input is refused before
# ruamel's recursive composer could run out of stack.
MAX_DEPTH = 32
MAX_PROBLEMS = 50
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DEVICE_ID_PATTERN = r"^[a-z0-9]+-[^\s/+#]{1,290}$"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
STORE_SCHEMES = ("sqlite", "postgresql+psycopg")

Loc = tuple[str | int, ...]
Language = Literal["zh-CN", "en"]


class Role(StrEnum):
    """What a device is for in the home; rules pick their inputs by kind and role."""

    EXIT_DOOR = "exit_door"
    BATHROOM_DOOR = "bathroom_door"
    BED = "bed"
    CHAIR = "chair"
    COOKTOP = "cooktop"
    KETTLE = "kettle"
    HEATER = "heater"
    IRON = "iron"
    FRIDGE = "fridge"
    PILLBOX = "pillbox"
    SOS = "sos"
    PATH_LIGHT = "path_light"
    HALLWAY_LIGHT = "hallway_light"
    VALVE = "valve"


class _Located(ValueError):
    """Validation problems found by one validator, each placed below the value it validated."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def _q(value: object, limit: int = 40) -> str:
    """A user's value quoted for a one-line message: shortened, control characters escaped."""
    text = str(value)
    short = text[:limit] + ("…" if len(text) > limit else "")
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in short) + "'"


def _suggest(word: object, choices: Iterable[str]) -> str:
    """' — did you mean 'x'?' for the closest choice, or nothing."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _slug(value: str) -> str:
    if not re.fullmatch(SLUG_PATTERN, value):
        raise ValueError(
            f"{_q(value)} is not a valid id: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit (e.g. 'wang-home')"
        )
    return value


def _topic(value: str) -> str:
    if not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "+#\0"):
        raise ValueError(f"{_q(value)} is not a usable MQTT topic: no '+', '#', and no leading or trailing '/'")
    return value


def _device_id(value: str) -> str:
    if not re.fullmatch(DEVICE_ID_PATTERN, value):
        raise ValueError(
            f"{_q(value)} is not a hub device id: expected '<protocol>-<native id>' as discovered, "
            "e.g. 'z2m-0x00158d0001a2b3c4' (copy it from the inbox)"
        )
    return value


def _notify_url(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", value):
        raise ValueError(f"{_q(value)} is not a notification URL: expected scheme://…, e.g. 'ntfy://localhost/mum'")
    return value


def _interface(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", value):
            raise ValueError(
                f"{_q(value)} is neither an IP address nor an interface name (e.g. '192.168.1.10', 'eth0')"
            ) from None
    return value


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: str) -> str:
    known = _timezones()
    if value in known:
        return value
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {_q(value)}{_suggest(value, known)}") from None
    return value


def _rule(value: dict[str, Any]) -> dict[str, Any]:
    if "kind" not in value:
        raise _Located([((), "rule without 'kind' (e.g. 'kind: inactivity')")])
    if not isinstance(value["kind"], str):
        raise _Located([(("kind",), "a rule's 'kind' should be text, e.g. 'inactivity'")])
    return value


Slug = Annotated[str, AfterValidator(_slug), Field(json_schema_extra={"pattern": SLUG_PATTERN})]
Topic = Annotated[str, AfterValidator(_topic)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
NotifyUrl = Annotated[str, AfterValidator(_notify_url)]
Interface = Annotated[str, AfterValidator(_interface)]
RuleData = Annotated[dict[str, Any], AfterValidator(_rule)]


def _unique(items: Iterable[Any], what: str) -> list[tuple[Loc, str]]:
    """A problem for every item whose id was already used earlier in the list."""
    first: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    for index, item in enumerate(items):
        if item.id in first:
            problems.append(
                ((index, "id"), f"duplicate {what} {_q(item.id)}: already listed as {what}s[{first[item.id]}]")
            )
        first.setdefault(item.id, index)
    return problems


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Home(_Frozen):
    """The home this hub serves."""

    id: Slug = Field(description="Short id used in MQTT topics hub/<id>/, e.g. 'wang-home'.")
    name: Name = Field(description="Display name of the home.")
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        "Asia/Shanghai", description="IANA time zone; rule time windows are local to it."
    )
    language: Language = Field("zh-CN", description="Default language of alerts and the TUI.")


class Mqtt(_Frozen):
    """Which MQTT broker to use and how to log in to it."""

    url: str | None = Field(
        None,
        description="mqtt://host[:port] or mqtts://host[:port]. Unset: 127.0.0.1:1883 if a broker "
        "answers there, else the hub's embedded broker on 127.0.0.1.",
    )
    local_port: int = Field(
        1883,
        ge=1,
        le=65535,
        description="With url unset: the port probed on 127.0.0.1, and the embedded broker's port.",
    )
    username: str | None = None
    password: str | None = Field(None, repr=False, description="Prefer password_file.")
    password_file: Path | None = Field(
        None, description="File holding the password; relative to the folder of devices.yaml."
    )
    ca_file: Path | None = Field(None, description="CA certificate to trust for mqtts://.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    client_id: str | None = None
    topic_root: Topic = Field("hub", description="Root of the hub API topics: <topic_root>/<home id>/…")
    keepalive: int = Field(30, ge=5, le=3600, description="Seconds between MQTT keepalive pings.")
    max_payload_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=268_435_455)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"{_q(value)} should start with mqtt:// or mqtts:// (e.g. 'mqtt://127.0.0.1:1883')")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put the user name in mqtt.username and the password in mqtt.password_file")
        if not parts.hostname:
            raise ValueError(f"{_q(value)} has no host (e.g. 'mqtt://192.168.1.5:1883')")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{_q(value)} is not mqtt[s]://host[:port] with a port from 1 to 65535")
        return value

    @field_validator("password_file", "ca_file", "cert_file", "key_file")
    @classmethod
    def _existing_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return value
        base = Path((info.context or {}).get("base_dir", "."))
        path = (base / value.expanduser()).absolute()
        if not path.is_file():
            raise ValueError(f"file {_q(value)} not found (looked for {_q(path, 300)})")
        return path

    @model_validator(mode="after")
    def _pairs(self) -> Mqtt:
        problems: list[tuple[Loc, str]] = []
        if self.password is not None and self.password_file is not None:
            problems.append((("password_file",), "give either password or password_file, not both"))
        if self.key_file is not None and self.cert_file is None:
            problems.append((("key_file",), "key_file needs cert_file"))
        if problems:
            raise _Located(problems)
        return self

    def password_text(self) -> str | None:
        """The password: given inline or read from password_file (trailing newline dropped)."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        return self.password

    @property
    def host(self) -> str | None:
        """The broker's host name or address, or None when the url is unset."""
        return urlsplit(self.url).hostname if self.url else None

    @property
    def port(self) -> int | None:
        """The broker's port (1883 for mqtt://, 8883 for mqtts:// unless given), or None."""
        if not self.url:
            return None
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (an mqtts:// url)."""
        return bool(self.url) and urlsplit(self.url).scheme == "mqtts"


class Mdns(_Frozen):
    """Discovery of devices that advertise themselves over mDNS."""

    enabled: bool = True
    interfaces: tuple[Interface, ...] = Field(
        (), description="IP addresses or interface names to browse on; empty = every non-loopback one."
    )


class HomeAssistantDiscovery(_Frozen):
    """Home Assistant MQTT discovery (ESPHome, OpenMQTTGateway, …)."""

    enabled: bool = True
    prefix: Topic = "homeassistant"


class Zigbee2MqttDiscovery(_Frozen):
    """Zigbee2MQTT bridges."""

    enabled: bool = True
    base_topic: Topic = "zigbee2mqtt"


class TasmotaDiscovery(_Frozen):
    """Tasmota native discovery."""

    enabled: bool = True
    prefix: Topic = "tasmota/discovery"


class ShellyDiscovery(_Frozen):
    """Shelly Gen2/Gen3 devices over MQTT."""

    enabled: bool = True


class HomieDiscovery(_Frozen):
    """Homie 4 and 5 devices."""

    enabled: bool = True
    prefix: Topic = "homie"


class Discovery(_Frozen):
    """How the hub finds devices; everything found waits in the inbox until adopted."""

    auto_adopt: bool = Field(False, description="Adopt every discovered device at once (not for real homes).")
    pending_expiry_hours: float = Field(168, gt=0, description="Forget unadopted devices silent this long.")
    mdns: Mdns = Mdns()
    homeassistant: HomeAssistantDiscovery = HomeAssistantDiscovery()
    zigbee2mqtt: Zigbee2MqttDiscovery = Zigbee2MqttDiscovery()
    tasmota: TasmotaDiscovery = TasmotaDiscovery()
    shelly: ShellyDiscovery = ShellyDiscovery()
    homie: HomieDiscovery = HomieDiscovery()


class Retention(_Frozen):
    """How many days each kind of data is kept."""

    state_days: int = Field(30, ge=1, description="Days of state history.")
    events_days: int = Field(365, ge=1, description="Days of events (commands, adoptions, …).")
    alerts_days: int = Field(730, ge=1, description="Days of alerts and their audit trail.")


class Store(_Frozen):
    """Where history, alerts and timers are stored."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL (sqlite:///path or postgresql+psycopg://…). Unset: SQLite in the data dir.",
    )
    batch_size: int = Field(500, ge=1, le=100_000)
    batch_seconds: float = Field(1.0, gt=0, le=60)
    retention: Retention = Retention()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme, sep, _ = value.partition("://")
        if not sep or scheme not in STORE_SCHEMES:
            raise ValueError(
                f"{_q(value)} should start with sqlite:/// or postgresql+psycopg://{_suggest(scheme, STORE_SCHEMES)}"
            )
        return value


class Resident(_Frozen):
    """A person who lives in the home."""

    id: Slug
    name: Name
    language: Language | None = None


class Caregiver(_Frozen):
    """A person who is told about alerts; tier 1 first, then tier 2, …"""

    id: Slug
    name: Name
    tier: int = Field(ge=1, le=9, description="Escalation tier: 1 is told first.")
    language: Language | None = None
    notify: tuple[NotifyUrl, ...] = Field((), description="Apprise URLs, e.g. ntfy://…, json://…, mailto://…")


class People(_Frozen):
    """Residents and caregivers."""

    residents: tuple[Resident, ...] = ()
    caregivers: tuple[Caregiver, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> People:
        problems = [(("residents", *loc), m) for loc, m in _unique(self.residents, "resident")]
        problems += [(("caregivers", *loc), m) for loc, m in _unique(self.caregivers, "caregiver")]
        if self.caregivers and not any(c.tier == 1 for c in self.caregivers):
            problems.append((("caregivers",), "no caregiver has tier 1: someone must be told first (set 'tier: 1')"))
        if problems:
            raise _Located(problems)
        return self


class Room(_Frozen):
    """A room of the home."""

    id: Slug
    name: Name
    name_zh: str | None = None


class DeviceEntry(_Frozen):
    """An adopted device: its discovered id, and where it is and what it is for."""

    id: Annotated[str, AfterValidator(_device_id)] = Field(
        description="The discovered hub id '<protocol>-<native id>', e.g. z2m-0x00158d0001a2b3c4."
    )
    name: Name
    room: str = Field(description="One of the rooms' ids.")
    role: Role | None = Field(None, description="What the device is for; rules pick their inputs by it.")
    name_zh: str | None = None


class Backup(_Frozen):
    """The backup the hub takes of its configuration and data while it runs."""

    enabled: bool = True
    every_hours: float = Field(24, gt=0, le=24 * 31, description="Hours between backups (daily by default).")
    keep: int = Field(7, ge=1, le=1000, description="Backups kept; older ones are deleted.")
    dir: Path | None = Field(None, description="Folder for backups, relative to the data folder; unset: backups/.")


class Health(_Frozen):
    """When the hub tells caregivers about its own trouble (disk, broker, backup)."""

    check_seconds: float = Field(30, gt=0, le=3600, description="Seconds between health checks.")
    disk_min_free_mb: float = Field(
        200, ge=0, description="Below this much free space the hub stops writing history (alerts go on) and says so."
    )
    broker_down_minutes: float = Field(5, gt=0, description="Minutes without the broker before caregivers are told.")


class Alerts(_Frozen):
    """How alerts reach caregivers: acknowledgement windows and the escalation along the tiers (RULES.md)."""

    ack_minutes: float = Field(5, gt=0, description="Minutes a tier has to acknowledge a warning.")
    critical_ack_minutes: float = Field(2, gt=0, description="Minutes a tier has to acknowledge a critical alert.")
    renotify: int = Field(1, ge=0, le=5, description="Times a tier is told again before the next tier is.")
    rounds: int = Field(2, ge=1, le=10, description="Times the whole chain of tiers is walked.")
    critical_repeat_minutes: float = Field(
        15, gt=0, description="After the chain, a critical alert is sent to every tier this often until acknowledged."
    )
    rate_limit_minutes: float = Field(30, ge=0, description="One alert per rule and room this often, unless worse.")
    expire_hours: float = Field(24, gt=0, description="An unacknowledged warning or info closes as expired after this.")
    resident_first: bool = Field(True, description="Ask the resident first where RULES.md says so.")


class Config(_Frozen):
    """The whole devices.yaml file."""

    version: int = Field(1, description="Schema version of this file; only 1 exists.")
    home: Home
    mqtt: Mqtt = Mqtt()
    discovery: Discovery = Discovery()
    store: Store = Store()
    people: People = People()
    rooms: tuple[Room, ...] = ()
    devices: tuple[DeviceEntry, ...] = ()
    rules: tuple[RuleData, ...] = Field(
        (), description="Rules as data ('kind: inactivity' …); the rules engine validates them."
    )
    backup: Backup = Backup()
    health: Health = Health()
    alerts: Alerts = Alerts()

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"{value} is not supported: this hub reads version 1")
        return value

    @field_validator("rooms")
    @classmethod
    def _rooms(cls, value: tuple[Room, ...]) -> tuple[Room, ...]:
        if problems := _unique(value, "room"):
            raise _Located(problems)
        return value

    # rooms is declared before devices, so it is in info.data whenever it validated: the room
    # check runs even when other sections have mistakes, and all are reported together.
    @field_validator("devices")
    @classmethod
    def _devices(cls, value: tuple[DeviceEntry, ...], info: ValidationInfo) -> tuple[DeviceEntry, ...]:
        problems = _unique(value, "device")
        rooms = info.data.get("rooms")
        if rooms is not None:
            ids = [room.id for room in rooms]
            known = ", ".join(ids) if ids else "none yet, add them under 'rooms:'"
            problems += [
                (
                    (index, "room"),
                    f"unknown room {_q(device.room)}{_suggest(device.room, ids) or ' —'} rooms: {known}",
                )
                for index, device in enumerate(value)
                if device.room not in ids
            ]
        if problems:
            raise _Located(problems)
        return value


# ---------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One mistake in the file, at a 1-based line and column (0 = the whole file)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The file could not be loaded; `problems` lists every mistake found, sorted by line."""

    def __init__(self, problems: list[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.line, p.column))
        if len(ordered) > MAX_PROBLEMS:
            rest = len(ordered) - MAX_PROBLEMS
            ordered = [*ordered[:MAX_PROBLEMS], Problem(ordered[0].file, 0, 0, f"… and {rest} more problems")]
        self.problems = ordered
        super().__init__("\n".join(map(str, ordered)))


def format_problems(err: ConfigError) -> str:
    """One `FILE:LINE:COL: message` line per problem."""
    return "\n".join(map(str, err.problems))


# ---------------------------------------------------------------------------------------------
# From pydantic errors to located, plain messages


def _where(loc: Loc) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return text or "the top level"


def _describe(value: object) -> str:
    kinds: list[tuple[type | tuple[type, ...], Callable[[Any], str]]] = [
        (NoneType, lambda v: "an empty value"),
        (bool, lambda v: str(v).lower()),
        ((int, float), lambda v: f"the number {v}"),
        (str, lambda v: f"text {_q(v)}"),
        (Mapping, lambda v: "a mapping"),
        ((list, tuple), lambda v: "a list"),
        (date, lambda v: f"a date ({v})"),
    ]
    return next((show(value) for kind, show in kinds if isinstance(value, kind)), type(value).__name__)


_MAPPING = "a mapping (key: value lines)"
_LIST = "a list (lines starting with '- ')"
_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "dict_type": _MAPPING,
    "list_type": _LIST,
    "tuple_type": _LIST,
    "path_type": "a file path (text)",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least {}"),
    "greater_than": ("gt", "more than {}"),
    "less_than_equal": ("le", "at most {}"),
    "less_than": ("lt", "less than {}"),
    "string_too_short": ("min_length", "at least {} characters long"),
    "string_too_long": ("max_length", "at most {} characters long"),
}


def _unwrap(annotation: Any) -> Any:
    """The model, enum or literal inside Optional, tuple[...] and Annotated wrappers."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, UnionType):
        inner = [a for a in get_args(annotation) if a is not NoneType]
        return _unwrap(inner[0]) if len(inner) == 1 else annotation
    if origin in (tuple, list):
        return _unwrap(get_args(annotation)[0])
    return annotation


def _annotation_at(loc: Loc) -> Any:
    """The schema type found at this location (ints step into lists), or None past the schema."""
    current: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current


def _allowed(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return [member.value for member in annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    return []


def _unknown_key(error: ErrorDetails) -> str:
    loc = error["loc"]
    allowed = _allowed(_annotation_at(loc[:-1]))
    hint = _suggest(loc[-1], allowed) or " —"
    return f"unknown key {_q(loc[-1])} in {_where(loc[:-1])}{hint} allowed: {', '.join(allowed)}"


def _missing(error: ErrorDetails) -> str:
    loc = error["loc"]
    return f"missing required key {_q(loc[-1])} in {_where(loc[:-1])}"


def _choice(error: ErrorDetails) -> str:
    loc = error["loc"]
    allowed = _allowed(_annotation_at(loc)) or [str(error.get("ctx", {}).get("expected", ""))]
    hint = _suggest(error["input"], allowed) or " —"
    field = f"{loc[-1]} " if isinstance(loc[-1], str) else "value "
    return f"unknown {field}{_q(error['input'])} in {_where(loc[:-1])}{hint} allowed: {', '.join(allowed)}"


def _invalid_key(error: ErrorDetails) -> str:
    return f"keys must be text, not {_describe(error['input'])}"


def _value_error(error: ErrorDetails) -> str:
    return f"{_where(error['loc'])}: {error['msg'].removeprefix('Value error, ')}"


def _message(error: ErrorDetails) -> str:
    """A short plain message naming the key, what is allowed, and a likely fix."""
    special: dict[str, Callable[[ErrorDetails], str]] = {
        "extra_forbidden": _unknown_key,
        "missing": _missing,
        "enum": _choice,
        "literal_error": _choice,
        "invalid_key": _invalid_key,
        "value_error": _value_error,
    }
    kind, path = error["type"], _where(error["loc"])
    if kind in special:
        return special[kind](error)
    if kind in _EXPECTED:
        # YAML reads 2024, 0x1f or true as numbers and booleans: quoting makes them text.
        quote = " (put it in quotes)" if kind == "string_type" and isinstance(error["input"], int | float) else ""
        return f"{path} should be {_EXPECTED[kind]}, not {_describe(error['input'])}{quote}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        limit = error.get("ctx", {}).get(name)
        return f"{path} must be {words.format(limit)}, not {_describe(error['input'])}"
    return f"{path}: {error['msg']}"


def _position(tree: Any, loc: Loc, at_key: bool) -> tuple[int, int]:
    """0-based line and column of the YAML node at loc: its key, or its value; the deepest found."""
    node, pos = tree, (0, 0)
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            # An empty value has no position of its own: ruamel gives the next line's.
            use_key = (last and at_key) or node[part] is None
            pos = node.lc.key(part) if use_key else node.lc.value(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.lc.item(part)
            node = node[part]
        else:
            break
    return pos


def _misspelt(errors: list[ErrorDetails]) -> set[Loc]:
    """Locations of required keys that are only misspelt: 'rom' makes 'room' missing, say it once."""
    found: set[Loc] = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            parent = tuple(error["loc"][:-1])
            close = difflib.get_close_matches(str(error["loc"][-1]), _allowed(_annotation_at(parent)), n=1)
            found.update((*parent, key) for key in close)
    return found


def _validation_problems(err: ValidationError, tree: Any, filename: str) -> Iterator[Problem]:
    errors = err.errors(include_url=False)
    misspelt = _misspelt(errors)
    for error in errors:
        loc: Loc = tuple(error["loc"])
        if error["type"] == "missing" and loc in misspelt:
            continue
        located = error.get("ctx", {}).get("error")
        if isinstance(located, _Located):
            for sub, message in located.problems:
                line, col = _position(tree, loc + sub, at_key=False)
                yield Problem(filename, line + 1, col + 1, message)
            continue
        kind = error["type"]
        if kind == "missing":
            line, col = _position(tree, loc[:-1], at_key=True)
        else:
            line, col = _position(tree, loc, at_key=kind in ("extra_forbidden", "invalid_key"))
        yield Problem(filename, line + 1, col + 1, _message(error))


# ---------------------------------------------------------------------------------------------
# Reading the YAML

_EMPTY = "the file is empty: start from the example devices.yaml that comes with the hub"
# Plain words for ruamel's parser messages, first match wins.
_YAML_HINTS = (
    ("'\\t'", "tabs are not allowed for indentation, use spaces"),
    ("mapping values are not allowed here", "unexpected ':' here — check this line's indentation, "
     "or put the value in quotes if it contains ': '"),
    ("expected <block end>", "bad indentation: this line does not line up with the lines above it"),
    ("could not find expected ':'", "a ':' is missing after a key (write 'key: value')"),
    ("expected a single document", "only one YAML document is allowed: remove the '---' line"),
)  # fmt: skip


def _syntax_problem(exc: Exception, text: str, filename: str) -> Problem:
    """A YAML parsing failure as a located problem in plain words."""
    if isinstance(exc, ReaderError):
        line = text.count("\n", 0, exc.position)
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1)
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return Problem(filename, line + 1, col + 1, f"character U+{char:04X} is not allowed in YAML; remove it")
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "")
        said = f"{exc.context or ''} {problem}"
        message = next((words for key, words in _YAML_HINTS if key in said), None)
        line, col = (mark.line, mark.column) if mark else (0, 0)
        return Problem(filename, line + 1, col + 1, message or f"YAML syntax error: {' '.join(problem.split())}")
    # ruamel converts scalars while constructing: 2020-13-45 or a 5000-digit number end here.
    return Problem(filename, 1, 1, f"YAML value error: {' '.join(str(exc).split())}")


class _Scan:
    """One pass over the YAML events: refuses aliases, tags and deep nesting; finds duplicate keys."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.aliases: list[AliasEvent] = []
        # One frame per open collection: for a mapping, its keys so far and whether a key is next.
        self.stack: list[tuple[dict[str, int], list[bool]] | None] = []

    def add(self, event: Event, message: str) -> None:
        self.problems.append(Problem(self.filename, event.start_mark.line + 1, event.start_mark.column + 1, message))

    def node(self, event: NodeEvent) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None:
            keys, key_next = frame
            if key_next[0] and not isinstance(event, ScalarEvent):
                self.add(event, "a key must be plain text, not a list or a mapping (check for a stray '? ')")
            elif key_next[0] and isinstance(event, ScalarEvent):
                if event.value in keys:
                    self.add(event, f"duplicate key {_q(event.value)} (first on line {keys[event.value]})")
                keys.setdefault(event.value, event.start_mark.line + 1)
            key_next[0] = not key_next[0]
        if isinstance(event, AliasEvent):
            self.aliases.append(event)
        elif (tag := getattr(event, "tag", None)) is not None:
            self.add(event, f"YAML tags ({_q(tag)}) are not allowed: remove the tag, quote the value if needed")

    def finish(self) -> list[Problem]:
        """Every problem found; aliases once, as a bomb has thousands of them."""
        if self.aliases:
            first, count = self.aliases[0], len(self.aliases)
            more = f" ({count} aliases in this file)" if count > 1 else ""
            self.add(
                first,
                f"YAML aliases ({_q('*' + str(first.anchor))}) are not allowed: write the value out in full{more}",
            )
        return self.problems

    def feed(self, event: Event) -> bool:
        """Take one event; False once the input nests too deeply to go on."""
        if isinstance(event, NodeEvent):
            self.node(event)
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            self.stack.append(({}, [True]) if isinstance(event, MappingStartEvent) else None)
            if len(self.stack) > MAX_DEPTH:
                self.add(event, f"nested more than {MAX_DEPTH} levels deep")
                return False
        elif isinstance(event, CollectionEndEvent) and self.stack:
            self.stack.pop()
        return True


def _decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        guess = ""
        try:
            data.decode("gb18030")
            guess = " (it looks like GBK/GB18030)"
        except UnicodeDecodeError:
            guess = ""
        raise ConfigError(
            [
                Problem(
                    filename,
                    line,
                    col,
                    f"the file is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                    f"cannot be read{guess}; save the file as UTF-8",
                )
            ]
        ) from None


def _too_big(size: int, filename: str) -> ConfigError:
    return ConfigError([Problem(filename, 0, 0, f"the file is {size / MAX_BYTES:.1f} MiB; the limit is 1 MiB")])


def _plain(node: Any) -> Any:
    """ruamel's round-trip objects as plain dicts, lists and scalars (same keys and indexes)."""
    if isinstance(node, CommentedMap):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(item) for item in node]
    scalars: tuple[type, ...] = (bool, int, float, str)
    return next((kind(node) for kind in scalars if isinstance(node, kind)), node)


def _parse(text: str, filename: str) -> Any:
    """The round-trip YAML tree, after a scan that refuses what this file must not contain."""
    yaml = YAML(typ="rt")
    scan = _Scan(filename)
    try:
        for event in yaml.parse(text):
            if not scan.feed(event):
                break
        if problems := scan.finish():
            raise ConfigError(problems)
        return yaml.load(text)
    # ruamel raises more than YAMLError on odd input: int() limits, bad dates, unhashable keys.
    except (YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ConfigError([*scan.finish(), _syntax_problem(exc, text, filename)]) from None


# A check that a higher layer (the rules engine) runs on a valid config: (location, message, at key).
Check = Callable[["Config"], list[tuple[Loc, str, bool]]]


def load_config_text(
    text: str | bytes, filename: str = "devices.yaml", base_dir: Path | None = None, checks: Sequence[Check] = ()
) -> Config:
    """Parse and validate devices.yaml content; relative file paths resolve against base_dir.

    `checks` validate what this schema leaves to others (the rules); their problems are located too.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BYTES:
        raise _too_big(size, filename)
    if isinstance(text, bytes):
        text = _decode(text, filename)
    text = text.removeprefix("\ufeff")
    tree = _parse(text, filename) if text.strip() else None
    if tree is None:
        raise ConfigError([Problem(filename, 1, 1, _EMPTY)])
    if not isinstance(tree, CommentedMap):
        message = f"the top level should be a mapping of sections (home:, rooms:, devices: …), not {_describe(tree)}"
        raise ConfigError([Problem(filename, 1, 1, message)])
    context = {"base_dir": base_dir if base_dir is not None else Path(filename).parent}
    try:
        config = Config.model_validate(_plain(tree), context=context)
    except ValidationError as err:
        raise ConfigError(list(_validation_problems(err, tree, filename))) from None
    located = [(loc, message, at_key) for check in checks for loc, message, at_key in check(config)]
    if located:
        places = [(_position(tree, loc, at_key), message) for loc, message, at_key in located]
        raise ConfigError([Problem(filename, line + 1, col + 1, message) for (line, col), message in places])
    return config


def load_config(path: Path, checks: Sequence[Check] = ()) -> Config:
    """Load devices.yaml from disk, or raise ConfigError listing every problem."""
    name = str(path)
    try:
        if path.is_dir():
            inside = path / "devices.yaml"
            hint = f"; did you mean '{inside}'?" if inside.is_file() else ""
            raise ConfigError([Problem(name, 0, 0, f"is a folder, not a file{hint}")])
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _too_big(size, name)
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(name, 0, 0, "file not found")]) from None
    except OSError as exc:
        raise ConfigError([Problem(name, 0, 0, f"cannot read the file: {exc.strerror or exc}")]) from None
    return load_config_text(data, name, base_dir=path.parent, checks=checks)


def summary(config: Config) -> str:
    """A few lines describing the home: rooms, devices, rules, people, broker and store."""
    roles = sum(1 for d in config.devices if d.role is not None)
    tiers = sorted({c.tier for c in config.people.caregivers})
    lines = [
        f"home '{config.home.id}' ({config.home.name}), {config.home.timezone}, {config.home.language}",
        f"{len(config.rooms)} rooms, {len(config.devices)} devices ({roles} with a role), {len(config.rules)} rules",
        f"{len(config.people.residents)} residents, {len(config.people.caregivers)} caregivers"
        + (f" (tiers {', '.join(map(str, tiers))})" if tiers else ""),
        f"mqtt: {config.mqtt.url or '127.0.0.1:1883 if a broker answers, else the embedded broker'}",
        f"store: {config.store.url or 'SQLite in the data dir'}",
    ]
    return "\n".join(lines)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of devices.yaml, for editors that complete and check YAML."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "devices.yaml of the eldercare hub"
    return schema
