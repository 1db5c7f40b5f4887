"""hub.mqtt against real Mosquitto brokers: birth and will, reconnects, refusals, TLS, routing, limits."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hub.mqtt import (
    Link,
    LinkSettings,
    LinkStatus,
    backoff_delay,
    broker_filters,
    covers,
    filter_problem,
    met_itself,
)
from hub.wire import Message
from tests.brokers import Mosquitto, free_port, make_ca

ROOT = Path(__file__).resolve().parents[1]
WAIT = 5.0  # upper bound for any delivery; they take milliseconds


def prefix() -> str:
    return f"t/{uuid.uuid4().hex[:10]}"


def fast(url: str, **kw: Any) -> LinkSettings:
    """Settings with a short backoff so that reconnect tests take milliseconds."""
    return LinkSettings.from_url(url, backoff_initial=0.02, backoff_max=0.2, **kw)


@contextlib.asynccontextmanager
async def running(link: Link) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(link.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def collector() -> tuple[asyncio.Queue[Message], Callable[[Message], None]]:
    q: asyncio.Queue[Message] = asyncio.Queue()
    return q, q.put_nowait


async def next_msg(q: asyncio.Queue[Message]) -> Message:
    return await asyncio.wait_for(q.get(), WAIT)


@contextlib.asynccontextmanager
async def watching(
    port: int, pattern: str, tls: ssl.SSLContext | None = None
) -> AsyncIterator[asyncio.Queue[aiomqtt.Message]]:
    """An independent aiomqtt client that queues everything matching `pattern`."""
    q: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    async with aiomqtt.Client("127.0.0.1", port, tls_context=tls) as c:
        await c.subscribe(pattern)

        async def pump() -> None:
            async for m in c.messages:
                q.put_nowait(m)

        task = asyncio.create_task(pump())
        try:
            yield q
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def retained(port: int, pattern: str) -> dict[str, bytes]:
    """The retained messages a fresh subscriber to `pattern` gets (a broker sends them before its SUBACK)."""
    marker = f"marker/{uuid.uuid4().hex}"
    found: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe(pattern)
        await c.subscribe(marker)
        await c.publish(marker, b"end")
        async with asyncio.timeout(WAIT):
            async for m in c.messages:
                if m.topic.value == marker:
                    return found
                if m.retain:
                    found[m.topic.value] = m.payload
    raise AssertionError("unreachable: the marker always arrives or the timeout fires")


async def wait_payload(q: asyncio.Queue[aiomqtt.Message], payload: bytes) -> aiomqtt.Message:
    async with asyncio.timeout(WAIT):
        while (m := await q.get()).payload != payload:
            pass
    return m


# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user", "password"),
    [
        ("mqtt://127.0.0.1", "127.0.0.1", 1883, False, None, None),
        ("mqtts://broker.home", "broker.home", 8883, True, None, None),
        ("mqtt://localhost:1999/", "localhost", 1999, False, None, None),
        ("mqtts://hub:s%40cret@10.0.0.2:8884", "10.0.0.2", 8884, True, "hub", "s@cret"),
    ],
)
def test_settings_from_url(url: str, host: str, port: int, tls: bool, user: str | None, password: str | None) -> None:
    s = LinkSettings.from_url(url)
    assert (s.host, s.port, s.tls, s.username, s.password) == (host, port, tls, user, password)
    assert "cret" not in repr(s)


def test_settings_from_url_keywords_win() -> None:
    s = LinkSettings.from_url("mqtt://u:p@h:1", username="other", keepalive=5)
    assert (s.username, s.password, s.keepalive) == ("other", "p", 5)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://h", "scheme"),
        ("mqtt://", "no host"),
        ("mqtt://h/some/path", "only scheme"),
        ("mqtt://h:99999", "out of range"),
    ],
)
def test_settings_from_bad_url(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        LinkSettings.from_url(url)


@pytest.mark.parametrize(
    ("general", "specific", "expected"),
    [
        ("a/#", "a", True),
        ("a/#", "a/b/+", True),
        ("a/+", "a/b", True),
        ("a/+", "a/+", True),
        ("a/+", "a/#", False),
        ("a/b", "a/+", False),
        ("a/+/c", "a/b/+", False),
        ("#", "$SYS/x", False),
        ("a/+", "a/b/c", False),
    ],
)
def test_covers(general: str, specific: str, expected: bool) -> None:
    assert covers(general, specific) is expected


def test_broker_filters_keep_only_covering_ones_with_the_highest_qos() -> None:
    assert broker_filters({"a/+": 0, "a/#": 0, "a/b": 1, "c/d": 0}) == {"a/#": 1, "c/d": 0}


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a/+b", "a\0b"])
def test_filter_problem(bad: str) -> None:
    assert filter_problem(bad) is not None
    assert filter_problem("a/+/#") is None


def test_backoff_is_capped_full_jitter() -> None:
    assert backoff_delay(1, 0.5, 30.0, 0.999) < 0.5
    assert backoff_delay(4, 0.5, 30.0, 0.5) == pytest.approx(2.0)
    assert backoff_delay(1000, 0.5, 30.0, 0.999) <= 30.0
    assert backoff_delay(3, 0.5, 30.0, 0.0) == 0.0


# --- against Mosquitto --------------------------------------------------------------------


async def test_birth_is_retained_online(mosquitto: Mosquitto) -> None:
    status = f"{prefix()}/status"
    link = Link(fast(mosquitto.url, will_topic=status, birth_payload=b"online"))
    async with running(link):
        await link.wait_connected(WAIT)
        assert link.status.connected
        assert link.status.last_error is None
        assert await retained(mosquitto.port, status) == {status: b"online"}


WILL_SCRIPT = """
import asyncio, sys
from hub.mqtt import Link, LinkSettings

