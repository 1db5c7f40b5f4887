"""The one place that imports aiomqtt: a long-lived MQTT link that reconnects, resubscribes and routes."""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import random
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from hub.clock import Clock, RealClock
from hub.mqttframe import Received
from hub.mqttsocket import Lane, decode_paho
from hub.wire import Message, filter_matcher

T = TypeVar("T")
V = TypeVar("V")

log = logging.getLogger(__name__)

Handler = Callable[[Message], Awaitable[None] | None]
"""A message handler: a plain function, or a coroutine function that the link awaits in order."""

SCHEMES: dict[str, tuple[int, bool]] = {"mqtt": (1883, False), "mqtts": (8883, True)}
"""Broker URL schemes: default port and whether TLS is on."""

# CONNACK refusals, by MQTT 3.1.1 return code and by the MQTT 5 reason code paho maps them to.
_REFUSALS: dict[int, str] = {
    1: "it does not speak MQTT 3.1.1",
    2: "it rejected the client id",
    3: "it is unavailable",
    4: "bad user name or password",
    5: "not authorised (wrong password, unknown user, or not allowed to connect)",
    128: "unspecified error",
    129: "malformed packet",
    130: "protocol error",
    132: "it does not speak this protocol version",
    133: "it rejected the client id",
    134: "bad user name or password",
    135: "not authorised (wrong password, unknown user, or not allowed to connect)",
    136: "it is unavailable",
    137: "it is busy",
    138: "this client is banned",
    140: "bad authentication method",
}
_LOGIN_CODES = frozenset({4, 5, 134, 135})

# What to check, keyed by a fragment of the low-level error text.
_HINTS: dict[str, str] = {
    "Connection refused": "nothing listens there: is the broker running?",
    "CERTIFICATE_VERIFY_FAILED": "the broker's certificate is not trusted: set ca_file to the CA that signed it",
    "WRONG_VERSION_NUMBER": "TLS to a plain listener? use mqtt:// instead of mqtts://",
    "Name or service not known": "the host name does not resolve",
    "timed out": "the broker did not answer in time",
}

# Faults that end one connection but never the link: broker down or refusing, dropped
# sockets, TLS failures and unreadable certificate files (OSError covers ssl.SSLError).
_LINK_FAULTS = (aiomqtt.MqttError, OSError)

# New subscriptions wait for the loop to turn once, so that filters asked for in one go
# share a SUBSCRIBE; never longer: a device's first state often follows its discovery at
# once, and a filter sent late loses it (50 ms lost Home Assistant states in the e2e tests).
_SUBSCRIBE_GATHER = 0.0
_YIELD_EVERY = 200  # messages handled before other tasks get a turn (a few milliseconds)
# Messages received and not yet handled: above the high mark the link stops reading (the
# broker holds or drops what comes, per its queue limits) until it is back under the low one,
# so that a flood costs a bounded amount of memory instead of all of it. While connecting it
# reads on whatever the backlog: the retained messages of a big home are bounded by the broker.
_BACKLOG_HIGH = 50_000
_BACKLOG_LOW = 10_000
_ROUTE_CACHE_MAX = 4096  # distinct topics whose handler lists are remembered


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """How to reach the broker, who to be there, and the link's limits."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None
    keepalive: int = 30
    will_topic: str | None = None
    will_payload: bytes = b'{"state":"offline"}'
    birth_payload: bytes | None = None
    max_payload_bytes: int = 1024 * 1024
    max_pending: int = 1000
    timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> LinkSettings:
        """Settings from `mqtt://[user:pass@]host[:port]` or `mqtts://…`; keyword arguments win over the URL."""
        parts = urlsplit(url)
        scheme = SCHEMES.get(parts.scheme)
        if scheme is None:
            raise ValueError(f"broker URL {url!r}: scheme must be one of {', '.join(SCHEMES)}://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"broker URL {url!r}: only scheme://[user:pass@]host[:port] is understood")
        try:
            port = parts.port or scheme[0]
        except ValueError as exc:
            raise ValueError(f"broker URL {url!r}: {exc}") from None
        from_url: dict[str, Any] = {"host": parts.hostname, "port": port, "tls": scheme[1]}
        if parts.username is not None:
            from_url["username"] = unquote(parts.username)
        if parts.password is not None:
            from_url["password"] = unquote(parts.password)
        return cls(**(from_url | kw))

    @property
    def where(self) -> str:
        """`host:port`, for log lines."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """The link's health as the hub shows it: replaced, never mutated, so readers see one snapshot."""

    connected: bool
    since: datetime
    last_error: str | None = None
    attempts: int = 0  # failed connection attempts since the last successful one


