"""The simulated home's async shell: one MQTT link for every device, the day player and incident injection."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from hub.clock import Clock, RealClock
from hub.mqtt import Link, LinkSettings
from hub.sim.day import DAY, INCIDENTS, Mutes, Scheduled, Step, seconds_of_day
from hub.sim.dialects import SimDevice, SimSpec, ZigbeeBridge, ZigbeeDevice, build
from hub.wire import Message

log = logging.getLogger(__name__)

DAY_SECONDS = 86400.0


def control_topic(home_id: str) -> str:
    """Where `hub demo` (or anyone) publishes an incident name to inject it."""
    return f"sim/{home_id}/incident"


class SimHome:
    """Every simulated device of one home behind one MQTT link; devices obey the commands they receive."""

    def __init__(self, specs: Iterable[SimSpec], link: Link, *, clock: Clock | None = None) -> None:
        self.link = link
        self.clock: Clock = clock or RealClock()
        self.devices: dict[str, SimDevice] = {s.key: build(s) for s in specs}
        zigbee = [d for d in self.devices.values() if isinstance(d, ZigbeeDevice)]
        self.bridge = ZigbeeBridge(zigbee) if zigbee else None
        self.counters: Counter[str] = Counter()
        self.started = asyncio.Event()

    @staticmethod
    def settings(url: str, client_id: str) -> LinkSettings:
        """Link settings for the simulated home: the Zigbee2MQTT bridge's will is the link's will."""
        return LinkSettings.from_url(
            url,
            client_id=client_id,
            will_topic="zigbee2mqtt/bridge/state",
            will_payload=b'{"state":"offline"}',
            max_pending=100_000,
        )

    async def start(self) -> None:
        """Subscribe every device's command topics, then announce the whole home (bridge first)."""
        for dev in self.devices.values():
            for pattern in dev.command_filters():
                self.link.subscribe(pattern, self._commands_for(dev))
        await self.link.wait_subscribed()
        now = self.clock.now()
        if self.bridge is not None:
            await self.publish(self.bridge.announce())
        for dev in self.devices.values():
            await self.publish(dev.announce(now))
        self.started.set()

    async def publish(self, messages: Iterable[Message]) -> None:
        """Publish; retained messages are remembered so that a reconnection republishes them, as devices do."""
        for msg in messages:
            if msg.retain:
                await self.link.set_retained(msg.topic, msg.payload, qos=msg.qos)
            else:
                await self.link.send(msg)
            self.counters["published"] += 1

    def _commands_for(self, dev: SimDevice) -> Callable[[Message], Any]:
        async def obey(msg: Message) -> None:
            out = dev.command(msg, self.clock.now())
            if out:
                self.counters["commands"] += 1
                log.info("sim: %s obeyed %s %s", dev.spec.key, msg.topic, msg.payload[:80])
            await self.publish(out)

        return obey

    async def set(self, key: str, values: Mapping[str, Any]) -> None:
        """Change one device as the resident (or an incident) does; `online` takes it on or off the network."""
        dev = self.devices.get(key)
        if dev is None:
            self.counters["unknown_device"] += 1
            log.warning("sim: no device %r in this home", key)
            return
        rest = dict(values)
        online = rest.pop("online", None)
        if online is not None:
            await self.publish(dev.availability(bool(online)))
        if rest:
            await self.publish(dev.report(rest, self.clock.now()))

    async def offline(self) -> None:
        """Every device says goodbye (a clean power-off of the simulated home)."""
        for dev in self.devices.values():
            await self.publish(dev.availability(False))
        if self.bridge is not None:
            await self.publish([self.bridge.offline()])


@dataclass(frozen=True, slots=True)
class Timeline:
    """Compressed time: `speed` simulated seconds per real second, from `start` (local time of day)."""

    start: time
    speed: float

    def sim_seconds(self, real_elapsed: float) -> float:
        """Simulated seconds since midnight of the first day (may pass one day)."""
        return seconds_of_day(self.start) + real_elapsed * self.speed

    def real_seconds(self, sim_seconds: float) -> float:
        """Real seconds from the start until the simulated clock reads `sim_seconds`."""
        return (sim_seconds - seconds_of_day(self.start)) / self.speed