async def main():
    async def up():
        print("up", flush=True)
    settings = LinkSettings.from_url(sys.argv[1], will_topic=sys.argv[2],
                                     birth_payload=b"online", will_payload=b"offline", keepalive=60)
    await Link(settings, on_connect=up).run()

asyncio.run(main())
"""


async def test_last_will_after_the_hub_is_killed(mosquitto: Mosquitto) -> None:
    status = f"{prefix()}/status"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WILL_SCRIPT, mosquitto.url, status, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.strip() == b"up"
        async with watching(mosquitto.port, status) as q:
            await wait_payload(q, b"online")
            proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must fire the will
            will = await wait_payload(q, b"offline")
        assert will.topic.value == status
        assert await retained(mosquitto.port, status) == {status: b"offline"}
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_clean_stop_publishes_offline(mosquitto: Mosquitto) -> None:
    status = f"{prefix()}/status"
    link = Link(fast(mosquitto.url, will_topic=status, birth_payload=b"online", will_payload=b"offline"))
    async with running(link):
        await link.wait_connected(WAIT)
    assert await retained(mosquitto.port, status) == {status: b"offline"}


async def test_survives_a_broker_restart(own_mosquitto: Mosquitto) -> None:
    own_mosquitto.start()
    p = prefix()
    connections: asyncio.Queue[None] = asyncio.Queue()

    async def on_connect() -> None:
        connections.put_nowait(None)

    link = Link(fast(own_mosquitto.url, will_topic=f"{p}/status", birth_payload=b"online"), on_connect=on_connect)
    inbox, handler = collector()
    link.subscribe(f"{p}/in/+", handler)
    async with running(link) as task:
        await asyncio.wait_for(connections.get(), WAIT)
        await link.set_retained(f"{p}/state", b"v1", qos=1)

        own_mosquitto.stop()  # persistence false: the broker forgets every retained message
        own_mosquitto.start()
        await asyncio.wait_for(connections.get(), WAIT)

        assert not task.done()
        assert link.stats.reconnects == 1
        assert link.status.connected
        assert link.status.attempts == 0
        async with aiomqtt.Client("127.0.0.1", own_mosquitto.port) as c:
            await c.publish(f"{p}/in/1", b"after restart")
        got = await next_msg(inbox)
        assert (got.topic, got.payload) == (f"{p}/in/1", b"after restart")
        assert await retained(own_mosquitto.port, f"{p}/#") == {f"{p}/state": b"v1", f"{p}/status": b"online"}


async def test_what_the_owner_keeps_is_republished_on_every_connection_as_it_is_then(own_mosquitto: Mosquitto) -> None:
    # Device descriptions are kept by the hub, not as bytes in the link: `show` publishes one
    # now, and `republish` gives them all, as they are at that moment, to each new connection.
    own_mosquitto.start()
    p = prefix()
    kept = {f"{p}/devices/a": b"A1"}
    asked: asyncio.Queue[None] = asyncio.Queue()

    def republish() -> list[tuple[str, bytes]]:
        asked.put_nowait(None)
        return list(kept.items())

    link = Link(fast(own_mosquitto.url, will_topic=f"{p}/status", birth_payload=b"online"), republish=republish)
    async with running(link):
        await asyncio.wait_for(asked.get(), WAIT)
        await link.wait_connected(WAIT)
        kept[f"{p}/devices/b"] = b"B1"
        link.show(f"{p}/devices/b", b"B1")
        assert dict(link.retained) == {}  # shown, not remembered
        await link.set_retained(f"{p}/flush", b"x", qos=1)  # acknowledged after the QoS 0 one before it
        assert await retained(own_mosquitto.port, f"{p}/devices/#") == {
            f"{p}/devices/a": b"A1",
            f"{p}/devices/b": b"B1",
        }

        kept[f"{p}/devices/a"] = b"A2"
        own_mosquitto.stop()  # persistence false: the broker forgets every retained message
        own_mosquitto.start()
        await asyncio.wait_for(asked.get(), WAIT)
        await link.wait_connected(WAIT)
        assert await retained(own_mosquitto.port, f"{p}/#") == {
            f"{p}/devices/a": b"A2",
            f"{p}/devices/b": b"B1",
            f"{p}/flush": b"x",
            f"{p}/status": b"online",
        }


async def test_a_failing_republish_hook_does_not_keep_the_link_down(mosquitto: Mosquitto) -> None:
    def republish() -> list[tuple[str, bytes]]:
        raise RuntimeError("a bug in the owner")

    link = Link(fast(mosquitto.url), republish=republish)
    async with running(link):
        await link.wait_connected(WAIT)
    assert link.stats.handler_errors == 1


async def test_wrong_password_is_reported_and_retried(own_mosquitto: Mosquitto) -> None:
    own_mosquitto.passwords = {"hub": "right"}
    own_mosquitto.start()
    statuses: asyncio.Queue[LinkStatus] = asyncio.Queue()
    link = Link(fast(own_mosquitto.url, username="hub", password="wrong"), on_status=statuses.put_nowait)
    async with running(link) as task:
        async with asyncio.timeout(WAIT):
            while (status := await statuses.get()).attempts < 2:
                pass
        assert not task.done()
        assert not status.connected
        assert status.last_error is not None
        assert f"broker 127.0.0.1:{own_mosquitto.port} refused the login for user 'hub'" in status.last_error
        assert "not authorised" in status.last_error
        with pytest.raises(TimeoutError, match="refused the login"):
            await link.wait_connected(0.05)
        assert not task.done()

    good = Link(fast(own_mosquitto.url, username="hub", password="right"))
    async with running(good):
        await good.wait_connected(WAIT)


async def test_broker_down_is_reported(own_mosquitto: Mosquitto) -> None:
    statuses: asyncio.Queue[LinkStatus] = asyncio.Queue()
    link = Link(fast(own_mosquitto.url), on_status=statuses.put_nowait)  # never started
    async with running(link) as task:
        status = await asyncio.wait_for(statuses.get(), WAIT)
        assert status.last_error is not None
        assert f"cannot connect to broker 127.0.0.1:{own_mosquitto.port}" in status.last_error
        own_mosquitto.start()
        await link.wait_connected(WAIT)
        assert not task.done()


def test_a_connection_that_met_itself_is_told_apart_from_a_broker() -> None:
    # What happened on CI once: a link retrying a port that nothing listened on connected to
    # itself (TCP simultaneous open) and waited for its own CONNECT to be answered.
    port = free_port()
    with socket.socket() as alone, socket.create_server(("127.0.0.1", 0)) as server:
        alone.bind(("127.0.0.1", port))
        alone.connect(("127.0.0.1", port))
        with socket.create_connection(server.getsockname()) as client:
            assert met_itself(alone)
            assert not met_itself(client)
    with socket.socket() as unconnected:
        assert not met_itself(unconnected)


async def test_a_connection_that_met_itself_is_reported_and_retried(
    own_mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first connection is taken for one that met itself (which cannot be made to happen on
    # purpose through paho): the link says why it is not connected and tries again.
    first = iter([True])
    monkeypatch.setattr("hub.mqtt.met_itself", lambda sock: next(first, False))
    own_mosquitto.start()
    statuses: asyncio.Queue[LinkStatus] = asyncio.Queue()
    link = Link(fast(own_mosquitto.url), on_status=statuses.put_nowait)
    async with running(link):
        status = await asyncio.wait_for(statuses.get(), WAIT)
        assert status.last_error is not None
        assert "the connection met itself" in status.last_error
        await link.wait_connected(WAIT)


async def test_tls_with_a_private_ca(own_mosquitto: Mosquitto, tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path)
    own_mosquitto.tls = (ca, cert, key)
    own_mosquitto.start()
    assert own_mosquitto.url.startswith("mqtts://")
    p = prefix()
    link = Link(fast(own_mosquitto.url, ca_file=ca))
    inbox, handler = collector()
    link.subscribe(f"{p}/x", handler)
    async with running(link):
        await link.wait_connected(WAIT)
        await link.publish(f"{p}/x", "over tls")
        assert (await next_msg(inbox)).payload == b"over tls"

    statuses: asyncio.Queue[LinkStatus] = asyncio.Queue()
    untrusting = Link(fast(own_mosquitto.url), on_status=statuses.put_nowait)  # system CAs only
    async with running(untrusting):
        status = await asyncio.wait_for(statuses.get(), WAIT)
    assert status.last_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in status.last_error


async def test_handlers_see_only_their_own_topics(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    a_msgs, a = collector()
    all_msgs, everything = collector()
    link.subscribe(f"{p}/a/+", a)
    link.subscribe(f"{p}/#", everything)  # covers a/+: the broker holds one subscription
    async with running(link):
        await link.wait_connected(WAIT)
        for topic in (f"{p}/b/x", f"{p}/a/x/y", f"{p}/a/x", f"{p}/end"):
            await link.publish(topic, topic)
        seen = [(await next_msg(all_msgs)).topic for _ in range(4)]
    assert seen == [f"{p}/b/x", f"{p}/a/x/y", f"{p}/a/x", f"{p}/end"]
    assert [m.topic for m in drain(a_msgs)] == [f"{p}/a/x"]
    assert link.stats.dispatched == 5


async def test_a_handler_under_two_matching_filters_gets_each_message_once(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    inbox, handler = collector()
    link.subscribe(f"{p}/5/+/+", handler)  # as Homie v5 and v4 filters overlap on homie/5/...
    link.subscribe(f"{p}/+/dev/+", handler)
    async with running(link):
        await link.wait_connected(WAIT)
        await link.publish(f"{p}/5/dev/x", b"1")
        await link.publish(f"{p}/5/end/x", b"2")  # a sentinel matching one filter only
        got = [await next_msg(inbox) for _ in range(2)]
    assert [m.payload for m in got] == [b"1", b"2"]
    assert drain(inbox) == []


def drain(q: asyncio.Queue[Message]) -> list[Message]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def test_subscribe_while_connected(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    async with running(link):
        await link.wait_connected(WAIT)
        await link.set_retained(f"{p}/kept", b"r", qos=1)
        inbox, handler = collector()
        link.subscribe(f"{p}/+", handler)
        await link.wait_subscribed()
        await link.publish(f"{p}/live", b"l")
        got = [await next_msg(inbox) for _ in range(2)]
    assert [(m.topic, m.payload, m.retain) for m in got] == [(f"{p}/kept", b"r", True), (f"{p}/live", b"l", False)]


@pytest.mark.parametrize(
    ("limit", "size"),
    [
        (100, 101),  # just over: read, then dropped by size
        (1000, 300_000),  # far over: skipped as it arrives, never buffered
    ],
)
async def test_oversize_payload_is_dropped_and_counted(mosquitto: Mosquitto, limit: int, size: int) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url, max_payload_bytes=limit))
    inbox, handler = collector()
    link.subscribe(f"{p}/#", handler)
    async with running(link):
        await link.wait_connected(WAIT)
        await link.publish(f"{p}/big", b"x" * size)
        await link.publish(f"{p}/small", b"x" * limit)
        got = await next_msg(inbox)
    assert (got.topic, len(got.payload)) == (f"{p}/small", limit)
    assert inbox.empty()
    assert link.stats.dropped_oversize == 1
    assert link.stats.received == 2


async def test_a_raising_handler_does_not_stop_the_link(mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    inbox, handler = collector()

    async def broken(msg: Message) -> None:
        if msg.payload == b"boom":
            raise RuntimeError("handler bug")
        handler(msg)

    link.subscribe(f"{p}/#", broken)
    async with running(link) as task:
        await link.wait_connected(WAIT)
        await link.publish(f"{p}/1", b"boom")
        await link.publish(f"{p}/2", b"fine")
        assert (await next_msg(inbox)).payload == b"fine"
        assert not task.done()
    assert link.stats.handler_errors == 1
    assert "handler bug" in caplog.text
    assert "Traceback" in caplog.text


async def test_publishes_while_down_are_queued_bounded_and_sent(own_mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(own_mosquitto.url, max_pending=2))
    for n in (1, 2, 3):
        await link.publish(f"{p}/q", str(n))
    await link.set_retained(f"{p}/kept", b"state")  # remembered, republished on connect
    assert (link.stats.queued, link.stats.dropped_queue_full) == (3, 1)

    own_mosquitto.start()
    async with watching(own_mosquitto.port, f"{p}/#") as q, running(link):
        got = [await asyncio.wait_for(q.get(), WAIT) for _ in range(3)]
    assert [(m.topic.value, m.payload) for m in got] == [(f"{p}/kept", b"state"), (f"{p}/q", b"2"), (f"{p}/q", b"3")]


async def test_clear_retained_forgets_and_clears(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    async with running(link):
        await link.wait_connected(WAIT)
        # QoS 1: set_retained returns once the broker has it, so a fresh subscriber must see it.
        await link.set_retained(f"{p}/a", b"1", qos=1)
        await link.set_retained(f"{p}/b", b"2", qos=1)
        assert await retained(mosquitto.port, f"{p}/#") == {f"{p}/a": b"1", f"{p}/b": b"2"}
        await link.clear_retained(f"{p}/a", qos=1)
        assert dict(link.retained) == {f"{p}/b": b"2"}
        assert await retained(mosquitto.port, f"{p}/#") == {f"{p}/b": b"2"}


async def test_bad_filter_is_refused(mosquitto: Mosquitto) -> None:
    link = Link(fast(mosquitto.url))
    with pytest.raises(ValueError, match="'#' must be"):
        link.subscribe("a/#/b", lambda m: None)


# --- the lane: bulk reads, batched writes, QoS 0 without paho -----------------------------


async def test_a_burst_arrives_whole_and_in_order(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    inbox, handler = collector()
    link.subscribe(f"{p}/#", handler)
    sent = [(f"{p}/d{i % 50}", f'{{"n":{i}}}'.encode()) for i in range(5000)]
    async with running(link):
        await link.wait_connected(WAIT)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
            for topic, payload in sent:
                await c.publish(topic, payload)
        got = [await next_msg(inbox) for _ in sent]
    assert [(m.topic, m.payload) for m in got] == sent
    assert link.stats.received == 5000


async def test_a_multi_megabyte_message_arrives_intact(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url, max_payload_bytes=8 * 1024 * 1024))
    inbox, handler = collector()
    link.subscribe(f"{p}/#", handler)
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB, like a large Zigbee2MQTT bridge/devices
    async with running(link):
        await link.wait_connected(WAIT)
        await link.publish(f"{p}/big", big)
        got = await next_msg(inbox)
    assert got.payload == big


async def test_qos1_messages_come_in_order_beside_qos0_each_acknowledged(mosquitto: Mosquitto) -> None:
    # 200 QoS 1 messages: Mosquitto sends at most 20 unacknowledged ones at a time, so every
    # one arrives only if the link acknowledges each (the lane decodes them, not paho).
    p = prefix()
    link = Link(fast(mosquitto.url))
    inbox, handler = collector()
    link.subscribe(f"{p}/#", handler, qos=1)
    async with running(link):
        await link.wait_connected(WAIT)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
            for i in range(400):
                await c.publish(f"{p}/x", f"{i}", qos=i % 2)
        got = [await next_msg(inbox) for _ in range(400)]
    assert [int(m.payload) for m in got] == list(range(400))
    assert [m.qos for m in got] == [i % 2 for i in range(400)]


async def test_a_qos0_publish_after_a_qos1_one_is_not_overtaken(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    async with running(link):
        await link.wait_connected(WAIT)
        async with watching(mosquitto.port, f"{p}/#") as q:
            sender = asyncio.create_task(link.publish(f"{p}/order", b"first", qos=1))
            await asyncio.sleep(0)  # the QoS 1 publish is queued in paho, not yet written
            await link.publish(f"{p}/order", b"second")
            await sender
            first = await wait_payload(q, b"first")
            second = await wait_payload(q, b"second")
    assert (first.payload, second.payload) == (b"first", b"second")


async def test_the_broker_socket_sends_without_nagle_delay(mosquitto: Mosquitto) -> None:
    # A command right after a state publish otherwise waits ~40 ms for the broker's delayed ACK.
    link = Link(fast(mosquitto.url))
    async with running(link):
        await link.wait_connected(WAIT)
        assert link._client is not None
        assert link._client.lane is not None
        assert link._client.lane._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.fixture
def small_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backlog marks of 50 and 10 messages, so that a few hundred make a flood."""
    monkeypatch.setattr("hub.mqtt._BACKLOG_HIGH", 50)
    monkeypatch.setattr("hub.mqtt._BACKLOG_LOW", 10)


