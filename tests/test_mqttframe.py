"""hub.mqttframe: QoS 0 PUBLISH framing, split at every byte boundary and against hostile streams."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.mqttframe import FrameReader, MalformedStream, Received, encode_length, encode_publish
from hub.wire import Message

topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0+#"), min_size=1, max_size=80)
payloads = st.binary(max_size=600)


def read_all(stream: bytes, chunks: list[int], limit: int = 1 << 20) -> Received:
    """Feed `stream` cut at the given chunk sizes (the rest in one piece)."""
    reader, got, pos = FrameReader(limit), Received(), 0
    for size in chunks:
        reader.feed(stream[pos : pos + size], got)
        pos += size
    reader.feed(stream[pos:], got)
    return got


@pytest.mark.parametrize(("n", "encoded"), [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f")])
def test_remaining_length_examples_of_the_spec(n: int, encoded: bytes) -> None:
    assert encode_length(n) == encoded


def test_remaining_length_beyond_four_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        encode_length(268_435_456)


def test_publish_bytes_as_the_spec_lays_them_out() -> None:
    # fixed header (PUBLISH, retain), remaining length 8, topic length 3, "a/b", payload "hi!"
    assert encode_publish("a/b", b"hi!", retain=True) == b"\x31\x08\x00\x03a/bhi!"


@given(st.lists(st.tuples(topics, payloads, st.booleans()), max_size=12), st.lists(st.integers(0, 300), max_size=30))
def test_any_split_of_a_stream_gives_back_every_publish_in_order(
    msgs: list[tuple[str, bytes, bool]], chunks: list[int]
) -> None:
    stream = b"".join(encode_publish(t, p, retain=r) for t, p, r in msgs)
    got = read_all(stream, chunks)
    assert got.messages == [Message(t, p, r, 0) for t, p, r in msgs]
    assert not got.others
    assert not got.oversize


def qos1_publish(topic: bytes, packet_id: int, payload: bytes, *, retain: bool = False) -> bytes:
    """A QoS 1 PUBLISH as a broker sends it: topic, packet id, payload (MQTT 3.1.1 §3.3)."""
    body = len(topic).to_bytes(2, "big") + topic + packet_id.to_bytes(2, "big") + payload
    return bytes((0x32 | retain,)) + encode_length(len(body)) + body


def test_other_packets_pass_through_whole_and_in_order() -> None:
    suback = b"\x90\x03\x00\x01\x00"
    pingresp = b"\xd0\x00"
    qos2 = b"\x34\x08\x00\x01t\x00\x07xyz"  # PUBLISH QoS 2: its four-way flow is paho's
    stream = suback + encode_publish("a", b"1", retain=False) + qos2 + pingresp
    got = read_all(stream, [1, 1, 3, 2, 5])
    assert bytes(got.others) == suback + qos2 + pingresp
    assert got.messages == [Message("a", b"1", False, 0)]


def test_a_qos1_publish_is_decoded_and_its_puback_owed() -> None:
    # fixed header (PUBLISH QoS 1), remaining length 8, topic "t", packet id 7, payload "xyz"
    got = read_all(b"\x32\x08\x00\x01t\x00\x07xyz", [])
    assert got.messages == [Message("t", b"xyz", False, 1)]
    assert bytes(got.acks) == b"\x40\x02\x00\x07"  # PUBACK, remaining length 2, packet id 7
    assert not got.others


@given(
    st.lists(st.tuples(topics, payloads, st.booleans(), st.integers(0, 1)), max_size=12),
    st.lists(st.integers(0, 300), max_size=30),
)
def test_any_split_of_mixed_qos_gives_every_publish_in_order_and_every_puback_once(
    msgs: list[tuple[str, bytes, bool, int]], chunks: list[int]
) -> None:
    ids = range(1, len(msgs) + 1)
    stream = b"".join(
        qos1_publish(t.encode(), i, p, retain=r) if q else encode_publish(t, p, retain=r)
        for (t, p, r, q), i in zip(msgs, ids, strict=True)
    )
    got = read_all(stream, chunks)
    assert got.messages == [Message(t, p, r, q) for t, p, r, q in msgs]
    owed = [i for (*_, q), i in zip(msgs, ids, strict=True) if q]
    assert bytes(got.acks) == b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in owed)
    assert not got.others


def test_a_qos1_publish_with_a_topic_that_is_not_utf8_is_still_acknowledged() -> None:
    got = read_all(qos1_publish(b"\xff\xfe", 9, b"x"), [2])
    assert got.messages == []
    assert got.undecodable == 1
    assert bytes(got.acks) == b"\x40\x02\x00\x09"


def test_an_oversize_qos1_publish_goes_to_paho_whole_for_its_ack() -> None:
    big = qos1_publish(b"t", 3, b"x" * 70_000)  # beyond the limit plus the longest topic
    got = read_all(big + encode_publish("a", b"1", retain=False), [100, 40_000], limit=1000)
    assert bytes(got.others) == big
    assert got.messages == [Message("a", b"1", False, 0)]
    assert not got.acks


def test_an_oversize_publish_is_skipped_unbuffered_and_the_stream_goes_on() -> None:
    big = encode_publish("big", b"x" * 200_000, retain=False)
    stream = big + encode_publish("small", b"ok", retain=False)
    reader = FrameReader(max_payload=1000 - 65_537)  # a limit of 1,000 bytes of packet
    got = Received()
    for i in range(0, len(stream), 4096):
        reader.feed(stream[i : i + 4096], got)
        assert len(reader._parts) <= 1
        assert reader._have <= 4096
    assert got.oversize == [len(big) - 4]  # its remaining length
    assert got.messages == [Message("small", b"ok", False, 0)]


def test_a_topic_that_is_not_utf8_is_counted_not_delivered() -> None:
    bad = b"\x30\x05\x00\x02\xff\xfeX"
    got = read_all(bad + encode_publish("good", b"", retain=False), [3])
    assert got.undecodable == 1
    assert got.messages == [Message("good", b"", False, 0)]


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "four bytes"),
        (b"\x30\x01\x00", "without a topic"),
        (b"\x30\x04\x00\x09ab", "longer than the packet"),
    ],
)
def test_a_stream_that_is_not_mqtt_is_refused(stream: bytes, why: str) -> None:
    with pytest.raises(MalformedStream, match=why):
        read_all(stream, [])


@given(st.binary(max_size=400))
def test_random_bytes_either_parse_or_are_refused_never_crash(data: bytes) -> None:
    try:
        got = read_all(data, [7, 13])
    except MalformedStream:
        return
    assert sum(len(m.topic) + len(m.payload) for m in got.messages) + len(got.others) <= len(data)
