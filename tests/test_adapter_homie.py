"""The Homie adapter (v5 and v4) against the real captures in shared/fixtures/homie."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.adapters.base import Rejected
from hub.adapters.homie import HomieAdapter
from hub.model import (
    AvailabilityChanged,
    AvailabilityState,
    DeviceDiscovered,
    DeviceRemoved,
    Event,
    Kind,
    PointEvent,
    StateChanged,
)
from hub.wire import Message, topic_matches
from tests import captures
from tests.captures import outcome

# CI checks the project out with shared/ beside it (/work/main and /work/shared here).
FIXTURES = captures.FIXTURES / "homie"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FILES = sorted(p.name for p in FIXTURES.glob("*.json"))
DUMPS = sorted(p.name for p in FIXTURES.glob("*.txt"))


def fixture(name: str) -> dict[str, Any]:
    return captures.fixture("homie", name)


def message(name: str, *, retain: bool | None = None) -> Message:
    return captures.message("homie", name, retain=retain)


def dump(name: str) -> list[Message]:
    """A v4 `<topic> <payload>` dump as the retained messages a subscriber receives."""
    lines = (FIXTURES / name).read_text().splitlines()
    pairs = [line.split(" ", 1) for line in lines if line and not line.startswith("#")]
    return [Message(topic, payload.encode(), retain=True) for topic, payload in pairs]


def feed(adapter: HomieAdapter, msgs: list[Message]) -> list[Event]:
    out: list[Event] = []
    for msg in msgs:
        out += adapter.feed(msg, NOW)
    return out


def states(events: list[Event]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in events:
        if isinstance(e, StateChanged):
            out |= e.values
    return out


def last_device(events: list[Event]) -> DeviceDiscovered:
    return [e for e in events if isinstance(e, DeviceDiscovered)][-1]


def description(topic: str, nodes: dict[str, Any], **extra: Any) -> Message:
    body = {"homie": "5.0", "version": 1, "name": topic.split("/")[2], "nodes": nodes} | extra
    return Message(topic, json.dumps(body).encode(), retain=True)


@pytest.mark.parametrize("name", FILES)
def test_every_fixture_parses_or_is_rejected_with_a_reason(name: str) -> None:
    adapter = HomieAdapter()
    fx = fixture(name)
    result = outcome(lambda: adapter.feed(message(name), NOW))
    if isinstance(result, Rejected):
        assert result.reason
        assert adapter.counters[result.reason] == 1
    else:
        assert isinstance(result, list)
    # `$target` is not subscribed: the hub acts on the value the device reports, not its intent.
    if fx["direction"] == "device->hub" and not fx["topic"].endswith("/$target"):
        assert any(topic_matches(f, fx["topic"]) for f in adapter.subscriptions()), fx["topic"]


@pytest.mark.parametrize("name", DUMPS)
def test_every_v4_dump_line_parses(name: str) -> None:
    adapter = HomieAdapter()
    for msg in dump(name):
        assert any(topic_matches(f, msg.topic) for f in adapter.subscriptions()), msg.topic
        assert isinstance(adapter.feed(msg, NOW), list)


V5 = ["v5_node_homie_state_ready.json", "v5_node_homie_description.json"]


def test_v5_description_to_points() -> None:
    events = feed(HomieAdapter(), [message(n) for n in V5])
    dev = last_device(events).device
    assert dev.id == "homie-my-homie-device"
    assert dev.name == "My demo homie device"
    assert dev.identifiers == {"homie_id": "my-homie-device"}
    # The device is announced before its availability.
    assert [type(e) for e in events] == [DeviceDiscovered, AvailabilityChanged]


# (point key, kind, unit, writable) from v5 descriptions
@pytest.mark.parametrize(
    ("key", "kind", "unit", "writable"),
    [("temperature", Kind.TEMPERATURE, "°C", False), ("switch", Kind.SWITCH, None, True)],
)
def test_v5_points(key: str, kind: Kind, unit: str | None, writable: bool) -> None:
    dev = last_device(feed(HomieAdapter(), [message(n) for n in V5])).device
    point = dev.point(key)
    assert point is not None
    assert (point.kind, point.unit, point.writable) == (kind, unit, writable)


# (messages before, fixture, expected values)
VALUE_CASES = [
    (V5, "v5_node_homie_property_temperature.json", {"temperature": 21.4}),
    (V5, "v5_node_homie_property_switch.json", {"switch": False}),
    (["v5_profiles_draft_motion_description_nonconformant.json"], "v5_profiles_motion_value.json", {"presence": False}),
]


@pytest.mark.parametrize(("before", "name", "expected"), VALUE_CASES)
def test_v5_values(before: list[str], name: str, expected: dict[str, Any]) -> None:
    adapter = HomieAdapter()
    feed(adapter, [message(n) for n in before])
    events = adapter.feed(message(name), NOW)
    assert states(events) == expected


def test_values_before_the_description_are_replayed() -> None:
    adapter = HomieAdapter()
    early = [message("v5_node_homie_property_temperature.json"), message("v5_node_homie_property_switch.json")]
    assert feed(adapter, early) == []
    events = adapter.feed(message("v5_node_homie_description.json"), NOW)
    assert isinstance(events[0], DeviceDiscovered)
    assert states(events) == {"temperature": 21.4, "switch": False}


def test_draft_profile_description_is_accepted_and_counted() -> None:
    adapter = HomieAdapter()
    dev = last_device(feed(adapter, [message("v5_profiles_draft_motion_description_nonconformant.json")])).device
    point = dev.point("presence")
    assert point is not None
    assert point.kind is Kind.PRESENCE
    assert not point.writable
    assert adapter.counters["nonconformant_description"] == 1


@pytest.mark.parametrize(
    ("payload", "state"),
    [
        (b"ready", AvailabilityState.ONLINE),
        (b"init", AvailabilityState.OFFLINE),
        (b"disconnected", AvailabilityState.OFFLINE),
        (b"sleeping", AvailabilityState.OFFLINE),
        (b"lost", AvailabilityState.OFFLINE),
    ],
)
def test_v5_state(payload: bytes, state: AvailabilityState) -> None:
    adapter = HomieAdapter()
    feed(adapter, [message(n) for n in V5])
    (event,) = adapter.feed(Message("homie/5/my-homie-device/$state", payload, retain=True), NOW)
    assert isinstance(event, AvailabilityChanged)
    assert event.availability.state is state
    assert event.availability.reason == f"homie $state {payload.decode()}"


def test_state_is_case_sensitive_and_empty_removes() -> None:
    adapter = HomieAdapter()
    feed(adapter, [message(n) for n in V5])
    with pytest.raises(Rejected) as exc:
        adapter.feed(Message("homie/5/my-homie-device/$state", b"Ready", retain=True), NOW)
    assert exc.value.reason == "bad_state"
    (removed,) = adapter.feed(Message("homie/5/my-homie-device/$state", b"", retain=True), NOW)
    assert isinstance(removed, DeviceRemoved)
    assert removed.device_id == "homie-my-homie-device"


def test_custom_root_and_lost_root_takes_children_down() -> None:
    adapter = HomieAdapter()
    feed(adapter, [message("v5_span_panel_description_custom_root.json")])
    child = "ebus/5/2e94d24ec65d46b2bafcb86afc4140c4"
    power = {"meter": {"properties": {"active-power": {"datatype": "float", "unit": "W"}}}}
    assert adapter.feed(message("v5_span_child_circuit_active_power.json"), NOW) == []  # waits for its description
    events = feed(
        adapter,
        [
            Message(f"{child}/$state", b"ready", retain=True),
            description(f"{child}/$description", power, root="nj-2338-00fq1", parent="nj-2338-00fq1"),
        ],
    )
    point = last_device(events).device.point("power")
    assert point is not None
    assert point.kind is Kind.POWER
    assert point.unit == "W"
    assert states(events) == {"power": -123.4}
    lost = adapter.feed(Message("ebus/5/nj-2338-00fq1/$state", b"lost", retain=True), NOW)
    downs = {e.device_id: e.availability for e in lost if isinstance(e, AvailabilityChanged)}
    assert downs["homie-2e94d24ec65d46b2bafcb86afc4140c4"].reason == "homie root device lost"
    assert all(a.state is AvailabilityState.OFFLINE for a in downs.values())


def test_alert_becomes_a_visible_point() -> None:
    adapter = HomieAdapter()
    feed(adapter, [description("homie/5/mydevid/$description", {})])
    events = adapter.feed(message("v5_spec_alert_battery.json"), NOW)
    point = last_device(events).device.point("alert_battery")
    assert point is not None
    assert point.kind is Kind.OTHER
    assert point.note
    assert states(events) == {"alert_battery": "Battery is low, at 8%"}
    cleared = adapter.feed(Message("homie/5/mydevid/$alert/battery", b"", retain=True), NOW)
    assert states(cleared) == {"alert_battery": None}


def test_non_retained_property_is_an_event_never_replayed() -> None:
    adapter = HomieAdapter()
    bell = {"door": {"properties": {"doorbell": {"datatype": "enum", "format": "press", "retained": False}}}}
    dev = last_device(feed(adapter, [description("homie/5/front/$description", bell)])).device
    point = dev.point("doorbell")
    assert point is not None
    assert point.kind is Kind.DOORBELL
    (event,) = adapter.feed(Message("homie/5/front/door/doorbell", b"press"), NOW)
    assert isinstance(event, PointEvent)
    assert (event.key, event.value) == ("doorbell", "press")
    with pytest.raises(Rejected) as exc:
        adapter.feed(Message("homie/5/front/door/doorbell", b"press", retain=True), NOW)
    assert exc.value.reason == "retained_event"


def test_booleans_are_case_sensitive() -> None:
    adapter = HomieAdapter()
    feed(adapter, [message(n) for n in V5])
    with pytest.raises(Rejected) as exc:
        adapter.feed(Message("homie/5/my-homie-device/actor/switch", b"True", retain=True), NOW)
    assert exc.value.reason == "bad_value"
    assert adapter.counters["bad_value"] == 1


def test_v5_value_matches_two_filters_so_the_link_must_dispatch_once() -> None:
    # The link calls a handler once per message however many of its filters match
    # (tests/test_mqtt.py checks that side); here: the overlap is real.
    adapter = HomieAdapter()
    feed(adapter, [message(n) for n in V5])
    msg = message("v5_node_homie_property_temperature.json")
    assert sum(topic_matches(f, msg.topic) for f in adapter.subscriptions()) == 2
    assert states(adapter.feed(msg, NOW)) == {"temperature": 21.4}


def test_v4_device_completes_when_ready() -> None:
    adapter = HomieAdapter()
    events = feed(adapter, dump("v4_microhomie_led_dump.txt"))
    assert not any(isinstance(e, DeviceDiscovered) for e in events), "init: not complete yet"
    events = adapter.feed(Message("homie/2fe65700/$state", b"ready", retain=True), NOW)
    dev = last_device(events).device
    assert dev.id == "homie-2fe65700"
    assert dev.name == "LED test"
    assert dev.identifiers == {"homie_id": "2fe65700", "mac": "807D3ABBC78A"}
    assert dev.firmware == "Microhomie 2.2.0"
    point = dev.point("switch")
    assert point is not None
    assert point.kind is Kind.SWITCH
    assert point.writable
    assert states(events) == {"switch": True}
    assert any(isinstance(e, AvailabilityChanged) and e.availability.state is AvailabilityState.ONLINE for e in events)


def test_v4_attributes_after_ready_refine_the_device() -> None:
    events = feed(HomieAdapter(), dump("v4_bwa_spa_dump.txt"))
    dev = last_device(events).device
    assert dev.name == "BWA Spa"
    assert len(dev.points) == 15
    priming = dev.point("spa_priming")
    assert priming is not None
    assert priming.kind is Kind.OTHER
    assert priming.note == "Homie boolean property"
    assert states(events)["spa_heatingmode"] == "ready"


# -- commands ----------------------------------------------------------------------------

LIGHT = {
    "light": {
        "properties": {
            "power": {"datatype": "boolean", "settable": True},
            "brightness": {"datatype": "integer", "settable": True, "unit": "%", "format": "0:100"},
        }
    }
}


@pytest.mark.parametrize(
    ("values", "name"),
    [({"switch": True}, "v5_spec_set_power.json"), ({"light_brightness": 100}, "v5_spec_set_brightness.json")],
)
def test_encode_set_as_the_spec_shows(values: dict[str, Any], name: str) -> None:
    adapter = HomieAdapter()
    dev = last_device(feed(adapter, [description("homie/5/kitchen-light/$description", LIGHT)])).device
    (msg,) = adapter.encode(dev, values)
    fx = fixture(name)
    assert (msg.topic, msg.payload, msg.retain) == (fx["topic"], fx["payload_raw"].encode(), False)


def test_encode_v4() -> None:
    adapter = HomieAdapter()
    feed(adapter, [*dump("v4_microhomie_led_dump.txt"), Message("homie/2fe65700/$state", b"ready", retain=True)])
    dev = adapter._by_id["homie-2fe65700"].device
    assert dev is not None
    (msg,) = adapter.encode(dev, {"switch": False})
    assert (msg.topic, msg.payload) == ("homie/2fe65700/led/power/set", b"false")


@pytest.mark.parametrize(("values", "reason"), [({"temperature": 20}, "not_writable"), ({"switch": "on"}, "bad_value")])
def test_encode_refusals(values: dict[str, Any], reason: str) -> None:
    adapter = HomieAdapter()
    dev = last_device(feed(adapter, [message(n) for n in V5])).device
    with pytest.raises(Rejected) as exc:
        adapter.encode(dev, values)
    assert exc.value.reason == reason


# -- hostile input -----------------------------------------------------------------------

# Any JSON value: the hostile tests hand adapters values outside the Value type on purpose.
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
SEGMENTS = st.sampled_from(["homie", "5", "ebus", "dev", "$state", "$description", "$nodes", "$properties", "n", "p"])
TOPICS = [fixture(n)["topic"] for n in FILES] + [m.topic for d in DUMPS for m in dump(d)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topics=st.lists(
        st.sampled_from(TOPICS)
        | st.text(max_size=30)
        | st.lists(SEGMENTS | st.text(max_size=4), max_size=6).map("/".join),
        min_size=1,
        max_size=4,
    ),
    payload=st.binary(max_size=64)
    | st.sampled_from([b"[" * 5000, b"{" * 70 + b"}" * 70, b'{"nodes":{"a":', b"ready", b"true", b"\x00"])
    | JSON.map(lambda v: json.dumps(v).encode()),
    retain=st.booleans(),
)
def test_hostile_payloads_only_raise_rejected(topics: list[str], payload: bytes, retain: bool) -> None:
    adapter = HomieAdapter()
    feed(adapter, [message(n) for n in V5])
    for topic in topics:
        result = outcome(lambda t=topic: adapter.feed(Message(t, payload, retain=retain), NOW))  # type: ignore[misc]
        assert isinstance(result, list) or result.reason


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_wrong_types_in_every_description_field(data: st.DataObject) -> None:
    fx = fixture(
        data.draw(
            st.sampled_from(
                ["v5_node_homie_description.json", "v5_profiles_draft_motion_description_nonconformant.json"]
            )
        )
    )
    body = fx["payload"]
    path: list[str] = []
    node: Any = body
    while isinstance(node, dict) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node)))
        path.append(key)
        node = node[key]
    replaced = data.draw(JSON)

    def put(tree: Any, keys: list[str]) -> Any:
        return replaced if not keys else tree | {keys[0]: put(tree[keys[0]], keys[1:])}

    adapter = HomieAdapter()

    def run() -> None:
        events = adapter.feed(Message(fx["topic"], json.dumps(put(body, path)).encode(), retain=True), NOW)
        for event in events:
            if isinstance(event, DeviceDiscovered):
                for point in event.device.points:
                    base = fx["topic"].rsplit("/", 1)[0]
                    source = (point.source or "").removeprefix("homie:")
                    adapter.feed(Message(f"{base}/{source}", json.dumps(data.draw(JSON)).encode()), NOW)
                    adapter.encode(event.device, {point.key: data.draw(captures.VALUES)})

    result = outcome(run)
    assert result is None or result.reason