@dataclass(slots=True)
class LinkStats:
    """Counters of what the link did, for logs, the TUI and benchmarks."""

    received: int = 0
    dispatched: int = 0
    dropped_oversize: int = 0
    handler_errors: int = 0
    unmatched: int = 0
    reconnects: int = 0
    published: int = 0
    queued: int = 0
    dropped_queue_full: int = 0
    connect_failures: int = 0


def filter_problem(pattern: str) -> str | None:
    """Why a subscription filter is invalid (MQTT 3.1.1 §4.7), or None when it is fine."""
    if not pattern:
        return "empty filter"
    if "\0" in pattern:
        return "filter contains a NUL character"
    if len(pattern.encode()) > 65535:
        return "filter longer than 65535 bytes"
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def covers(general: str, specific: str) -> bool:
    """Whether every topic that matches filter `specific` also matches filter `general`."""
    gen, spec = general.split("/"), specific.split("/")
    if spec[0].startswith("$") and gen[0] in ("+", "#"):
        return False
    for i, level in enumerate(gen):
        if level == "#":
            return True
        if i >= len(spec) or spec[i] == "#":
            return False
        if level != "+" and (spec[i] == "+" or level != spec[i]):
            return False
    return len(gen) == len(spec)


def has_wildcard(pattern: str) -> bool:
    """Whether a (valid) filter has a `+` or `#` level."""
    return "+" in pattern or "#" in pattern


class WildcardIndex(Generic[V]):
    """Filters with a wildcard, by their literal levels before the first wildcard and their length.

    Only such a filter can match a topic (or cover a filter) whose levels begin with that
    prefix, and one without `#` only a name of as many levels: looking up the few prefixes of
    a topic replaces scanning every filter, which discovery makes many of (one or more per
    device, thousands in a large home). The length matters as much: the dialects' filters
    that start with `+` (Shelly's `+/online`, Tasmota's `+/tele/+`) share the empty prefix,
    and made every topic a candidate for fifteen filters where three or four can match.
    """

    def __init__(self) -> None:
        # (literal prefix, number of levels or _ANY_LENGTH for a `#` filter) -> filters
        self._by_prefix: dict[tuple[str, int], list[tuple[str, V]]] = {}

    def add(self, pattern: str, value: V) -> None:
        """Index a filter that has a wildcard."""
        levels = pattern.split("/")
        first = next(i for i, level in enumerate(levels) if level in ("+", "#"))
        length = _ANY_LENGTH if levels[-1] == "#" else len(levels)
        self._by_prefix.setdefault(("/".join(levels[:first]), length), []).append((pattern, value))

    def candidates(self, name: str) -> list[tuple[str, V]]:
        """The filters that may match topic (or cover filter) `name`: those of its prefixes and its length."""
        levels = name.split("/")
        length = len(levels)
        get = self._by_prefix.get
        found: list[tuple[str, V]] = []
        for i in range(length + 1):
            prefix = "/".join(levels[:i])
            found += get((prefix, length), ())
            found += get((prefix, _ANY_LENGTH), ())
        return found


_ANY_LENGTH = -1  # WildcardIndex's length of a filter ending in `#`


def broker_filters(filters: Mapping[str, int]) -> dict[str, int]:
    """The filters to subscribe at the broker: none covered by another, each with the highest QoS it stands for.

    Overlapping subscriptions make some brokers (amqtt) deliver one copy per matching
    filter; subscribing only the covering ones keeps the common overlaps to one copy.
    """
    index: WildcardIndex[None] = WildcardIndex()
    for g in filters:
        if has_wildcard(g):
            index.add(g, None)

    def coverers(f: str) -> list[str]:
        return [g for g, _ in index.candidates(f) if g != f and covers(g, f)]

    kept = {f: q for f, q in filters.items() if not coverers(f)}
    for f, q in filters.items():
        for g in coverers(f):
            if g in kept and q > kept[g]:
                kept[g] = q
    return kept