def due_steps(script: Iterable[Step], start_sim: float, horizon: float) -> list[tuple[float, Step]]:
    """The (absolute sim second, step) pairs in [start_sim, horizon), repeating the day as often as needed."""
    ordered = sorted(script, key=lambda s: seconds_of_day(s.at))
    out: list[tuple[float, Step]] = []
    day = int(start_sim // DAY_SECONDS)
    while day * DAY_SECONDS < horizon:
        for step in ordered:
            at = day * DAY_SECONDS + seconds_of_day(step.at)
            if start_sim <= at < horizon:
                out.append((at, step))
        day += 1
    return out


class DayPlayer:
    """Walks the day script in compressed time, and injects incidents on a schedule or on request."""

    def __init__(
        self,
        home: SimHome,
        timeline: Timeline,
        *,
        script: Iterable[Step] = DAY,
        schedule: Iterable[Scheduled] = (),
        on_incident: Callable[[str, str], None] | None = None,
    ) -> None:
        self.home = home
        self.timeline = timeline
        self.script = tuple(script)
        self.schedule = list(schedule)
        self.mutes = Mutes()
        self.on_incident = on_incident
        self.injected: list[str] = []
        self._began: datetime | None = None

    def sim_now(self) -> float:
        """Simulated seconds since midnight of the first day."""
        if self._began is None:
            return seconds_of_day(self.timeline.start)
        return self.timeline.sim_seconds((self.home.clock.now() - self._began).total_seconds())

    def sim_time(self) -> time:
        """The simulated local time of day, for the screen."""
        s = int(self.sim_now()) % int(DAY_SECONDS)
        return time(s // 3600, s % 3600 // 60, s % 60)

    async def run(self) -> None:
        """Play the day forever (the caller cancels it), with the scheduled incidents in between."""
        clock = self.home.clock
        self._began = clock.now()
        async with asyncio.TaskGroup() as tg:
            for item in self.schedule:
                tg.create_task(self._later(item))
            cursor = self.sim_now()
            while True:
                horizon = cursor + 3600.0
                for at, step in due_steps(self.script, cursor, horizon):
                    await self._until(at)
                    if self.mutes.allows(step):
                        await self.home.set(step.device, step.values)
                await self._until(horizon)
                cursor = horizon

    async def _until(self, sim_at: float) -> None:
        assert self._began is not None
        when = self._began + timedelta(seconds=self.timeline.real_seconds(sim_at))
        await self.home.clock.sleep_until(when)

    async def _later(self, item: Scheduled) -> None:
        assert self._began is not None
        await self.home.clock.sleep_until(self._began + timedelta(seconds=item.after))
        await self.inject(item.incident)

    async def inject(self, name: str) -> bool:
        """Start an incident now; False (logged) for an unknown name."""
        incident = INCIDENTS.get(name)
        if incident is None:
            self.home.counters["unknown_incident"] += 1
            log.warning("sim: unknown incident %r (known: %s)", name, ", ".join(INCIDENTS))
            return False
        self.mutes.add(incident)
        self.injected.append(name)
        log.info("sim: incident %s: %s", name, incident.title)
        if self.on_incident is not None:
            self.on_incident(name, incident.title)
        start = self.sim_now()
        for offset, device, values in incident.steps:
            if offset:
                await self._until(start + offset)
            await self.home.set(device, values)
        return True

    def control_handler(self) -> Callable[[Message], Any]:
        """An MQTT handler for the control topic: the payload names an incident; each runs in the background."""
        running: set[asyncio.Task[bool]] = set()

        def handle(msg: Message) -> None:
            name = msg.payload.decode(errors="replace").strip()
            task = asyncio.get_running_loop().create_task(self.inject(name))
            running.add(task)
            task.add_done_callback(running.discard)

        return handle
