"""`hub sim`: many simulated devices sending state at a steady rate, bounded in count and time, against any broker."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from hub.clock import Clock, RealClock
from hub.mqtt import LinkSettings
from hub.sim.dialects import SimDevice, SimSpec, ZigbeeBridge, ZigbeeDevice, build
from hub.sim.fastpub import FastPublisher
from hub.wire import Message

log = logging.getLogger(__name__)

DIALECTS = ("zigbee2mqtt", "homeassistant", "tasmota", "shelly", "homie")
MAX_DEVICES = 100_000
MAX_RATE = 1_000_000.0
MAX_SECONDS = 3600.0
TICK = 0.005  # seconds between bursts: fine enough for an even stream, coarse enough for Python

# Per dialect: the template of a load device, its initial values, and the value that changes.
_LOAD_KIND: dict[str, tuple[str, dict[str, float | bool], str]] = {
    "zigbee2mqtt": ("climate", {"temperature": 21.0, "humidity": 50.0, "battery": 90}, "temperature"),
    "homeassistant": ("climate", {"temperature": 21.0, "humidity": 50.0}, "temperature"),
    "tasmota": ("plug", {"on": True, "power": 100.0}, "power"),
    "shelly": ("plug", {"on": True, "power": 100.0}, "power"),
    "homie": ("env", {"temperature": 21.0, "humidity": 50.0}, "temperature"),
}


def load_spec(dialect: str, i: int) -> SimSpec:
    """The i-th load device of a dialect, with a native id of that dialect's own form."""
    template, initial, _ = _LOAD_KIND[dialect]
    natives = {
        "zigbee2mqtt": f"0x00124b00{i:08x}",
        "homeassistant": f"load-{i}",
        "tasmota": f"02AB{i:08X}",
        "shelly": f"shellyplus1pm-02ab{i:08x}",
        "homie": f"load-{i}",
    }
    name = f"load/{i}" if dialect == "zigbee2mqtt" else f"Load {i}"
    return SimSpec(f"{dialect}-{i}", dialect, natives[dialect], template, name, dict(initial))


# Dialects whose discovery is retained, so that a hub started later still finds their devices
# (a Shelly Gen2 device is only known from its next NotifyStatus).
RETAINED_DISCOVERY = ("zigbee2mqtt", "homeassistant", "tasmota", "homie")
MIXES: dict[str, tuple[str, ...]] = {"mixed": DIALECTS, "retained": RETAINED_DISCOVERY}


def load_specs(devices: int, dialect: str) -> list[SimSpec]:
    """`devices` load devices of one dialect, or spread over several: `mixed` (all five) or `retained`."""
    mix = MIXES.get(dialect)
    if mix is not None:
        return [load_spec(mix[i % len(mix)], i) for i in range(devices)]
    if dialect not in _LOAD_KIND:
        raise ValueError(f"dialect {dialect!r}: one of {', '.join(DIALECTS)}, mixed or retained")
    return [load_spec(dialect, i) for i in range(devices)]


def announcements(devices: list[SimDevice], now: datetime) -> list[Message]:
    """Everything the devices send on boot: Zigbee2MQTT's bridge list first, then each device."""
    zigbee = [d for d in devices if isinstance(d, ZigbeeDevice)]
    out = ZigbeeBridge(zigbee).announce() if zigbee else []
    for dev in devices:
        out += dev.announce(now)
    return out


VARIANTS = 10  # distinct payloads per device, cycled: encoded once, so the generator outruns any consumer


def variants(dev: SimDevice, now: datetime) -> list[Message]:
    """A device's state reports for VARIANTS successive values of its changing point, encoded by its dialect."""
    _, _, key = _LOAD_KIND[dev.spec.dialect]
    out: list[Message] = []
    for k in range(VARIANTS):
        out += dev.report({key: 20.0 + k / 10.0}, now)
    return out


def stream(devices: list[SimDevice], now: datetime) -> Iterator[Message]:
    """An endless round-robin over the devices; each turn sends a device its next value's report(s)."""
    table = [variants(d, now) for d in devices]
    for turn in itertools.count():
        k = turn // len(devices) % VARIANTS
        msgs = table[turn % len(devices)]
        per = len(msgs) // VARIANTS
        yield from msgs[k * per : (k + 1) * per]


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How much load: bounded in devices, rate, time and count."""

    devices: int = 1000
    rate: float = 1000.0
    seconds: float = 10.0
    dialect: str = "zigbee2mqtt"
    count: int | None = None  # stop after this many state messages (whichever bound comes first)
    announce: bool = True

    def check(self) -> None:
        """ValueError naming the first bound out of range."""
        if not 1 <= self.devices <= MAX_DEVICES:
            raise ValueError(f"--devices must be 1..{MAX_DEVICES}")
        if not 0 < self.rate <= MAX_RATE:
            raise ValueError(f"--rate must be in (0, {MAX_RATE:.0f}] messages per second")
        if not 0 <= self.seconds <= MAX_SECONDS:
            raise ValueError(f"--seconds must be 0..{MAX_SECONDS:.0f}")
        if self.count is not None and self.count < 0:
            raise ValueError("--count must not be negative")
        load_specs(1, self.dialect)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load run did."""

    announced: int
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second achieved."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


async def run_load(pub: FastPublisher, plan: LoadPlan, *, clock: Clock | None = None) -> LoadReport:
    """Announce the devices (retained), then stream state at `plan.rate` until the time or count bound."""
    plan.check()
    clock = clock or RealClock()
    devices = [build(s) for s in load_specs(plan.devices, plan.dialect)]
    announced = 0
    if plan.announce:
        boot = announcements(devices, clock.now())
        await pub.send(boot)
        announced = len(boot)
    limit = plan.count if plan.count is not None else int(plan.rate * plan.seconds)
    burst = max(1, int(plan.rate * TICK * 4))  # a late tick catches up, but never in one unbounded write
    began = clock.now()
    messages = stream(devices, began)
    sent = 0
    while sent < limit:
        elapsed = (clock.now() - began).total_seconds()
        if elapsed >= plan.seconds:
            break
        n = min(limit, int(elapsed * plan.rate) + 1, sent + burst) - sent
        if n > 0:
            await pub.send(itertools.islice(messages, n))
            sent += n
        await clock.sleep(TICK)
    await pub.sync()
    return LoadReport(announced, sent, (clock.now() - began).total_seconds())


async def load_main(url: str, plan: LoadPlan, client_id: str) -> LoadReport:
    """Connect, run the load, and disconnect once the broker has read every message."""
    settings = LinkSettings.from_url(url)
    if settings.tls or settings.username:
        raise ValueError("hub sim speaks plain anonymous MQTT only (load against private test brokers)")
    pub = await FastPublisher.connect(settings.host, settings.port, client_id)
    try:
        return await run_load(pub, plan)
    finally:
        await pub.close()
