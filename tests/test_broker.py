"""hub.broker: the embedded amqtt broker, its loopback-only listener, and the choice of broker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from hub.broker import (
    BrokerChoice,
    EmbeddedBroker,
    EmbeddedBrokerError,
    answers,
    choose_broker,
    embedded_config,
    redacted,
)
from hub.mqtt import Link, LinkSettings
from hub.wire import Message
from tests.brokers import Mosquitto, free_port

WAIT = 5.0


@pytest.fixture
async def embedded() -> AsyncIterator[EmbeddedBroker]:
    broker = EmbeddedBroker(free_port())
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def running(link: Link) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def mqtt_answers(port: int) -> bool:
    """Whether an MQTT client can log in on 127.0.0.1:port.

    Used instead of `answers` against amqtt: a bare TCP probe makes amqtt log an error
    and leak the server-side socket.
    """
    try:
        async with aiomqtt.Client("127.0.0.1", port, timeout=1):
            return True
    except aiomqtt.MqttError:
        return False


def listening_addresses(port: int) -> set[str]:
    """Local addresses of IPv4/IPv6 sockets in LISTEN state on `port`, read from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(addr)
    return found


async def test_serves_a_link_and_a_plain_client(embedded: EmbeddedBroker) -> None:
    topic = f"t/{uuid.uuid4().hex[:10]}/x"
    link = Link(LinkSettings.from_url(embedded.url))
    got: asyncio.Queue[Message] = asyncio.Queue()
    link.subscribe(topic, got.put_nowait)
    async with running(link):
        await link.wait_connected(WAIT)
        async with aiomqtt.Client("127.0.0.1", embedded.port) as c:
            await c.publish(topic, b"hello")
        msg = await asyncio.wait_for(got.get(), WAIT)
    assert (msg.topic, msg.payload) == (topic, b"hello")


async def test_bound_to_loopback_only(embedded: EmbeddedBroker) -> None:
    assert embedded_config(embedded.port)["listeners"]["default"]["bind"] == f"127.0.0.1:{embedded.port}"
    # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex; 0.0.0.0 would be 00000000.
    assert listening_addresses(embedded.port) == {"0100007F"}
    assert await mqtt_answers(embedded.port)
    # Still loopback, but not the bound address: a 0.0.0.0 listener would accept this.
    assert not await answers("127.0.0.2", embedded.port)


async def test_filters_amqtt_retained_leak(embedded: EmbeddedBroker) -> None:
    """amqtt pushes retained messages matching *other* clients' subscriptions; the Link must not route them."""
    p = f"t/{uuid.uuid4().hex[:10]}"
    async with aiomqtt.Client("127.0.0.1", embedded.port) as other:
        await other.subscribe(f"{p}/other/#")
        await other.publish(f"{p}/other/1", b"not yours", retain=True, qos=1)
        link = Link(LinkSettings.from_url(embedded.url))
        got: asyncio.Queue[Message] = asyncio.Queue()
        link.subscribe(f"{p}/mine/#", got.put_nowait)
        async with running(link):
            await link.wait_connected(WAIT)
            await link.publish(f"{p}/mine/end", b"end")
            msg = await asyncio.wait_for(got.get(), WAIT)
        assert msg.topic == f"{p}/mine/end"
        assert got.empty()
        assert link.stats.unmatched >= 1  # the leaked retained message arrived and was refused


async def test_overlapping_filters_deliver_one_copy(embedded: EmbeddedBroker) -> None:
    """amqtt sends one copy per matching subscription; the Link subscribes only the covering filter."""
    p = f"t/{uuid.uuid4().hex[:10]}"
    link = Link(LinkSettings.from_url(embedded.url))
    narrow: asyncio.Queue[Message] = asyncio.Queue()
    wide: asyncio.Queue[Message] = asyncio.Queue()
    link.subscribe(f"{p}/a/+", narrow.put_nowait)
    async with running(link):
        await link.wait_connected(WAIT)
        link.subscribe(f"{p}/#", wide.put_nowait)  # live: subscribes p/#, then drops p/a/+ at the broker
        await link.wait_subscribed()
        await link.publish(f"{p}/a/x", b"1")
        await link.publish(f"{p}/end", b"end")
        seen = [(await asyncio.wait_for(wide.get(), WAIT)).topic for _ in range(2)]
        assert seen == [f"{p}/a/x", f"{p}/end"]
        # A duplicate of a/x would have arrived before end (one connection keeps order).
        assert link.stats.received == 2
    assert narrow.qsize() == 1


async def test_restart_and_port_taken() -> None:
    port = free_port()
    first = EmbeddedBroker(port)
    await first.start()
    try:
        second = EmbeddedBroker(port)
        with pytest.raises(EmbeddedBrokerError, match=f"127.0.0.1:{port}"):
            await second.start()
        assert not second.running
    finally:
        await first.stop()
    assert not await mqtt_answers(port)
    await first.start()
    assert await mqtt_answers(port)
    await first.stop()


async def test_answers_probe(mosquitto: Mosquitto) -> None:
    assert await answers("127.0.0.1", mosquitto.port)
    assert not await answers("127.0.0.1", free_port())


async def test_choose_configured_wins(mosquitto: Mosquitto) -> None:
    choice = await choose_broker("mqtts://hub:pw@broker.home:8883", port=mosquitto.port)
    assert choice.kind == "configured"
    assert choice.url == "mqtts://hub:pw@broker.home:8883"


async def test_choose_local_when_one_answers(mosquitto: Mosquitto) -> None:
    choice = await choose_broker(None, port=mosquitto.port)
    here = f"127.0.0.1:{mosquitto.port}"
    assert choice == BrokerChoice(f"mqtt://{here}", "local", f"no broker configured; one answers on {here}")


async def test_choose_embedded_when_none_answers() -> None:
    port = free_port()
    choice = await choose_broker(None, port=port)
    assert (choice.kind, choice.url) == ("embedded", f"mqtt://127.0.0.1:{port}")
    assert "none answers" in choice.reason


def test_redacted_hides_only_the_password() -> None:
    assert redacted("mqtts://hub:s3cret@h:8883") == "mqtts://hub:***@h:8883"
    assert redacted("mqtt://h:1883") == "mqtt://h:1883"


def test_loopback_alias_exists() -> None:
    # The loopback-only test relies on 127.0.0.2 being local (all of 127/8 is on lo in Linux).
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
