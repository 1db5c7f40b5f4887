"""The fast discovery path of the Home Assistant adapter gives what a full, validated rebuild gives."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.adapters.base import Rejected
from hub.adapters.common import decode_json
from hub.adapters.homeassistant import HomeAssistantAdapter
from hub.model import Device, DeviceDiscovered, Event, Kind, Point, Protocol, StateChanged
from hub.trusted import trusted
from hub.wire import Message
from tests import captures

HA = captures.FIXTURES / "ha_discovery"
NOW = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
COVER_TOPIC = "homeassistant/cover/0xa4c138b5bc064c64/cover/config"


def _messages() -> list[Message]:
    out = []
    for path in sorted(HA.glob("*.json")):
        fx = json.loads(path.read_text(encoding="utf-8"))
        topic = (fx["topic"] or COVER_TOPIC).replace("<object_id>", "kitchen01")
        out.append(Message(topic, fx["payload_raw"].encode(), retain=bool(fx.get("retained"))))
    return out


MESSAGES = _messages()
CONFIGS = [m for m in MESSAGES if m.topic.endswith("/config")]


def _sensor(i: int, device: str = "dev1", name: str = "Bedroom") -> Message:
    cfg = {
        "device_class": "temperature",
        "state_topic": f"bench/{i}/state",
        "unit_of_measurement": "°F",
        "value_template": "{{ value_json.temperature }}",
        "unique_id": f"t{i}",
        "device": {"identifiers": [device], "name": name, "manufacturer": "Acme"},
    }
    return Message(f"homeassistant/sensor/t{i}/config", json.dumps(cfg).encode(), retain=True)


def _discovered(events: list[Event]) -> list[DeviceDiscovered]:
    return [e for e in events if isinstance(e, DeviceDiscovered)]


def _Reference() -> HomeAssistantAdapter:
    """The adapter with its shortcuts off: every config parsed, every device rebuilt from all its entities."""
    return HomeAssistantAdapter(shortcuts=False)


def _outcome(a: HomeAssistantAdapter, msgs: list[Message]) -> list[Any]:
    out: list[Any] = []
    for i, m in enumerate(msgs):
        try:
            out.append([e.model_dump(mode="json") for e in a.feed(m, NOW + timedelta(seconds=i))])
        except Rejected as exc:
            out.append(exc.reason)
    return [*out, dict(a.counters), a.subscriptions()]


# ------------------------------------------------------------------------------- fast-built models


def test_trusted_models_equal_the_validated_ones() -> None:
    for m in CONFIGS:
        for event in _discovered(_feed(HomeAssistantAdapter(), m)):
            dev = event.device
            valid = Device(**{f: getattr(dev, f) for f in dev.model_fields_set})
            assert dev == valid
            assert dev.model_fields_set == valid.model_fields_set
            assert dev.model_dump_json() == valid.model_dump_json()
            assert repr(dev) == repr(valid)
            assert event == DeviceDiscovered(ts=event.ts, device=valid)
            assert event.model_fields_set == {"ts", "device"}
            for p in dev.points:
                checked = Point(**{f: getattr(p, f) for f in Point.model_fields})
                assert p == checked
                assert p.model_fields_set == checked.model_fields_set
                assert p.model_dump_json() == checked.model_dump_json()


def test_trusted_copies_like_a_validated_model() -> None:
    shared = {"key", "kind"}
    p = trusted(Point, {**Point(key="a", kind=Kind.BUTTON).__dict__, "options": ("x",)}, shared)
    q = trusted(Point, {**Point(key="b", kind=Kind.BUTTON).__dict__}, shared)
    merged = p.model_copy(update={"options": ("x", "y")})
    assert merged.options == ("x", "y")
    assert merged.model_fields_set == {"key", "kind", "options"}
    assert p.options == ("x",)
    assert p.model_fields_set == {"key", "kind"}  # the copy's update did not reach the original
    assert q.model_fields_set == shared == {"key", "kind"}  # nor the other models built from the same set


def test_validated_models_given_the_same_fields_share_one_set_of_their_names() -> None:
    # A home holds thousands of models; pydantic's set of given names per model cost as much as
    # the model's own fields. Shared, it must still behave as each model's own.
    a = Device(id="z2m-1", name="One", protocol=Protocol.Z2M, identifiers={"ieee": "0x1"})
    b = Device(id="z2m-2", name="Two", protocol=Protocol.Z2M, identifiers={"ieee": "0x2"})
    c = Device(id="z2m-3", name="Three", protocol=Protocol.Z2M)
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert c.model_fields_set == {"id", "name", "protocol"}
    renamed = a.model_copy(update={"room": "hall"})
    assert renamed.model_fields_set == {"id", "name", "protocol", "identifiers", "room"}
    assert a.model_fields_set == b.model_fields_set == {"id", "name", "protocol", "identifiers"}
    assert b.model_dump(exclude_unset=True) == {
        "id": "z2m-2",
        "name": "Two",
        "protocol": Protocol.Z2M,
        "identifiers": {"ieee": "0x2"},
    }


def test_a_long_payload_parses_as_json_loads_parses_it_without_a_whole_document_tree() -> None:
    # A big home's bridge/devices runs to megabytes; orjson's tree of it took 15 times its size.
    entries = [
        {"ieee_address": f"0x{n:016x}", "exposes": [{"name": "temperature", "unit": "°C"}] * 3} for n in range(8000)
    ]
    payload = json.dumps(entries).encode()
    assert len(payload) > 1_000_000
    tracemalloc.start()
    try:
        parsed = decode_json(payload)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed == entries
    # Beyond the result itself, little more than the payload's text (orjson: twice the result).
    assert peak - kept < 2 * len(payload), f"parsing {len(payload)} bytes into {kept} peaked at {peak} bytes"
    with pytest.raises(Rejected) as refused:
        decode_json(payload[:-1])
    assert refused.value.reason == "invalid_json"


@pytest.mark.parametrize("opener", ["[", '{"k":'])
def test_nesting_is_measured_on_what_parsed(opener: str) -> None:
    # Parsed first, measured after: 64 levels pass, 65 (which orjson parses) are refused, and
    # brackets inside strings count for nothing (the old byte scan refused these).
    closer = "]" if opener == "[" else "}"
    assert decode_json((opener * 64 + "1" + closer * 64).encode()) is not None
    with pytest.raises(Rejected) as deep:
        decode_json((opener * 65 + "1" + closer * 65).encode())
    assert deep.value.reason == "too_deep"
    assert decode_json(json.dumps({"text": "[{" * 100}).encode()) == {"text": "[{" * 100}
    # Beyond what orjson parses, and broken: still told apart from other invalid JSON.
    with pytest.raises(Rejected) as bomb:
        decode_json((opener * 5000).encode())
    assert bomb.value.reason == "too_deep"


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=' \t\n\r\x0b\ufeff{}[]":,01aentrul\\', max_size=12),
        st.tuples(
            st.text(" \t\n\r", max_size=2),
            st.recursive(
                st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=4),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                max_leaves=6,
            ),
            st.text(" \t\n\r\x0bx", max_size=2),
        ).map(lambda t: t[0] + json.dumps(t[1]) + t[2]),
    )
)
def test_payloads_parse_as_json_loads_parses_them(text: str) -> None:
    # orjson parses device payloads first; what comes out must be what json.loads gives (for
    # integers within 64 bits: beyond them orjson gives floats, which every adapter makes of them).
    try:
        expected: Any = json.loads(text)
    except ValueError:
        expected = Rejected
    try:
        got: Any = decode_json(text.encode())
    except Rejected as exc:
        got = Rejected if exc.reason in ("invalid_json", "too_deep") else exc.reason
    assert got == expected or (got is not Rejected and repr(got) == repr(expected))


def _feed(a: HomeAssistantAdapter, m: Message) -> list[Event]:
    try:
        return a.feed(m, NOW)
    except Rejected:
        return []


# ------------------------------------------------------------------------------- re-announcements


def test_identical_reannouncement_reuses_the_device() -> None:
    a = HomeAssistantAdapter()
    first = _discovered(a.feed(_sensor(1), NOW))
    again = _discovered(a.feed(_sensor(1), NOW + timedelta(seconds=1)))
    assert [e.device for e in again] == [e.device for e in first]
    assert again[0].device is first[0].device  # not rebuilt: the config was not parsed again
    assert again[0].ts == NOW + timedelta(seconds=1)
    assert a.counters["other_points"] == 0


def test_reannouncement_after_another_config_renamed_the_device_rebuilds_it() -> None:
    a = HomeAssistantAdapter()
    a.feed(_sensor(1, name="Bedroom"), NOW)
    renamed = _discovered(a.feed(_sensor(2, name="Guest room"), NOW))
    assert renamed[0].device.name == "Guest room"
    back = _discovered(a.feed(_sensor(1, name="Bedroom"), NOW))
    assert back[0].device.name == "Bedroom"  # the first config's block applies again, as a full parse does
    assert [p.key for p in back[0].device.points] == ["t2", "t1"]  # and the entity moves last, as before


def test_reannouncement_restarts_composite_state() -> None:
    light = next(m for m in CONFIGS if m.topic == "homeassistant/light/kitchen/config")  # JSON schema
    for a in (HomeAssistantAdapter(), _Reference()):
        a.feed(light, NOW)
        topic = next(t for t in a.subscriptions()[2:] if "avail" not in t)
        a.feed(Message(topic, b'{"state": "ON", "brightness": 255}'), NOW)
        a.feed(light, NOW)
        events = a.feed(Message(topic, b'{"brightness": 128}'), NOW)
        values = next(e.values for e in events if isinstance(e, StateChanged))
        assert values == {next(iter(values)): {"brightness": 50.2}}


def test_devices_with_many_entities_are_built_incrementally_as_a_rebuild_would() -> None:
    fast, slow = HomeAssistantAdapter(), _Reference()
    msgs = [_sensor(i, device=f"d{i // 10}") for i in range(30)]
    assert _outcome(fast, msgs) == _outcome(slow, msgs)
    assert len(fast.device("ha-d0").points) == 10  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(range(len(MESSAGES) + 4)), max_size=40), st.integers(0, 3))
def test_shortcuts_change_no_event(picks: list[int], repeats: int) -> None:
    extra = [_sensor(1), _sensor(2, name="Other"), Message(_sensor(1).topic, b""), _sensor(3, device="dev2")]
    pool = MESSAGES + extra
    msgs = [pool[i] for i in picks]
    msgs += [m for m in msgs if m.topic.endswith("/config")] * repeats  # HA restarting: every config again
    assert _outcome(HomeAssistantAdapter(), msgs) == _outcome(_Reference(), msgs)


def test_a_point_key_over_200_characters_is_refused_and_counted() -> None:
    from datetime import UTC, datetime

    from hub.adapters.base import Rejected
    from hub.adapters.homeassistant import HomeAssistantAdapter
    from hub.wire import Message

    adapter = HomeAssistantAdapter()
    now = datetime.now(UTC)
    name = "a" * 150  # keys are cut to 120 characters; a clash then appends the component
    config = b'{"stat_t": "x/state", "name": "' + name.encode() + b'", "dev": {"ids": "d1"}}'
    adapter.feed(Message(f"homeassistant/sensor/{name}/config", config, retain=True), now)
    odd = "c" * 100  # HA's own matcher takes any word as a component; we stay as lenient
    with pytest.raises(Rejected) as caught:
        adapter.feed(Message(f"homeassistant/{odd}/{name}/config", config, retain=True), now)
    assert caught.value.reason == "bad_key"
    assert adapter.counters["bad_key"] == 1