def backoff_delay(attempt: int, initial: float, cap: float, u: float) -> float:
    """Full-jitter exponential backoff: `u` (uniform in [0, 1)) times min(cap, initial·2^(attempt-1))."""
    return u * min(cap, initial * 2.0 ** min(max(attempt - 1, 0), 60))


def describe_fault(exc: BaseException, settings: LinkSettings, *, was_connected: bool) -> str:
    """One human sentence saying why the broker connection failed or ended."""
    where = settings.where
    if isinstance(exc, MqttConnectError):
        code = _code(exc.rc)
        reason = _REFUSALS.get(code, str(exc))
        if code in _LOGIN_CODES:
            who = f"for user {settings.username!r}" if settings.username else "of an anonymous client"
            return f"broker {where} refused the login {who}: {reason} [code:{code}]"
        return f"broker {where} refused the connection: {reason}"
    # aiomqtt wraps the cause of a dropped connection ("Disconnected during message
    # iteration"); the innermost exception says what actually happened.
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    detail = str(inner) or type(inner).__name__
    if isinstance(inner, aiomqtt.MqttCodeError) and "Unexpected disconnection" in inner.args:
        # MQTT 3.1.1 gives no reason; paho reports a lost socket as "[code:128] Unspecified error".
        detail = f"closed unexpectedly (broker stopped, network dropped or keepalive expired) {detail}"
    hint = next((h for needle, h in _HINTS.items() if needle in detail), None)
    if hint:
        detail = f"{detail} ({hint})"
    if was_connected:
        return f"connection to broker {where} lost: {detail}"
    return f"cannot connect to broker {where}: {detail}"


def tls_context(settings: LinkSettings) -> ssl.SSLContext | None:
    """The client TLS context (server verified against ca_file or the system CAs), or None without TLS."""
    if not settings.tls:
        return None
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file is not None:
        ctx.load_cert_chain(settings.cert_file, settings.key_file)
    return ctx


def _code(rc: int | ReasonCode | None) -> int:
    # paho reports CONNACK and SUBACK results as ints or as MQTT 5 reason codes; -1 means none.
    if isinstance(rc, ReasonCode):
        return int(rc.value)
    return -1 if rc is None else rc


def _worth_logging(count: int) -> bool:
    # Log the 1st, 2nd, 4th, 8th … occurrence: a flood of bad messages stays visible
    # without drowning the log or the loop.
    return count & (count - 1) == 0


