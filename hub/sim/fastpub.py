"""A minimal MQTT 3.1.1 QoS 0 publisher for load: frames built in bulk and written in one go.

A general client spends tens of microseconds per publish; a load generator must outrun the
consumer it measures, so it writes pre-built PUBLISH frames straight to the socket. Only
CONNECT, PUBLISH (QoS 0), PINGREQ and DISCONNECT are spoken; PINGRESP after a burst proves
the broker has read everything before it (brokers handle a connection's packets in order).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable

from hub.wire import Message

_CONNACK_OK = b"\x20\x02\x00\x00"
_PINGREQ = b"\xc0\x00"
_PINGRESP = b"\xd0\x00"
_DISCONNECT = b"\xe0\x00"


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer (§2.2.3)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_frame(client_id: str, keepalive: int = 60) -> bytes:
    """CONNECT with a clean session and no credentials."""
    body = _string("MQTT") + b"\x04\x02" + struct.pack("!H", keepalive) + _string(client_id)
    return b"\x10" + remaining_length(len(body)) + body


def publish_frame(msg: Message) -> bytes:
    """One QoS 0 PUBLISH (the retain flag kept)."""
    body = _string(msg.topic) + msg.payload
    return bytes([0x31 if msg.retain else 0x30]) + remaining_length(len(body)) + body


class FastPublisher:
    """One plain TCP connection that publishes QoS 0 frames in bulk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, client_id: str, timeout: float = 10.0) -> FastPublisher:  # noqa: ASYNC109
        """Connect and wait for an accepting CONNACK; ConnectionError otherwise."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(connect_frame(client_id))
            ack = await reader.readexactly(4)
        if ack != _CONNACK_OK:
            writer.close()
            raise ConnectionError(f"broker {host}:{port} refused the load client: CONNACK {ack.hex()}")
        return cls(reader, writer)

    async def send(self, messages: Iterable[Message]) -> None:
        """Write the frames of these messages at once, waiting only when the socket buffer is full."""
        self._writer.write(b"".join(publish_frame(m) for m in messages))
        await self._writer.drain()

    async def sync(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Return once the broker has read everything sent so far (PINGREQ answered)."""
        self._writer.write(_PINGREQ)
        await self._writer.drain()
        async with asyncio.timeout(timeout):
            # Skip what the broker pushes meanwhile: amqtt sends retained messages even to
            # a client that subscribed to nothing.
            while (packet_type := await self._skip_packet()) != _PINGRESP[0]:
                if packet_type >> 4 != 3:  # anything but PUBLISH is unexpected here
                    raise ConnectionError(f"unexpected packet type {packet_type:#x} from the broker")

    async def _skip_packet(self) -> int:
        """Read one whole packet; its first byte."""
        first = (await self._reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        await self._reader.readexactly(length)
        return first

    async def close(self) -> None:
        """DISCONNECT and close."""
        try:
            self._writer.write(_DISCONNECT)
            await self._writer.drain()
        finally:
            self._writer.close()
            await self._writer.wait_closed()
