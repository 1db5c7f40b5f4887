"""The broker socket as the event loop drives it: bulk reads, one write per loop turn, QoS 0 publishes without paho.

paho reads a packet with three socket calls and one loop wake-up, writes each packet with
its own call, and builds a dozen objects per message; under a few thousand messages a
second that, not the hub's work, was the limit (bench/ingest.py). The lane sits between
paho and the socket: paho is handed a socket-like view whose `recv` serves only the packets
the lane passes on (CONNACK, SUBACK, PINGRESP, acks of the hub's own QoS 1 publishes, QoS 2
flows) and whose `send` appends to the lane's write buffer. QoS 0 publishes, which carry no
session state, are decoded and encoded here (hub.mqttframe), and QoS 1 ones from the broker
decoded and acknowledged; the session itself stays paho's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from hub.mqttframe import FrameReader, MalformedStream, Received, encode_publish
from hub.wire import Message

_CHUNK = 64 * 1024  # bytes asked of the socket per read
_READS_PER_WAKE = 4  # reads per readiness callback: a flood cannot starve the loop's other work
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Lane:
    """Owns one connected broker socket on the event loop for a paho client (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: paho.Client,
        sock: socket.socket | ssl.SSLSocket,
        *,
        deliver: Callable[[Received], None],
        fault: Callable[[BaseException], None],
        max_payload: int,
    ) -> None:
        self._loop = loop
        self._client = client
        self._sock = sock
        self._fd = sock.fileno()
        # paho leaves Nagle's algorithm on: a command written right after a state publish then
        # waits for the broker's delayed ACK, ~40 ms (measured by bench/latency.py). aiomqtt's
        # socket_options never reach a socket it does not recognise, so the lane sets it.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._deliver = deliver  # told of every read's messages, in order
        self._fault = fault  # told when the connection breaks outside paho's sight
        self._reader = FrameReader(max_payload)
        self._for_paho = bytearray()
        self._ended: BaseException | None = None  # the read error or end of stream paho has yet to see
        self._out = bytearray()
        self._flush_due = False
        self._writing = False  # a writer callback is registered: the socket was full
        self._paused = False
        self._closed = False
        self.view = PahoSocket(self)

    # --- reading ----------------------------------------------------------------------

    def start(self) -> None:
        """Begin reading (call on the loop)."""
        if not self._closed and not self._paused:
            self._loop.add_reader(self._fd, self._on_readable)

    def pause_reading(self) -> None:
        """Stop reading until `resume_reading`: the broker then holds (or drops) what comes meanwhile."""
        if not self._paused and not self._closed:
            self._paused = True
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        """Read again after `pause_reading`."""
        if self._paused:
            self._paused = False
            self.start()

    def _on_readable(self) -> None:
        got = Received()
        try:
            for _ in range(_READS_PER_WAKE):
                data = self._sock.recv(_CHUNK)
                if not data:
                    self._ended = ConnectionResetError("the broker closed the connection")
                    break
                self._reader.feed(data, got)
                if len(data) < _CHUNK and not _pending(self._sock):
                    break
        except _WOULD_BLOCK:
            pass
        except MalformedStream as exc:
            self._ended = ConnectionAbortedError(f"the broker sent something that is not MQTT: {exc}")
        except OSError as exc:
            self._ended = exc
        self._for_paho += got.others
        if got.acks and not self._closed:
            self._append(got.acks)
        try:
            # paho reads its packets from the view; an end of stream reaches it the same way,
            # so that it runs its own disconnect handling (and aiomqtt learns of it).
            while self._client._sock is self.view and (self._for_paho or self._ended is not None):
                self._client.loop_read()
                if self._ended is not None and not self._for_paho:
                    break
        except Exception as exc:
            self._fault(exc)
        if got.messages or got.oversize or got.undecodable:
            self._deliver(got)

    def _recv_for_paho(self, size: int) -> bytes:
        if not self._for_paho:
            if self._ended is not None:
                ended, self._ended = self._ended, None
                if isinstance(ended, ConnectionResetError):
                    return b""
                raise ended
            raise BlockingIOError
        chunk = bytes(self._for_paho[:size])
        del self._for_paho[:size]
        return chunk

    # --- writing ----------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Queue a QoS 0 publish for this turn's write; ValueError if MQTT cannot carry it."""
        packet = encode_publish(topic, payload, retain=retain)
        if self._client._out_packet:
            self._client.loop_write()
        self._append(packet)

    def _append(self, data: bytes | bytearray) -> None:
        if self._closed:
            raise BrokenPipeError("the broker connection is closed")
        self._out += data
        if not self._flush_due and not self._writing:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def paho_wants_write(self) -> None:
        """paho queued packets (maybe from another thread, as in connect): write them on the loop."""
        self._loop.call_soon_threadsafe(self._pump)

    def _pump(self) -> None:
        if self._closed or self._client._sock is not self.view:
            return
        try:
            self._client.loop_write()
        except Exception as exc:
            self._fault(exc)

    def _flush(self) -> None:
        self._flush_due = False
        if self._closed or not self._out:
            return
        try:
            sent = self._sock.send(self._out)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._out.clear()
            self._fault(exc)
            return
        del self._out[:sent]
        if self._out and not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)
        elif not self._out and self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _on_writable(self) -> None:
        self._flush()

    # --- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading and writing; what is buffered is sent if the socket takes it at once."""
        if self._closed:
            return
        with_out = bytes(self._out)
        self._closed = True
        self._out.clear()
        if not self._paused:
            self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        if with_out:
            # paho's DISCONNECT is usually in here: worth one try, never a wait.
            with contextlib.suppress(OSError):
                self._sock.send(with_out)


class PahoSocket:
    """The socket paho sees: reads the packets the lane passes on, writes into the lane's buffer."""

    def __init__(self, lane: Lane) -> None:
        self._lane = lane

    def recv(self, size: int) -> bytes:
        """The next bytes of paho's packets; BlockingIOError when none are waiting."""
        return self._lane._recv_for_paho(size)

    def send(self, data: bytes | bytearray) -> int:
        """Accept everything: the lane writes it, in order, this loop turn."""
        self._lane._append(data)
        return len(data)

    def close(self) -> None:
        """Close the lane and the real socket."""
        self._lane.close()
        self._lane._sock.close()

    def fileno(self) -> int:
        """The real socket's descriptor."""
        return self._lane._fd

    def pending(self) -> int:
        """Bytes paho may read without waiting (aiomqtt asks, for TLS sockets)."""
        return len(self._lane._for_paho)

    def __getattr__(self, name: str) -> Any:
        # setsockopt, getpeername, setblocking …: whatever else paho or aiomqtt asks of the socket.
        return getattr(self._lane._sock, name)


def _pending(sock: socket.socket | ssl.SSLSocket) -> int:
    # TLS may hold decrypted bytes the selector cannot see.
    return sock.pending() if isinstance(sock, ssl.SSLSocket) else 0


def decode_paho(message: paho.MQTTMessage) -> Message | None:
    """A message paho received (QoS 1 or 2) as plain data, or None when its topic is not UTF-8."""
    try:
        topic = message.topic
    except UnicodeDecodeError:
        return None
    return Message(topic, bytes(message.payload), bool(message.retain), int(message.qos))
