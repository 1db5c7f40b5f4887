"""MQTT 3.1.1 framing of the packets the link handles itself: PUBLISH at QoS 0 and 1 from the broker.

Everything else (CONNECT, SUBSCRIBE, keepalive, QoS 2 flows, publishes the hub sends at
QoS 1) stays with paho; these functions only split the broker's byte stream into whole
packets, decode QoS 0 and 1 publishes and encode QoS 0 ones, so that a burst of messages
costs a few slices each instead of paho's three socket reads and a dozen objects per packet.
A QoS 1 publish from the broker needs only its PUBACK, which holds no session state: paho
itself sends it as soon as the message is handed on, and so does the lane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.wire import Message

PUBLISH = 0x30
PUBLISH_QOS1 = 0x32
PUBACK = 0x40
_DECODED = (PUBLISH, PUBLISH_QOS1)  # the first bytes (less DUP and RETAIN) of publishes decoded here
_TYPE_MASK = 0xF0
_QOS_MASK = 0x06
_MAX_REMAINING = 268_435_455  # the largest remaining length four bytes can express (MQTT 3.1.1 §2.2.3)
_TOPIC_OVERHEAD = 2 + 65_535  # topic length field and the longest topic


class MalformedStream(ValueError):
    """The bytes from the broker are not MQTT: the connection cannot be trusted any further."""


def encode_length(n: int) -> bytes:
    """The variable-length remaining-length field (MQTT 3.1.1 §2.2.3)."""
    if not 0 <= n <= _MAX_REMAINING:
        raise ValueError(f"MQTT packet of {n} bytes is beyond the protocol's limit")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def encode_publish(topic: str, payload: bytes, *, retain: bool) -> bytes:
    """One QoS 0 PUBLISH packet; ValueError for a topic or payload MQTT cannot carry."""
    name = topic.encode()
    n = len(name)
    if not 0 < n <= 65_535:
        raise ValueError(f"MQTT topic of {n} bytes cannot be published")
    size = 2 + n + len(payload)
    first = PUBLISH | retain
    head = (
        bytes((first, size, n >> 8, n & 0xFF))
        if size < 128
        else bytes((first,)) + encode_length(size) + bytes((n >> 8, n & 0xFF))
    )
    return b"".join((head, name, payload))


@dataclass(slots=True)
class Received:
    """What a read of the stream yielded, in the order it came."""

    messages: list[Message] = field(default_factory=list)
    acks: bytearray = field(default_factory=bytearray)  # PUBACKs owed for the QoS 1 publishes decoded here
    others: bytearray = field(default_factory=bytearray)  # whole packets for paho, in order
    oversize: list[int] = field(default_factory=list)  # sizes of QoS 0 publishes refused unread
    undecodable: int = 0  # QoS 0 publishes whose topic is not valid UTF-8


class FrameReader:
    """Splits a byte stream into packets: QoS 0 and 1 publishes are decoded, other packets passed on whole.

    A QoS 0 publish longer than `max_payload` plus the longest topic is skipped as it
    arrives, never buffered: a hostile or broken publisher cannot make the hub hold it. A
    QoS 1 one that long goes to paho whole, whose acknowledgement the broker waits for.
    """

    def __init__(self, max_payload: int) -> None:
        # The start of an incomplete packet, kept as the chunks it came in until `_need` bytes
        # are there: joining only then keeps a multi-megabyte packet linear to receive.
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0
        self._skip = 0  # bytes of a refused publish still to come
        self._limit = max_payload + _TOPIC_OVERHEAD

    def feed(self, data: bytes, out: Received) -> None:
        """Add bytes read from the socket; whole packets land in `out`; MalformedStream if this is not MQTT."""
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._parts)
            self._parts = []
        buf = data
        end = len(buf)
        pos = 0
        messages = out.messages
        while pos < end:
            first = buf[pos]
            i = pos + 1
            length = 0
            shift = 0
            while True:  # remaining length: 1 to 4 bytes of 7 bits, least significant first
                if i >= end:
                    self._keep(buf[pos:], end - pos + 1)
                    return
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MalformedStream("remaining length longer than four bytes")
            stop = i + length
            kind = first & (_TYPE_MASK | _QOS_MASK)
            if kind == PUBLISH and length > self._limit:
                out.oversize.append(length)
                self._skip = max(stop - end, 0)
                pos = min(stop, end)
                continue
            if kind in _DECODED and length <= self._limit:
                if stop > end:
                    self._keep(buf[pos:], stop - pos)
                    return
                qos = (first & _QOS_MASK) >> 1
                ident = 2 * qos  # the packet id after the topic (QoS 1 only)
                if length < 2 + ident:
                    raise MalformedStream("PUBLISH without a topic" + (" and packet id" if qos else ""))
                cut = i + 2 + ((buf[i] << 8) | buf[i + 1])
                if cut + ident > stop:
                    raise MalformedStream("PUBLISH topic longer than the packet")
                if qos:
                    # Owed whether or not the topic decodes: an unacknowledged message holds
                    # one of the few the broker sends at once, until the connection ends.
                    out.acks += bytes((PUBACK, 2, buf[cut], buf[cut + 1]))
                try:
                    topic = buf[i + 2 : cut].decode()
                except UnicodeDecodeError:
                    out.undecodable += 1
                else:
                    messages.append(Message(topic, buf[cut + ident : stop], bool(first & 1), qos))
            else:
                if stop > end:
                    self._keep(buf[pos:], stop - pos)
                    return
                out.others += buf[pos:stop]
            pos = stop

    def _keep(self, start: bytes, need: int) -> None:
        self._parts = [start]
        self._have = len(start)
        self._need = need