@pytest.mark.usefixtures("small_backlog")
async def test_a_slow_handler_pauses_reading_and_loses_nothing(mosquitto: Mosquitto) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    got: list[bytes] = []
    pauses: list[int] = []
    done = asyncio.Event()

    async def slow(msg: Message) -> None:
        lane = link._client.lane if link._client else None
        if lane is not None and lane._paused:
            pauses.append(len(got))
        got.append(msg.payload)
        await asyncio.sleep(0)  # a handler that waits on something, as the store or a publish may
        if len(got) == 600:
            done.set()

    link.subscribe(f"{p}/#", slow)
    async with running(link):
        await link.wait_connected(WAIT)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
            for i in range(600):  # fewer than the broker queues for a client that is not reading
                await c.publish(f"{p}/x", str(i).encode())
            await asyncio.wait_for(done.wait(), WAIT)
    assert got == [str(i).encode() for i in range(600)]
    assert pauses, "the backlog never went over the high mark"


@pytest.mark.usefixtures("small_backlog")
async def test_a_retained_flood_bigger_than_the_backlog_does_not_stall_the_connection(mosquitto: Mosquitto) -> None:
    # The birth publish waits for its PUBACK, which the broker sends behind the retained
    # messages of the subscriptions made just before. Had the link stopped reading over the
    # backlog mark then (no one handles messages before it is up), the PUBACK would never be
    # read: a time-out, a reconnect and the same again, for ever, in a home this big.
    p = prefix()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        for i in range(400):  # fewer than the broker queues for a client that is not reading
            await c.publish(f"{p}/d/{i}", str(i).encode(), qos=1, retain=True)
    settings = fast(mosquitto.url, will_topic=f"{p}/status", will_payload=b"offline", birth_payload=b"online")
    link = Link(settings)
    inbox, handler = collector()
    link.subscribe(f"{p}/d/#", handler)
    async with running(link):
        await link.wait_connected(WAIT)
        got = {(await next_msg(inbox)).topic for _ in range(400)}
    assert got == {f"{p}/d/{i}" for i in range(400)}
    assert link.stats.reconnects == 0
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:  # leave the shared broker clean
        for i in range(400):
            await c.publish(f"{p}/d/{i}", b"", qos=1, retain=True)


