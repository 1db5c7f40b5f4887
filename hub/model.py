"""The shared device model: every dialect is normalized into these types (pure data)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from hub.trusted import share_fields_set


class Frozen(BaseModel):
    """Base of every model type: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_post_init(self, context: Any, /) -> None:
        """Share the set of given field names with every model given the same (a home holds thousands)."""
        share_fields_set(self)


class Category(StrEnum):
    """What family a point kind belongs to; decides how its value is typed and used."""

    BINARY = "binary"
    NUMERIC = "numeric"
    ACTUATOR = "actuator"
    EVENT = "event"
    OTHER = "other"


class Kind(StrEnum):
    """The closed vocabulary of things a point can sense or do."""

    # binary sensors
    MOTION = "motion"
    OCCUPANCY = "occupancy"
    PRESENCE = "presence"
    CONTACT = "contact"  # normalized: True = OPEN, whatever the vendor says
    SMOKE = "smoke"
    GAS = "gas"
    CARBON_MONOXIDE = "carbon_monoxide"
    WATER_LEAK = "water_leak"
    TAMPER = "tamper"
    VIBRATION = "vibration"
    FALL = "fall"
    BATTERY_LOW = "battery_low"
    # numeric sensors
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    ILLUMINANCE = "illuminance"
    POWER = "power"
    ENERGY = "energy"
    VOLTAGE = "voltage"
    CURRENT = "current"
    BATTERY = "battery"
    CO2 = "co2"
    PM25 = "pm25"
    HEART_RATE = "heart_rate"
    BREATH_RATE = "breath_rate"
    # indoor air, weather and water use (added with the coverage of the zigbee2mqtt sample)
    PRESSURE = "pressure"
    VOC = "voc"
    PM10 = "pm10"
    CO_LEVEL = "co_level"  # a CO concentration; the CO alarm itself is carbon_monoxide
    WATER = "water"  # volume of water used, a daily-living signal
    FORMALDEHYDE = "formaldehyde"
    NOISE = "noise"  # sound level
    UV_INDEX = "uv_index"  # the WHO UV index scale, no unit
    VOC_INDEX = "voc_index"  # Sensirion's VOC index (100 = the room's usual air), no unit
    WATER_FLOW = "water_flow"  # water running now: a tap or bath left on
    # actuators
    SWITCH = "switch"
    LIGHT = "light"
    COVER = "cover"
    LOCK = "lock"
    VALVE = "valve"
    SIREN = "siren"
    CLIMATE = "climate"
    FAN = "fan"
    # events: never state, never replayed from a retained message
    BUTTON = "button"
    SOS = "sos"
    DOORBELL = "doorbell"
    # shown, counted, never silently dropped
    OTHER = "other"


class KindInfo(NamedTuple):
    """The category and canonical unit of one kind."""

    category: Category
    unit: str | None


_B, _N, _A, _E = Category.BINARY, Category.NUMERIC, Category.ACTUATOR, Category.EVENT

# One row per kind: adapters convert to these units at the boundary, so rules and the TUI
# never see a mired, a millivolt or a watt-minute.
KINDS: dict[Kind, KindInfo] = {
    Kind.MOTION: KindInfo(_B, None),
    Kind.OCCUPANCY: KindInfo(_B, None),
    Kind.PRESENCE: KindInfo(_B, None),
    Kind.CONTACT: KindInfo(_B, None),
    Kind.SMOKE: KindInfo(_B, None),
    Kind.GAS: KindInfo(_B, None),
    Kind.CARBON_MONOXIDE: KindInfo(_B, None),
    Kind.WATER_LEAK: KindInfo(_B, None),
    Kind.TAMPER: KindInfo(_B, None),
    Kind.VIBRATION: KindInfo(_B, None),
    Kind.FALL: KindInfo(_B, None),
    Kind.BATTERY_LOW: KindInfo(_B, None),
    Kind.TEMPERATURE: KindInfo(_N, "°C"),
    Kind.HUMIDITY: KindInfo(_N, "%"),
    Kind.ILLUMINANCE: KindInfo(_N, "lx"),
    Kind.POWER: KindInfo(_N, "W"),
    Kind.ENERGY: KindInfo(_N, "kWh"),
    Kind.VOLTAGE: KindInfo(_N, "V"),
    Kind.CURRENT: KindInfo(_N, "A"),
    Kind.BATTERY: KindInfo(_N, "%"),
    Kind.CO2: KindInfo(_N, "ppm"),
    Kind.PM25: KindInfo(_N, "µg/m³"),
    Kind.HEART_RATE: KindInfo(_N, "bpm"),
    Kind.BREATH_RATE: KindInfo(_N, "rpm"),
    Kind.PRESSURE: KindInfo(_N, "hPa"),
    Kind.VOC: KindInfo(_N, "ppb"),
    Kind.PM10: KindInfo(_N, "µg/m³"),
    Kind.CO_LEVEL: KindInfo(_N, "ppm"),
    Kind.WATER: KindInfo(_N, "L"),
    Kind.FORMALDEHYDE: KindInfo(_N, "µg/m³"),
    Kind.NOISE: KindInfo(_N, "dBA"),
    Kind.UV_INDEX: KindInfo(_N, None),
    Kind.VOC_INDEX: KindInfo(_N, None),
    Kind.WATER_FLOW: KindInfo(_N, "L/min"),
    Kind.SWITCH: KindInfo(_A, None),
    Kind.LIGHT: KindInfo(_A, None),
    Kind.COVER: KindInfo(_A, "%"),
    Kind.LOCK: KindInfo(_A, None),
    Kind.VALVE: KindInfo(_A, None),
    Kind.SIREN: KindInfo(_A, None),
    Kind.CLIMATE: KindInfo(_A, "°C"),
    Kind.FAN: KindInfo(_A, None),
    Kind.BUTTON: KindInfo(_E, None),
    Kind.SOS: KindInfo(_E, None),
    Kind.DOORBELL: KindInfo(_E, None),
    Kind.OTHER: KindInfo(Category.OTHER, None),
}

