"""Builds the hub from its configuration and owns the one TaskGroup that every task lives in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hub import __version__, heap
from hub.activity import ActivityBook
from hub.adapters import BY_PROTOCOL, build_adapters
from hub.adapters.base import Adapter, Rejected
from hub.api import (
    REQUEST_MODELS,
    AckRequest,
    AdoptRequest,
    HubStatus,
    IgnoreRequest,
    ModeRequest,
    ModeState,
    RequestError,
    RuleSetRequest,
    SetRequest,
    Topics,
    device_payload,
    discovered_json,
    event_json,
    parse_request,
    state_json,
)
from hub.broker import EmbeddedBroker, Finder, choose_broker
from hub.care import BoxCare
from hub.clock import Clock, RealClock
from hub.config import Config
from hub.model import Command, CommandFailed, CommandSent, Device, DeviceDiscovered, Event, StateChanged, Status, Value
from hub.mqtt import Link, LinkSettings
from hub.registry import (
    CommandRefused,
    Effect,
    Forward,
    Named,
    PublishDevice,
    PublishState,
    Registry,
    Unpublish,
)
from hub.rules.runtime import RulesRuntime
from hub.store import Store, StoreError
from hub.throttle import Throttle
from hub.wire import Message

if TYPE_CHECKING:
    # Loaded when the home browses mDNS (zeroconf is 3 MB of a hub that may never browse).
    from hub import mdns

log = logging.getLogger(__name__)

RETENTION_EVERY = timedelta(hours=6)
# How often the inbox drops pending devices not seen for discovery.pending_expiry_hours
# (at most; a short expiry is checked four times per period).
EXPIRY_EVERY = timedelta(minutes=30)
# Effects carried out per round of the `effects` task, at most: one transaction for a burst
# of discoveries, but not one for the 10,000 of a big home's start. Held all at once, their
# descriptions, rows and publishes left 30-50 MB more resident after start-up at 10,000
# devices (bench/scale.py; 300 a round saved nothing more), and none showed before the last.
EFFECTS_PER_ROUND = 1000
# A device's state topic changes at once, then at most once in this many seconds, with its
# last state at the window's end: a chattering sensor (a power meter reporting ten times a
# second, a flood of 1,000 devices) would send every subscriber every report, and each
# publish costs the loop ~3 µs and the broker more. Every change still goes to `events` and
# to the history. (Zigbee2MQTT's per-device `throttle` does this at the source.)
STATE_EVERY = 0.1
# Effects that wait for the store: a device is stored before it is shown (or hidden).
_STORED_FIRST = (PublishDevice, Unpublish)


@dataclass(frozen=True, slots=True)
class Paths:
    """Where the hub keeps its data."""

    data_dir: Path
    config_path: Path | None = None  # devices.yaml, which backups include

    def store_url(self) -> str:
        """The default store: a SQLite file in the data folder."""
        return f"sqlite:///{self.data_dir / 'hub.db'}"


@dataclass(slots=True)
class _Waiter:
    """A caller of `_carry_out`: its effects are queue[start:end], told when the last is carried out."""

    start: int
    end: int
    done: asyncio.Future[None]
    error: StoreError | None = None

    def shift(self, count: int) -> bool:
        """The first `count` queued effects were taken for a round: index the rest; whether any were ours."""
        ours = self.start < count
        self.start, self.end = max(self.start - count, 0), self.end - count
        return ours

    def tell(self, error: StoreError | None) -> None:
        """Its last effect was carried out: done, or the first error of any of its rounds."""
        error = self.error or error
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


class Hub:
    """One home's hub: broker link, adapters, registry, store and API, run under one TaskGroup."""

    def __init__(self, config: Config, paths: Paths, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.topics = Topics.for_home(config.home.id, config.mqtt.topic_root)
        self.registry = Registry(
            {d.id: Named(d.name, d.room, d.role.value if d.role else None) for d in config.devices},
            auto_adopt=config.discovery.auto_adopt,
        )
        self.store = Store(
            config.store.url or paths.store_url(),
            clock=self.clock,
            batch_size=config.store.batch_size,
            batch_seconds=config.store.batch_seconds,
        )
        # Watchdog, health alerts and daily backups; a backup is taken before any schema upgrade.
        self.care = BoxCare(config, paths.data_dir, paths.config_path, self.store, self.topics, self.clock)
        self.store.before_upgrade = self.care.before_upgrade
        self.adapters: dict[str, Adapter] = build_adapters(config.discovery)
        self.counters: Counter[str] = Counter()
        self.started_at = self.clock.now()
        self.mode = ModeState(mode="home", since=self.started_at)
        self.broker_url = ""
        self.link: Link | None = None
        self._handlers: dict[str, Callable[[Message], None]] = {}
        self._subscribed: dict[str, set[str]] = {}
        self._resubscribe: set[str] = set()  # adapters that discovered devices this turn of the loop
        # Each device's description as last shown (so stored), under devices/ or inbox/ by its
        # status: republished from here on every connection rather than kept in the link as bytes.
        self._shown: dict[str, Device] = {}
        self._states: Throttle[str, PublishState] = Throttle(STATE_EVERY, self._publish_state)
        # Effects waiting for the store (a device is stored before it is shown) and those behind
        # them, kept in order, with the merged values of each state change when it was queued.
        # The `effects` task carries them out in rounds of EFFECTS_PER_ROUND: a burst of
        # discoveries (thousands of retained ones at start-up) costs a transaction a round, not one each.
        self._queue: list[tuple[Effect, dict[str, Value] | None]] = []
        self._queue_waiters: list[_Waiter] = []
        self._queued = asyncio.Event()
        self._storing = False  # a batch taken from the queue is not carried out yet
        self.ready = asyncio.Event()
        # Called with every event the hub forwards (the rules engine and `hub demo` listen).
        self.listeners: list[Callable[[Event], None]] = []
        # The rules engine and alert book (hub/rules): restored from the store on start, fed every event.
        self.rules = RulesRuntime(
            config,
            self.registry,
            self.store,
            self.clock,
            self.topics,
            link=self._link,
            command=self.send_command,
            on_mode=self._mode_changed,
        )
        self.listeners.append(self.rules.listener)
        # Today's and yesterday's activity per room, retained on `activity` for every TUI.
        self.activity = ActivityBook(config.home.timezone, self._device_of, self.clock)
        self.listeners.append(self.activity.listener)
        # The hub's own health alerts (disk, broker, backup) escalate like any other alert.
        self.care.sink = self.rules
        self.mdns_browser: mdns.Browser | None = None  # while mDNS discovery runs
        self._stop = asyncio.Event()

    # -- life cycle --------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the hub to shut down cleanly (flush the store, say offline)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until stop() or a signal; every task is owned by one TaskGroup."""
        choice = await choose_broker(self.config.mqtt.url, port=self.config.mqtt.local_port, find=self._broker_finder())
        self.broker_url = choice.url
        embedded = EmbeddedBroker(port=choice.port) if choice.kind == "embedded" else None
        if embedded is not None:
            await embedded.start()
        try:
            await self._run_with_broker()
        finally:
            if embedded is not None:
                await embedded.stop()

    async def _run_with_broker(self) -> None:
        await asyncio.to_thread(self.store.open)
        devices = await asyncio.to_thread(self.store.load_devices)
        states = await asyncio.to_thread(self.store.last_states)
        self.registry.decisions.update(
            {d.id: d.status for d in devices if d.status is not Status.PENDING and d.id not in self.registry.named}
        )
        self.registry.seed(devices, states)
        self.mode = await self.rules.restore()
        await self.activity.restore(self.store, list(self.registry.records))
        self.link = link = Link(
            self._link_settings(),
            clock=self.clock,
            on_drop=lambda reason: self.counters.update([f"dropped.{reason}"]),
            republish=self._descriptions,
        )
        for adapter in self.adapters.values():
            self._handlers[adapter.name] = self._adapter_handler(adapter)
            self._subscribe_adapter(adapter)
        for pattern in self.topics.requests():
            link.subscribe(pattern, self._on_request)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(link.run(), name="mqtt")
                tg.create_task(self.store.run(), name="store")
                tg.create_task(self._effects(), name="effects")
                tg.create_task(self.rules.run(), name="rules")
                tg.create_task(self.care.run(link), name="box-care")
                tg.create_task(self._retention(), name="retention")
                tg.create_task(self.activity.run(link, self.topics), name="activity")
                tg.create_task(self._publish_initial(), name="initial-publish")
                tg.create_task(self._expire_pending(), name="inbox-expiry")
                if self.config.discovery.mdns.enabled:
                    tg.create_task(self._browse_mdns(), name="mdns")
                await self._stop.wait()
                self._states.flush()  # while the link is still up: the last states are the ones retained
                raise _Stopping
        except* _Stopping:
            pass
        finally:
            await self.store.close()
            log.info("hub stopped; store flushed")

    def _link_settings(self) -> LinkSettings:
        m = self.config.mqtt
        return LinkSettings.from_url(
            self.broker_url,
            username=m.username,
            password=m.password_text(),
            ca_file=m.ca_file,
            cert_file=m.cert_file,
            key_file=m.key_file,
            client_id=m.client_id or f"hub-{self.config.home.id}-{random.randrange(16**6):06x}",
            keepalive=m.keepalive,
            max_payload_bytes=m.max_payload_bytes,
            will_topic=self.topics.status,
            will_payload=HubStatus(state="offline", version=__version__).model_dump_json().encode(),
            birth_payload=self._status_payload(),
        )

    def _status_payload(self) -> bytes:
        return (
            HubStatus(state="online", version=__version__, started_at=self.started_at, broker=self.broker_url)
            .model_dump_json()
            .encode()
        )

    async def _publish_initial(self) -> None:
        link = self._link()
        await link.wait_connected(timeout=None)
        await link.set_retained(self.topics.mode, self.mode.model_dump_json().encode())
        effects = self.registry.placeholders()
        for dev in self.registry.devices():
            if dev.status is Status.IGNORED:
                continue  # restored so that the decision holds, never shown
            effects.append(PublishDevice(dev))
            rec = self.registry.get(dev.id)
            if rec is not None and rec.values:
                effects.append(PublishState(dev.id, rec.ts, rec.values, dev.availability))
        await self._carry_out(effects)
        self.ready.set()
        log.info("hub ready: %d devices, topic root %s", len(self.registry.records), self.topics.root)

    async def _retention(self) -> None:
        r = self.config.store.retention
        while True:
            try:
                deleted = await self.store.apply_retention(
                    self.clock.now(), state_days=r.state_days, events_days=r.events_days, alerts_days=r.alerts_days
                )
            except StoreError as exc:
                # A failed purge keeps more history than wanted; it never stops the hub.
                self.counters["retention_failed"] += 1
                log.warning("retention purge failed (will retry in %s): %s", RETENTION_EVERY, exc)
            else:
                if any(deleted.values()):
                    log.info("retention purge: %s", deleted)
            await self.clock.sleep(RETENTION_EVERY.total_seconds())

    # -- discovery: mDNS and the inbox's expiry ------------------------------------------

    def _broker_finder(self) -> Finder | None:
        # Only a home without a configured broker looks for one, and only where mDNS is allowed.
        mdns_cfg = self.config.discovery.mdns
        if self.config.mqtt.url or not mdns_cfg.enabled:
            return None

        async def find() -> tuple[str, int, str] | None:
            from hub import mdns

            return await mdns.find_broker(mdns_cfg.interfaces)

        return find

    async def _browse_mdns(self) -> None:
        # Sightings wait for the initial publish, so that devices restored from the store are
        # in place before an advertisement updates them.
        await self.ready.wait()
        from hub import mdns

        browser = mdns.Browser(self.config.discovery.mdns.interfaces, clock=self.clock)
        try:
            browser.open()
        except OSError as exc:
            # No usable interface: the hub runs on without mDNS, and says why.
            self.counters["mdns_unavailable"] += 1
            log.error("mDNS discovery is off: %s", exc)
            return
        self.mdns_browser = browser
        devices = mdns.Devices()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._mdns_refresh(devices), name="mdns-refresh")
                async for change in browser.changes():
                    await self._on_sighting(devices, change)
        finally:
            await browser.close()

    async def _on_sighting(self, devices: mdns.Devices, change: mdns.Change) -> None:
        from hub import mdns

        dev = devices.apply(change)
        if isinstance(change, mdns.Lost):
            # A goodbye (often a reboot) is not a removal: the inbox forgets a device only
            # after pending_expiry_hours without any sighting.
            self.counters["mdns_lost"] += 1
            log.info("mDNS: %s %r said goodbye", change.sighting.short, change.sighting.name)
        if dev is not None:
            await self._sighted(dev)

    async def _sighted(self, dev: Device) -> None:
        try:
            await self._carry_out(self.registry.apply(DeviceDiscovered(ts=self.clock.now(), device=dev)))
        except Exception:
            # One odd advertisement (or a store hiccup) must not end discovery for the home.
            self.counters["mdns_sighting_failed"] += 1
            log.exception("mDNS: sighting of %s could not be applied", dev.id)

    def _expiry(self) -> tuple[timedelta, float]:
        max_age = timedelta(hours=self.config.discovery.pending_expiry_hours)
        return max_age, min(max_age / 4, EXPIRY_EVERY).total_seconds()

    async def _mdns_refresh(self, devices: mdns.Devices) -> None:
        # A device that keeps advertising without changing fires no browser event; refresh
        # its last_seen well within the expiry so that it never leaves the inbox while present.
        _, every = self._expiry()
        while True:
            await self.clock.sleep(every)
            for dev in devices.present():
                await self._sighted(dev)

    async def _expire_pending(self) -> None:
        max_age, every = self._expiry()
        await self.ready.wait()
        while True:
            try:
                await self._carry_out(self.registry.expire(self.clock.now(), max_age))
            except StoreError as exc:
                # The inbox keeps a device a little longer; the next round tries again.
                self.counters["expiry_failed"] += 1
                log.warning("inbox expiry failed (will retry in %.0f s): %s", every, exc)
            await self.clock.sleep(every)

    def _device_of(self, device_id: str) -> Device | None:
        rec = self.registry.get(device_id)
        return rec.device if rec is not None else None

    def _link(self) -> Link:
        if self.link is None:
            raise RuntimeError("the hub is not running")
        return self.link

    # -- device messages ---------------------------------------------------------------

    def _subscribe_adapter(self, adapter: Adapter) -> None:
        # Some dialects learn their devices' topics from discovery (HA state topics, a
        # Tasmota full topic in an unusual order), so their filters grow as devices appear.
        link = self._link()
        known = self._subscribed.setdefault(adapter.name, set())
        for pattern in adapter.subscriptions():
            if pattern not in known:
                known.add(pattern)
                link.subscribe(pattern, self._handlers[adapter.name])

    def _discovered_by(self, adapter: Adapter) -> None:
        # An adapter lists all its filters, which takes longer the more devices it knows: ask
        # once per turn of the loop, after the messages the link hands over in that turn.
        if not self._resubscribe:
            asyncio.get_running_loop().call_soon(self._subscribe_discovered)
        self._resubscribe.add(adapter.name)

    def _subscribe_discovered(self) -> None:
        names, self._resubscribe = self._resubscribe, set()
        for name in names:
            try:
                self._subscribe_adapter(self.adapters[name])
            except ValueError as exc:  # a filter made from an odd device topic: the others still count
                self.counters[f"bad_filter.{name}"] += 1
                log.error("%s: could not subscribe a discovered device's topics: %s", name, exc)

    def _adapter_handler(self, adapter: Adapter) -> Callable[[Message], None]:
        def handle(msg: Message) -> None:
            try:
                events = adapter.feed(msg, self.clock.now())
            except Rejected as exc:
                self.counters[f"rejected.{adapter.name}.{exc.reason}"] += 1
                log.debug("%s rejected %s: %s", adapter.name, msg.topic, exc)
                return
            for event in events:
                if isinstance(event, DeviceDiscovered):
                    self._discovered_by(adapter)
                self._submit(self.registry.apply(event))

        return handle

    # -- carrying out the registry's effects ---------------------------------------------

    def _submit(self, effects: list[Effect]) -> None:
        """Carry out effects now, or queue them behind those that wait for the store (order kept)."""
        if not (self._queue or self._storing):
            for effect in effects:
                if isinstance(effect, _STORED_FIRST):
                    break
            else:
                # A state report while nothing waits: no store write, no task switch (the per-message path).
                link = self._link()
                for effect in effects:
                    self._now(link, effect, None)
                return
        self._queue += [(e, self._merged(e)) for e in effects]
        self._queued.set()

    async def _carry_out(self, effects: list[Effect]) -> None:
        """Queue effects and wait until they are carried out; StoreError if their batch could not be stored."""
        done = asyncio.get_running_loop().create_future()
        start = len(self._queue)
        self._queue += [(e, self._merged(e)) for e in effects]
        self._queue_waiters.append(_Waiter(start, len(self._queue), done))
        self._queued.set()
        await done

    def _merged(self, effect: Effect) -> dict[str, Value] | None:
        # History rows hold the merged state as of the change, not as of when the row is written.
        if isinstance(effect, Forward) and isinstance(effect.event, StateChanged):
            rec = self.registry.get(effect.event.device_id)
            return rec.values if rec else effect.event.values
        return None

    async def _effects(self) -> None:
        """Carry out queued effects in batches: every device they show or hide stored in one transaction, then shown."""
        while True:
            await self._queued.wait()
            self._queued.clear()
            batch, self._queue = self._queue[:EFFECTS_PER_ROUND], self._queue[EFFECTS_PER_ROUND:]
            if self._queue:
                self._queued.set()  # the next round takes the rest, after this one is shown
            # Callers whose last effect is in this round are told after it; the others' effects
            # are re-indexed now, as callers queueing during the round index what is left.
            finishing = [w for w in self._queue_waiters if w.end <= len(batch)]
            self._queue_waiters = [w for w in self._queue_waiters if w.end > len(batch)]
            partly = [w for w in self._queue_waiters if w.shift(len(batch))]
            self._storing = True
            try:
                error, saved = await self._store(batch)
                await self._show(batch, stored=error is None, saved=saved)
            finally:
                self._storing = False
            for waiter in partly:
                waiter.error = waiter.error or error
            for waiter in finishing:
                waiter.tell(error)

    async def _store(
        self, batch: list[tuple[Effect, dict[str, Value] | None]]
    ) -> tuple[StoreError | None, dict[str, tuple[Device, str]]]:
        # The last word on each device in the batch: saved as shown, or forgotten. Returned with
        # each saved device's JSON, which is its description on the hub API too.
        final: dict[str, Device | None] = {}
        for effect, _ in batch:
            match effect:
                case PublishDevice(device=dev):
                    final[dev.id] = dev
                case Unpublish(device_id=dev_id):
                    kept = self.registry.get(dev_id)
                    # Gone, or now an alias of a device seen through a better path: forgotten.
                    # Ignored, not gone: kept, as the decision must survive a restart.
                    final[dev_id] = kept.device if kept is not None and kept.device.id == dev_id else None
        if not final:
            return None, {}
        saving = [d for d in final.values() if d is not None]
        try:
            texts = await self.store.save_devices(saving, [i for i, d in final.items() if d is None])
        except Exception as exc:  # StoreError, or the writer thread gone under us
            # Not shown, so that nothing a caregiver sees is lost in a crash; the next discovery retries.
            self.counters["devices_not_stored"] += len(final)
            log.error("%d device descriptions could not be stored, not shown: %s", len(final), exc)
            return (exc if isinstance(exc, StoreError) else StoreError(f"{type(exc).__name__}: {exc}")), {}
        return None, {d.id: (d, text) for d, text in zip(saving, texts, strict=True)}

    async def _show(
        self,
        batch: list[tuple[Effect, dict[str, Value] | None]],
        *,
        stored: bool,
        saved: dict[str, tuple[Device, str]],
    ) -> None:
        link = self._link()
        for effect, merged in batch:
            try:
                match effect:
                    case PublishDevice(device=dev):
                        if stored:
                            text = saved.get(dev.id)
                            # An earlier version in the same round was not the one saved: dumped anew.
                            payload = text[1].encode() if text is not None and text[0] is dev else device_payload(dev)
                            await self._publish_device(link, dev, payload)
                    case Unpublish(device_id=dev_id):
                        for topic in (
                            self.topics.device(dev_id),
                            self.topics.inbox(dev_id),
                            self.topics.device_state(dev_id),
                        ):
                            await link.clear_retained(topic)
                        self._shown.pop(dev_id, None)
                        self._states.drop(dev_id)
                    case Forward(event=DeviceDiscovered(device=dev) as found) if (
                        stored and (text := saved.get(dev.id)) is not None and text[0] is dev
                    ):
                        self._forward(link, found, payload=discovered_json(found, text[1]))
                    case _:
                        self._now(link, effect, merged)
            except Exception:
                # One bad effect (a bug) must not stop the others or the hub, as one bad message does not.
                self.counters["effect_failed"] += 1
                log.exception("could not carry out %s", type(effect).__name__)

    def _now(self, link: Link, effect: Effect, merged: dict[str, Value] | None) -> None:
        # The effects that need neither the store nor a wait: state publishes and forwards.
        match effect:
            case PublishState():
                self._states.offer(effect.device_id, effect)
            case Forward(event=event):
                self._forward(link, event, merged)

    def _publish_state(self, effect: PublishState) -> None:
        # What the state throttle sends, now or at its window's end (then outside any effect's try).
        try:
            self._link().keep(
                self.topics.device_state(effect.device_id),
                state_json(effect.ts, effect.values, effect.availability),
            )
        except Exception:
            self.counters["effect_failed"] += 1
            log.exception("could not publish the state of %s", effect.device_id)

    async def _publish_device(self, link: Link, dev: Device, payload: bytes) -> None:
        topic, other = self._places(dev)
        link.show(topic, payload)
        before = self._shown.get(dev.id)
        self._shown[dev.id] = dev
        if before is None or self._places(before)[0] != topic:
            # Moved between inbox and devices (or first publish of this run, when a retained
            # copy from an earlier run may sit in the other place): clear the other one.
            await link.clear_retained(other)

    def _places(self, dev: Device) -> tuple[str, str]:
        # Where a device's description goes by its status, and the place it must then leave.
        devices, inbox = self.topics.device(dev.id), self.topics.inbox(dev.id)
        return (devices, inbox) if dev.status is Status.ADOPTED else (inbox, devices)

    def _descriptions(self) -> Iterator[tuple[str, bytes]]:
        """The retained device descriptions, as last shown: the link republishes them on every connection."""
        for dev in list(self._shown.values()):
            yield self._places(dev)[0], device_payload(dev)

    def _forward(
        self, link: Link, event: Event, merged: dict[str, Value] | None = None, payload: bytes | None = None
    ) -> None:
        if payload is None:
            payload = event_json(event)
        if isinstance(event, StateChanged):
            # History rows hold the merged state, so that the last row restores a device whole.
            if merged is None:
                rec = self.registry.get(event.device_id)
                merged = rec.values if rec else event.values
            self.store.record_state(event.device_id, merged, event.ts)
        else:
            self.store.record_event(event, payload.decode())  # logged as published, not dumped again
        link.post(self.topics.events, payload)
        for listener in self.listeners:
            listener(event)

    # -- requests to the hub -----------------------------------------------------------

    async def _on_request(self, msg: Message) -> None:
        parsed = self.topics.parse_request(msg.topic)
        if parsed is None:
            return
        verb, ident = parsed
        handler = self._REQUESTS.get(verb)
        if handler is None:
            self._refuse(msg.topic, "not_supported", f"'{verb}' requests are not handled by this hub yet")
            return
        try:
            request = parse_request(REQUEST_MODELS[verb], msg.payload)
            await handler(self, ident, request)
        except RequestError as exc:
            self._refuse(msg.topic, exc.reason, exc.detail)
        except (CommandRefused, KeyError) as exc:
            self._refuse(msg.topic, "refused", str(exc).strip("'\""))

    def _refuse(self, topic: str, reason: str, detail: str) -> None:
        self.counters[f"request_rejected.{reason}"] += 1
        log.warning("request on %s rejected (%s): %s", topic, reason, detail)

    async def _set(self, device_id: str, request: SetRequest) -> None:
        await self.send_command(device_id, request.values, "api")

    async def send_command(self, device_id: str, values: dict[str, Value], origin: str) -> None:
        """Route, encode and publish a normalized command (from the API or a rule); CommandRefused if not."""
        now = self.clock.now()
        command = Command(device_id=device_id, values=values, origin=origin, ts=now)
        try:
            routes = self.registry.route(device_id, values)
        except CommandRefused as exc:
            self._forward(self._link(), CommandFailed(ts=now, command=command, reason=str(exc)))
            raise
        for route in routes:
            adapter = self.adapters.get(BY_PROTOCOL.get(route.device.protocol, ""))
            try:
                if adapter is None:
                    raise Rejected("no_adapter", f"no adapter speaks {route.device.protocol.value}")
                messages = adapter.encode(route.device, route.values)
            except Rejected as exc:
                self._forward(self._link(), CommandFailed(ts=now, command=command, reason=str(exc)))
                raise CommandRefused(str(exc)) from None
            for out in messages:
                await self._link().publish(out.topic, out.payload, retain=out.retain, qos=out.qos)
                self._forward(self._link(), CommandSent(ts=now, command=command, topic=out.topic))

    async def _decide(self, device_id: str, status: Status, name: str | None, room: str | None) -> None:
        # Adopted or ignored, the device is stored (with the decision) before it shows so.
        await self._carry_out(self.registry.decide(device_id, status, self.clock.now(), name=name, room=room))

    async def _adopt(self, device_id: str, request: AdoptRequest) -> None:
        if request.room is not None and request.room not in {r.id for r in self.config.rooms}:
            rooms = ", ".join(r.id for r in self.config.rooms)
            raise CommandRefused(f"unknown room '{request.room}' (rooms: {rooms})")
        await self._decide(device_id, Status.ADOPTED, request.name, request.room)

    async def _ignore(self, device_id: str, request: IgnoreRequest) -> None:
        await self._decide(device_id, Status.IGNORED, None, None)

    async def _mode(self, _ident: str, request: ModeRequest) -> None:
        # The rules engine owns the mode (mutes, visitor countdown, restart); it tells us to publish.
        self.rules.set_mode(request.mode, request.until, request.by)

    async def _mode_changed(self, state: ModeState) -> None:
        self.mode = state
        await self._link().set_retained(self.topics.mode, state.model_dump_json().encode())

    async def _ack(self, alert_id: str, request: AckRequest) -> None:
        await self.rules.ack(alert_id, request)

    async def _rule_set(self, rule_id: str, request: RuleSetRequest) -> None:
        await self.rules.set_rule(rule_id, request)

    # Each verb's handler takes the payload model REQUEST_MODELS names for that verb.
    _REQUESTS: ClassVar[dict[str, Callable[[Hub, str, Any], Awaitable[None]]]] = {
        "set": _set,
        "adopt": _adopt,
        "ignore": _ignore,
        "mode": _mode,
        "ack": _ack,
        "rule_set": _rule_set,
    }


class _Stopping(Exception):
    """Raised inside the TaskGroup to cancel every task on a clean stop."""


async def run_until_signal(hub: Hub) -> None:
    """Run the hub until SIGTERM or SIGINT, then stop it cleanly."""
    # The store's writer thread converts rows in Python between its SQLite calls; with the
    # default 5 ms switch interval, a message arriving then waited up to 5 ms for the loop to
    # get the interpreter back (bench/latency.py, under load). 1 ms costs the writer little.
    sys.setswitchinterval(0.001)
    heap.tune()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, hub.stop)
    settled = asyncio.create_task(_settle_when_ready(hub))
    try:
        await hub.run()
    finally:
        settled.cancel()


async def _settle_when_ready(hub: Hub) -> None:
    await hub.ready.wait()
    heap.settle()