class _LaneClient(aiomqtt.Client):
    """aiomqtt's client with the lane (hub.mqttsocket) between paho and the socket.

    aiomqtt 2.5 drives paho from its socket callbacks; these overrides hand the socket to
    the lane instead, and received messages to the link in batches (aiomqtt's queue then
    carries lists of plain messages). The overridden names are aiomqtt's own, hence the pin
    on aiomqtt in pyproject.toml.
    """

    def __init__(self, *args: Any, deliver: Callable[[Received], None], max_payload: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._deliver = deliver
        self._max_payload = max_payload
        self.lane: Lane | None = None

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Called from the executor thread that runs paho's connect().
        if met_itself(sock):
            sock.close()
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused (the connection met itself)")
        lane = Lane(
            self._loop,
            client,
            sock,
            deliver=self._deliver,
            fault=self._fault,
            max_payload=self._max_payload,
        )
        self.lane = lane
        client._sock = lane.view  # paho reads and writes through the lane

        def start() -> None:
            lane.start()
            self._misc_task = self._loop.create_task(self._misc_loop())  # paho's keepalive

        self._loop.call_soon_threadsafe(start)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self.lane is not None:
            self.lane.close()
        if self._misc_task is not None and not self._misc_task.done():
            self._loop.call_soon_threadsafe(self._misc_task.cancel)

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self.lane is not None:
            self.lane.paho_wants_write()

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        pass  # the lane owns the writer callback

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # QoS 2 messages and oversize QoS 1 ones, which paho decodes (the lane decodes the rest).
        msg = decode_paho(message)
        got = Received(messages=[msg] if msg is not None else [], undecodable=int(msg is None))
        self._deliver(got)

    def _fault(self, exc: BaseException) -> None:
        if not self._disconnected.done():
            self._disconnected.set_exception(exc)


def met_itself(sock: Any) -> bool:
    """Whether a connected socket is connected to itself, which nothing listening on its port allows.

    A connect to a port of the ephemeral range that nothing listens on can pick that very port
    as its own and "succeed" (TCP simultaneous open): the broker is then our own socket, which
    echoes the CONNECT back, and the link would wait for an answer that never comes.
    """
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except (AttributeError, OSError):  # not a plain socket (websockets), or not connected
        return False


class Link:
    """One long-lived broker connection: reconnects forever, resubscribes, republishes retained state, routes.

    On every connection, in order: the subscriptions, the remembered retained state and what
    `republish` gives (retained state its owner keeps, such as device descriptions), the
    birth payload (retained, on will_topic: "online" means listening), the queued
    publishes, then the `on_connect` hook; messages are read once the hook returns, so it must not wait for any.
    Handlers run one message at a time in arrival order; a coroutine handler holds up the
    ones after it, which is the back-pressure the broker sees.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_status: Callable[[LinkStatus], None] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_drop: Callable[[str], None] | None = None,
        republish: Callable[[], Iterable[tuple[str, bytes]]] | None = None,
    ) -> None:
        self.settings = settings
        self._republish = republish
        self.stats = LinkStats()
        self._on_drop = on_drop  # told the reason of every message refused before any handler
        self._on_connect = on_connect
        self._on_status = on_status
        self._clock: Clock = clock or RealClock()
        self._rng = rng or random.Random()
        self.status = LinkStatus(connected=False, since=self._clock.now())
        # Routes by filter: exact topics in a dict, wildcard filters indexed by prefix; each
        # with its order of subscription, which is the order handlers are called in.
        self._exact: dict[str, list[tuple[int, Handler]]] = {}
        self._wild: WildcardIndex[tuple[int, Handler]] = WildcardIndex()
        self._order = itertools.count()
        self._filters: dict[str, int] = {}
        self._subscribed: dict[str, int] = {}  # what the current connection holds at the broker
        # What the broker should hold (broker_filters of _filters), kept up to date as exact
        # filters arrive: recomputing it over thousands of filters per burst of discoveries
        # was most of a large home's start-up. A new wildcard filter recomputes it (`_full`).
        self._wanted: dict[str, int] = {}
        self._wanted_wild: WildcardIndex[None] = WildcardIndex()
        self._changed: set[str] = set()  # entries of _wanted changed since the last sync
        self._full = True
        self._route_cache: dict[str, tuple[Handler, ...]] = {}
        # Retained state to republish on every connection, by topic: (payload, qos). Device
        # descriptions, the long and many ones, come from the `republish` hook instead.
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._pending: deque[Message] = deque()
        self._client: _LaneClient | None = None
        self._live = asyncio.Event()  # connected, subscribed, retained state and queue flushed
        self._connections = 0
        self._syncing: set[asyncio.Task[None]] = set()  # live subscriptions in flight
        self._sync_queued = False  # a sync task is created and has not started yet
        self._backlog = 0  # messages received, not yet handled

    # --- the connection loop -------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled; broker faults are logged, shown in `status` and retried."""
        while True:
            before = self._connections
            try:
                await self._session()
            except _LINK_FAULTS as exc:
                lost = self._connections != before
                await self._retry_later(describe_fault(exc, self.settings, was_connected=lost))

    async def _retry_later(self, reason: str) -> None:
        attempts = self.status.attempts + 1
        self.stats.connect_failures += 1
        s = self.settings
        delay = backoff_delay(attempts, s.backoff_initial, s.backoff_max, self._rng.random())
        self._set_status(connected=False, last_error=reason, attempts=attempts)
        log.warning("MQTT: %s; retrying in %.1f s (attempt %d)", reason, delay, attempts)
        await asyncio.sleep(delay)

    async def _session(self) -> None:
        # aiomqtt creates its incoming queue from `queue_type`; handing it our own instance
        # lets the lane put whole batches in it and the reader drain them without a task each.
        inbox: asyncio.Queue[list[Message]] = asyncio.Queue()
        s = self.settings
        will = aiomqtt.Will(s.will_topic, s.will_payload, qos=1, retain=True) if s.will_topic else None

        def deliver(got: Received) -> None:
            self._refused(got)
            if got.messages:
                inbox.put_nowait(got.messages)
                self._backlog += len(got.messages)
                # Not before the link is up: nothing handles messages until then, and the
                # acks that `_connected` waits for come behind the retained flood it asked for.
                if self._backlog > _BACKLOG_HIGH and client.lane is not None and self._live.is_set():
                    client.lane.pause_reading()

        client = _LaneClient(
            s.host,
            s.port,
            deliver=deliver,
            max_payload=s.max_payload_bytes,
            username=s.username,
            password=s.password,
            identifier=s.client_id,
            will=will,
            keepalive=s.keepalive,
            timeout=s.timeout,
            tls_context=tls_context(s),
            queue_type=cast("type[asyncio.Queue[aiomqtt.Message]]", lambda maxsize: inbox),  # batches, see above
        )
        async with client:
            try:
                await self._connected(client)
                await self._read(client, inbox)
            except asyncio.CancelledError:
                await self._goodbye(client)
                raise
            finally:
                self._client = None
                self._live.clear()
                self._subscribed = {}
                self._full = True
                for task in self._syncing:  # obsolete: the next connection subscribes everything
                    task.cancel()
                self._sync_queued = False
                self._backlog = 0

    async def _connected(self, client: _LaneClient) -> None:
        s = self.settings
        self._connections += 1
        if self._connections > 1:
            self.stats.reconnects += 1
        self._client = client
        self._set_status(connected=True, last_error=None, attempts=0)
        log.info(
            "MQTT connected to %s%s%s",
            s.where,
            " over TLS" if s.tls else "",
            f" as user {s.username!r}" if s.username else "",
        )
        await self._sync_subscriptions()
        log.debug("MQTT: %d filters subscribed", len(self._subscribed))
        for topic, (data, qos) in list(self._retained.items()):
            await self._put(client, Message(topic, data, True, qos))
        for topic, payload in self._owned_retained():
            await self._put(client, Message(topic, payload, True, 0))
        # "online" only once we listen and our retained state is back: whoever waits for it
        # (a TUI, a device bridge, a test) may then talk to the hub without losing a word.
        if s.will_topic and s.birth_payload is not None:
            await _acked(client.publish(s.will_topic, s.birth_payload, qos=1, retain=True))
        # Publishes made meanwhile were queued behind these, so order is kept.
        while self._pending:
            msg = self._pending[0]  # popped only once sent: a failure keeps it for the next connection
            await self._put(client, msg)
            self._pending.popleft()
        self._live.set()
        if self._on_connect is not None:
            try:
                await self._on_connect()
            except _LINK_FAULTS:
                raise
            except Exception:
                self.stats.handler_errors += 1
                log.exception("MQTT on_connect hook failed")

    def _owned_retained(self) -> list[tuple[str, bytes]]:
        # A failing hook (a bug) must not keep the link from ever connecting: what it would
        # have given is missing until the owner publishes it again, and the error is logged.
        if self._republish is None:
            return []
        try:
            return list(self._republish())
        except Exception:
            self.stats.handler_errors += 1
            log.exception("MQTT republish hook failed; connecting without what it keeps")
            return []

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        s = self.settings
        if s.will_topic and self._live.is_set():
            try:
                await client.publish(s.will_topic, s.will_payload, qos=1, retain=True, timeout=2.0)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT: could not publish the offline status on shutdown: %s", exc)
        log.info("MQTT disconnecting from %s", s.where)

    def _set_status(self, *, connected: bool, last_error: str | None, attempts: int) -> None:
        now = self._clock.now()
        since = self.status.since if connected == self.status.connected else now
        self.status = LinkStatus(connected=connected, since=since, last_error=last_error, attempts=attempts)
        if self._on_status is not None:
            try:
                self._on_status(self.status)
            except Exception:
                self.stats.handler_errors += 1
                log.exception("MQTT on_status hook failed")

    async def wait_connected(self, timeout: float | None) -> None:  # noqa: ASYNC109 - the error names the reason
        """Return once the link is up (subscribed, state republished); else TimeoutError with the reason.

        `None` waits as long as it takes.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._live.wait()
        except TimeoutError:
            why = self.status.last_error or "no attempt has failed yet"
            raise TimeoutError(f"MQTT link to {self.settings.where} not up after {timeout} s: {why}") from None

    @property
    def connected(self) -> bool:
        """Whether the link is up right now."""
        return self._live.is_set()

    # --- receiving -----------------------------------------------------------------

    async def _read(self, client: _LaneClient, inbox: asyncio.Queue[list[Message]]) -> None:
        # aiomqtt's iterator ends the session with an MqttError when the connection drops.
        async for first in client.messages:
            batch = cast("list[Message]", first)
            while True:
                self._backlog -= len(batch)
                for i, msg in enumerate(batch, 1):
                    pending = self._dispatch(msg)
                    if pending is not None:
                        await pending
                    if i % _YIELD_EVERY == 0:
                        # Handlers rarely suspend: without this, a burst would hold off the
                        # store's writer, the rules' timers and the lane's own reads.
                        await asyncio.sleep(0)
                if self._backlog < _BACKLOG_LOW and client.lane is not None:
                    client.lane.resume_reading()
                if inbox.empty():
                    break
                await asyncio.sleep(0)
                batch = inbox.get_nowait()

    def _refused(self, got: Received) -> None:
        # Publishes the lane refused unread (too large) or could not decode (topic not UTF-8).
        for size in got.oversize:
            self._too_large(size, "?")
        if got.undecodable:
            self.stats.received += got.undecodable
            self.stats.unmatched += got.undecodable
            log.warning("MQTT: dropped %d message(s) whose topic is not UTF-8", got.undecodable)

    def _too_large(self, size: int, topic: str) -> None:
        stats = self.stats
        stats.received += 1
        stats.dropped_oversize += 1
        if self._on_drop is not None:
            self._on_drop("too_large")
        if _worth_logging(stats.dropped_oversize):
            log.warning(
                "MQTT: dropped %d-byte message on %r (limit %d bytes; %d dropped so far)",
                size,
                topic,
                self.settings.max_payload_bytes,
                stats.dropped_oversize,
            )

    def _dispatch(self, msg: Message) -> Awaitable[None] | None:
        # A plain call for the plain handlers that device messages have (a coroutine a message
        # cost ~1 µs of a flood's ~35); what to await when a handler is async, in order.
        stats = self.stats
        topic = msg.topic
        if len(msg.payload) > self.settings.max_payload_bytes:
            self._too_large(len(msg.payload), topic)
            return None
        stats.received += 1
        handlers = self._route_cache.get(topic)
        if handlers is None:
            handlers = self._handlers_for(topic)
        if not handlers:
            stats.unmatched += 1
            return None
        for i, handler in enumerate(handlers):
            try:
                result = handler(msg)
            except Exception:
                self._handler_failed(handler, topic)
                continue
            if result is not None:
                return self._finish(msg, handler, result, handlers[i + 1 :])
            stats.dispatched += 1
        return None

    async def _finish(self, msg: Message, handler: Handler, first: Awaitable[None], rest: tuple[Handler, ...]) -> None:
        # The awaitable a handler returned, then the handlers after it, each awaited in turn.
        try:
            await first
        except Exception:
            self._handler_failed(handler, msg.topic)
        else:
            self.stats.dispatched += 1
        for later in rest:
            try:
                result = later(msg)
                if result is not None:
                    await result
            except Exception:
                self._handler_failed(later, msg.topic)
            else:
                self.stats.dispatched += 1

    def _handler_failed(self, handler: Handler, topic: str) -> None:
        self.stats.handler_errors += 1
        log.exception("MQTT handler %r failed on %r", handler, topic)

    def _handlers_for(self, topic: str) -> tuple[Handler, ...]:
        # Never trust the broker's routing (amqtt delivers retained messages that match
        # other clients' subscriptions): each handler gets only what its own filter matches,
        # and once per message even when several of its filters match the topic.
        found = [*self._exact.get(topic, ()), *(e for f, e in self._wild.candidates(topic) if filter_matcher(f)(topic))]
        found.sort(key=lambda entry: entry[0])
        handlers = tuple(dict.fromkeys(h for _, h in found))
        if len(self._route_cache) >= _ROUTE_CACHE_MAX:
            self._route_cache.clear()
        self._route_cache[topic] = handlers
        return handlers

    def subscribe(self, pattern: str, handler: Handler, *, qos: int = 0) -> None:
        """Route messages matching `pattern` to `handler`, before or after connecting; ValueError on a bad filter.

        When connected, the broker subscription is sent in the background (`wait_subscribed`
        awaits it); otherwise the next connection subscribes it.
        """
        problem = filter_problem(pattern)
        if problem is not None:
            raise ValueError(f"MQTT filter {pattern!r}: {problem}")
        qos = max(qos, self._filters.get(pattern, 0))
        self._filters[pattern] = qos
        if has_wildcard(pattern):
            self._wild.add(pattern, (next(self._order), handler))
            self._route_cache.clear()
            self._full = True
        else:
            self._exact.setdefault(pattern, []).append((next(self._order), handler))
            self._route_cache.pop(pattern, None)
            self._want(pattern, qos)
        if self._client is not None and not self._sync_queued:
            # One sync covers every subscription asked for until it runs: a burst of
            # discoveries costs one SUBSCRIBE, not one per device.
            self._sync_queued = True
            task = asyncio.get_running_loop().create_task(self._sync_live(pattern))
            self._syncing.add(task)
            task.add_done_callback(self._syncing.discard)

    def _want(self, pattern: str, qos: int) -> None:
        # An exact filter: held at the broker by a wildcard filter that covers it, or by itself.
        covering = [g for g, _ in self._wanted_wild.candidates(pattern) if covers(g, pattern)]
        for g in covering or [pattern]:
            if self._wanted.get(g, -1) < qos:
                self._wanted[g] = qos
                self._changed.add(g)

    async def wait_subscribed(self) -> None:
        """Return once every live subscription asked for so far is acknowledged (or left to the next connection)."""
        while self._syncing:
            await asyncio.wait(set(self._syncing))

    async def _sync_live(self, pattern: str) -> None:
        await asyncio.sleep(_SUBSCRIBE_GATHER)
        self._sync_queued = False
        try:
            await self._sync_subscriptions()
        except aiomqtt.MqttError as exc:
            # The connection is going down; the next one subscribes everything.
            log.warning("MQTT: could not subscribe %r now (%s); will on reconnect", pattern, exc)

    async def _sync_subscriptions(self) -> None:
        client = self._client
        if client is None:
            return
        if self._full:
            self._full = False
            wanted = self._wanted = broker_filters(self._filters)
            self._wanted_wild = WildcardIndex()
            for g in wanted:
                if has_wildcard(g):
                    self._wanted_wild.add(g, None)
            new = [(f, q) for f, q in wanted.items() if self._subscribed.get(f, -1) < q]
            gone = [f for f in self._subscribed if f not in wanted]
        else:
            new = [(f, self._wanted[f]) for f in self._changed if self._subscribed.get(f, -1) < self._wanted[f]]
            gone = []
        self._changed.clear()
        # Recorded before awaiting, so that a concurrent call does not send the same again;
        # a failure ends the connection, and the next one starts from nothing.
        self._subscribed.update(new)
        for f in gone:
            del self._subscribed[f]
        if new:
            codes: Sequence[int | ReasonCode] = await _acked(client.subscribe(new))
            for (f, _), code in zip(new, codes, strict=False):
                if _code(code) >= 128:
                    log.warning("MQTT: broker %s refused the subscription to %r", self.settings.where, f)
        if gone:
            # The covering filter is subscribed first, so nothing is missed in between.
            await _acked(client.unsubscribe(gone))

    # --- publishing ----------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 0) -> None:
        """Publish now, or queue it (bounded) until the next connection; never raises for broker faults.

        When the queue is full the oldest non-retained message is dropped (the oldest
        retained one if there is none) and counted in `stats.dropped_queue_full`.
        """
        data = payload.encode() if isinstance(payload, str) else payload
        if qos == 0:
            self.post(topic, data, retain=retain)
        else:
            await self._send(Message(topic, data, retain, qos), queue=True)

    def post(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """`publish` at QoS 0, which has nothing to wait for: a plain call for the per-message paths."""
        if not self._write(topic, payload, retain):
            self._enqueue(Message(topic, payload, retain, 0))

    def keep(self, topic: str, payload: bytes) -> None:
        """`set_retained` at QoS 0, as a plain call."""
        self._retained[topic] = (payload, 0)
        # Not queued when down: the next connection republishes everything remembered.
        self._write(topic, payload, True)

    def show(self, topic: str, payload: bytes) -> None:
        """Publish retained at QoS 0 now, if connected, without remembering it: for what `republish` gives."""
        self._write(topic, payload, True)

    async def send(self, msg: Message) -> None:
        """Publish a Message (as adapters' encoders make them) with `publish`'s guarantees."""
        await self._send(msg, queue=True)

    async def set_retained(self, topic: str, payload: bytes, *, qos: int = 0) -> None:
        """Publish retained and remember it, so every later connection republishes it (brokers may forget)."""
        if qos == 0:
            self.keep(topic, payload)
            return
        self._retained[topic] = (payload, qos)
        await self._send(Message(topic, payload, True, qos), queue=False)

    async def clear_retained(self, topic: str, *, qos: int = 0) -> None:
        """Clear a retained topic (empty retained payload) and forget it."""
        self._retained.pop(topic, None)
        await self.publish(topic, b"", retain=True, qos=qos)

    @property
    def retained(self) -> Mapping[str, bytes]:
        """The retained state this link republishes on every connection."""
        return {t: d for t, (d, _) in self._retained.items()}

    async def _send(self, msg: Message, *, queue: bool) -> None:
        client = self._client
        if client is not None and self._live.is_set():
            try:
                await self._put(client, msg)
            except (aiomqtt.MqttError, OSError) as exc:
                log.debug("MQTT: publish to %r failed (%s); queued for the next connection", msg.topic, exc)
            else:
                return
        if queue:
            self._enqueue(msg)

    def _write(self, topic: str, payload: bytes, retain: bool) -> bool:
        # The lane writes a QoS 0 publish with everything else of this loop turn.
        client = self._client
        if client is None or client.lane is None or not self._live.is_set():
            return False
        try:
            client.lane.publish(topic, payload, retain=retain)
        except OSError as exc:  # the connection is going down; the caller queues or forgets
            log.debug("MQTT: publish to %r failed (%s)", topic, exc)
            return False
        self.stats.published += 1
        return True

    async def _put(self, client: _LaneClient, msg: Message) -> None:
        # QoS 0 has nothing to wait for: the lane writes it with everything else this loop
        # turn. QoS 1 goes through paho, which owns its acknowledgement.
        lane = client.lane
        if msg.qos == 0 and lane is not None:
            lane.publish(msg.topic, msg.payload, retain=msg.retain)
        else:
            await _acked(client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain))
        self.stats.published += 1

    def _enqueue(self, msg: Message) -> None:
        pending = self._pending
        limit = self.settings.max_pending
        if limit <= 0:
            self._dropped(msg)
            return
        if len(pending) >= limit:
            victim = next((i for i, m in enumerate(pending) if not m.retain), 0)
            dropped = pending[victim]
            del pending[victim]
            self._dropped(dropped)
        pending.append(msg)
        self.stats.queued += 1

    def _dropped(self, msg: Message) -> None:
        self.stats.dropped_queue_full += 1
        if _worth_logging(self.stats.dropped_queue_full):
            log.warning(
                "MQTT: broker %s unreachable and the queue is full (max_pending=%d); "
                "dropped a message for %r (%d dropped so far)",
                self.settings.where,
                self.settings.max_pending,
                msg.topic,
                self.stats.dropped_queue_full,
            )


async def _acked(awaitable: Awaitable[T]) -> T:
    """Await an acknowledgement from aiomqtt without losing a cancellation that raced it.

    Python 3.11's asyncio.wait_for, which aiomqtt uses for every acknowledgement, swallows a
    cancellation that arrives just as the acknowledgement does (gh-86296, fixed in 3.12). The
    task then stays "cancelling" but runs on, and a SIGTERM never stops the hub; seen with
    the embedded broker. Re-raising here restores the cancellation.
    """
    result = await awaitable
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return result