async def test_subscriptions_kept_up_to_date_one_filter_at_a_time_equal_a_full_recompute(
    mosquitto: Mosquitto,
) -> None:
    p = prefix()
    link = Link(fast(mosquitto.url))
    inbox, handler = collector()
    link.subscribe(f"{p}/a/+", handler)
    async with running(link):
        await link.wait_connected(WAIT)
        steps = [
            (f"{p}/a/x", 0),  # covered by a/+: nothing new at the broker
            (f"{p}/a/y", 1),  # covered, but asks for more: a/+ goes up to QoS 1
            (f"{p}/b/x", 0),  # on its own
            (f"{p}/b/#", 0),  # a wildcard: covers b/x, which is dropped at the broker
            (f"{p}/b/y", 1),  # covered by b/#, which goes up to QoS 1
            (f"{p}/c", 0),
        ]
        for pattern, qos in steps:
            link.subscribe(pattern, handler, qos=qos)
            await link.wait_subscribed()
            assert link._subscribed == broker_filters(link._filters), pattern
        assert link._subscribed == {f"{p}/a/+": 1, f"{p}/b/#": 1, f"{p}/c": 0}
        await link.publish(f"{p}/b/x", b"routed once")
        got = await next_msg(inbox)
    assert (got.topic, got.payload) == (f"{p}/b/x", b"routed once")