# A value is a JSON scalar, or for composite actuators a flat mapping of scalars:
# light {"on", "brightness" (0-100 %), "color_temp" (K)}, cover {"position", "state"},
# climate {"target", "mode", "current"}.
Scalar = bool | int | float | str | None
Value = Scalar | dict[str, Scalar]


class Protocol(StrEnum):
    """Where a device was seen; the first part of its id."""

    HA = "ha"
    Z2M = "z2m"
    TASMOTA = "tasmota"
    SHELLY = "shelly"
    HOMIE = "homie"
    MDNS = "mdns"
    CONFIG = "config"


class Status(StrEnum):
    """Whether an installer has let a device take part in the home."""

    PENDING = "pending"
    ADOPTED = "adopted"
    IGNORED = "ignored"


class AvailabilityState(StrEnum):
    """Whether a device is reachable; stale means silent past its expected interval."""

    ONLINE = "online"
    OFFLINE = "offline"
    STALE = "stale"
    UNKNOWN = "unknown"


class Availability(Frozen):
    """A device's reachability with the reason and when it was last heard from."""

    state: AvailabilityState = AvailabilityState.UNKNOWN
    reason: str | None = None
    last_seen: datetime | None = None


class Point(Frozen):
    """One thing a device senses or does."""

    key: str = Field(min_length=1, max_length=200)
    kind: Kind
    unit: str | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: tuple[str, ...] = ()
    name: str | None = None
    # Where the value comes from in the vendor's payload, and why an `other` point is one:
    # `hub normalize` shows both so that coverage gaps can be traced.
    source: str | None = None
    note: str | None = None
    diagnostic: bool = False


class Device(Frozen):
    """A physical device as the hub knows it, whatever dialect it speaks."""

    id: str = Field(min_length=1, max_length=300)
    name: str
    protocol: Protocol
    room: str | None = None
    role: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    # Native identifiers (ieee, mac, unique_id, vendor id) used to merge one physical
    # device seen through two paths.
    identifiers: dict[str, str] = Field(default_factory=dict)
    via: str | None = None
    # Where the installer can find it: the paths it was seen through (e.g. "mdns _shelly._tcp")
    # and its network address, shown in the inbox beside availability.last_seen.
    seen_via: tuple[str, ...] = ()
    address: str | None = None
    status: Status = Status.PENDING
    availability: Availability = Availability()
    points: tuple[Point, ...] = ()

    def point(self, key: str) -> Point | None:
        """The point with this key, if the device has one."""
        return next((p for p in self.points if p.key == key), None)


class Command(Frozen):
    """A request to set points on a device, in normalized values."""

    device_id: str
    values: dict[str, Value]
    origin: str = "api"
    ts: datetime


class _Event(Frozen):
    ts: datetime


class StateChanged(_Event):
    """Some of a device's point values changed (a partial update, merged by the registry)."""

    type: Literal["state_changed"] = "state_changed"
    device_id: str
    values: dict[str, Value]


class AvailabilityChanged(_Event):
    """A device came online, went offline or went stale."""

    type: Literal["availability_changed"] = "availability_changed"
    device_id: str
    availability: Availability


class PointEvent(_Event):
    """A momentary event (button press, SOS, doorbell): never state, never replayed."""

    type: Literal["point_event"] = "point_event"
    device_id: str
    key: str
    value: Value


class DeviceDiscovered(_Event):
    """A device description was seen or updated by an adapter or by mDNS."""

    type: Literal["device_discovered"] = "device_discovered"
    device: Device


class DeviceAdopted(_Event):
    """An installer adopted a device: it now takes part in rules and takes commands."""

    type: Literal["device_adopted"] = "device_adopted"
    device: Device


class DeviceRemoved(_Event):
    """A device was removed by its own bridge or by an installer."""

    type: Literal["device_removed"] = "device_removed"
    device_id: str
    reason: str


class CommandSent(_Event):
    """A command was encoded and published to the device's own topic."""

    type: Literal["command_sent"] = "command_sent"
    command: Command
    topic: str


class CommandFailed(_Event):
    """A command could not be sent, with the reason."""

    type: Literal["command_failed"] = "command_failed"
    command: Command
    reason: str


class AlertTransition(_Event):
    """An alert moved on its lifecycle (raised, notified, acknowledged, resolved, ...), as audited."""

    type: Literal["alert_changed"] = "alert_changed"
    alert_id: str
    rule_id: str
    rule_kind: str
    room: str | None = None
    severity: str
    state: str
    transition: str
    actor: str | None = None
    channel: str | None = None
    note: str | None = None


Event = Annotated[
    StateChanged
    | AvailabilityChanged
    | PointEvent
    | DeviceDiscovered
    | DeviceAdopted
    | DeviceRemoved
    | CommandSent
    | CommandFailed
    | AlertTransition,
    Field(discriminator="type"),
]


def device_id(protocol: Protocol, native_id: str) -> str:
    """The stable hub id `<protocol>-<native id>` of a device."""
    return f"{protocol.value}-{native_id}"
