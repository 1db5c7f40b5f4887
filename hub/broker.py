"""The embedded broker (amqtt) used when no broker is configured or reachable, and the choice between them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 1883

BrokerKind = Literal["configured", "advertised", "local", "embedded"]

# Looks for a broker advertised on the network (mDNS `_mqtt._tcp`): (address, port, name) or None.
Finder = Callable[[], Awaitable[tuple[str, int, str] | None]]

# amqtt logs every connection, packet and state transition at INFO or DEBUG.
_NOISY_LOGGERS = ("amqtt", "transitions")


async def answers(host: str, port: int, timeout: float = 0.5) -> bool:  # noqa: ASYNC109 - a probe's own limit
    """Whether something accepts TCP connections on host:port within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError as exc:
        # It answered; how the probe connection ended does not matter.
        log.debug("probe connection to %s:%d closed with %s", host, port, exc)
    return True


def embedded_config(port: int) -> dict[str, Any]:
    """The amqtt 0.12.1 broker config: one TCP listener on 127.0.0.1 only, anonymous, no $SYS, no persistence."""
    return {
        # amqtt's default bind is 0.0.0.0:1883; the hub's broker must never face the network.
        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
        # Given explicitly, so that amqtt's default packet/event loggers and $SYS plugin stay off.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not start (typically: the port is taken)."""


class EmbeddedBroker:
    """An amqtt broker on the current event loop, listening on 127.0.0.1:port only."""

    def __init__(self, port: int = DEFAULT_PORT) -> None:
        self.port = port
        self._broker: Any = None  # amqtt.broker.Broker; amqtt ships no type information

    @property
    def url(self) -> str:
        """The URL clients use to reach it."""
        return f"mqtt://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether it is serving."""
        return self._broker is not None

    async def start(self) -> None:
        """Start listening; EmbeddedBrokerError with the reason if it cannot."""
        if self._broker is not None:
            return
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        # Imported here: amqtt pulls in websockets and transitions, which a hub with a
        # configured broker never needs.
        from amqtt.broker import Broker
        from amqtt.errors import BrokerError

        broker = Broker(embedded_config(self.port))
        try:
            await broker.start()
        except BrokerError as exc:
            raise EmbeddedBrokerError(f"embedded MQTT broker on {LOOPBACK}:{self.port}: {exc}") from exc
        self._broker = broker
        log.info("embedded MQTT broker (amqtt) listening on %s:%d", LOOPBACK, self.port)

    async def stop(self) -> None:
        """Disconnect every client and stop listening."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
            log.info("embedded MQTT broker on %s:%d stopped", LOOPBACK, self.port)


def redacted(url: str) -> str:
    """The URL with any password replaced by ***, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


@dataclass(frozen=True, slots=True)
class BrokerChoice:
    """Which broker the hub uses, and why."""

    url: str
    kind: BrokerKind
    reason: str

    @property
    def port(self) -> int:
        """The broker's port (the one to start the embedded broker on)."""
        return urlsplit(self.url).port or DEFAULT_PORT


async def choose_broker(
    url: str | None,
    *,
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
    probe_timeout: float = 0.5,
    find: Finder | None = None,
) -> BrokerChoice:
    """The configured URL; else one advertised (`find`); else one answering on host:port; else the embedded one."""
    found = None if url or find is None else await find()
    if url:
        choice = BrokerChoice(url, "configured", "the configuration names this broker")
    elif found is not None:
        address, found_port, name = found
        choice = BrokerChoice(
            f"mqtt://{address}:{found_port}",
            "advertised",
            f"no broker configured; {name!r} advertises _mqtt._tcp on the network",
        )
    elif await answers(host, port, probe_timeout):
        looked = "" if find is None else ", none advertised over mDNS"
        choice = BrokerChoice(
            f"mqtt://{host}:{port}", "local", f"no broker configured{looked}; one answers on {host}:{port}"
        )
    else:
        looked = "" if find is None else ", none advertised over mDNS"
        choice = BrokerChoice(
            f"mqtt://{LOOPBACK}:{port}",
            "embedded",
            f"no broker configured{looked} and none answers on {host}:{port}; starting the embedded one",
        )
    log.info("MQTT broker: %s (%s: %s)", redacted(choice.url), choice.kind, choice.reason)
    return choice
