"""Zigbee2MQTT adapter against the real captures in shared/fixtures/zigbee2mqtt."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.adapters.base import Rejected
from hub.adapters.zigbee2mqtt import Zigbee2MqttAdapter, coverage
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
from hub.wire import Message
from tests import captures

FIXTURES = captures.FIXTURES
Z2M = FIXTURES / "zigbee2mqtt"
NOW = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
SAMPLE = "bridge_devices_sample.json"


def fixture(name: str) -> dict[str, Any]:
    return captures.fixture("zigbee2mqtt", name)


def message(name: str, topic: str | None = None, retain: bool | None = None) -> Message:
    return captures.message("zigbee2mqtt", name, topic=topic, retain=retain)


def network() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = fixture("bridge_devices_real_network.json")["payload"]
    return devices


def adapter_with(devices: list[dict[str, Any]], base: str = "zigbee2mqtt") -> tuple[Zigbee2MqttAdapter, list[Event]]:
    a = Zigbee2MqttAdapter(base)
    events = a.feed(Message(f"{base}/bridge/devices", json.dumps(devices).encode(), retain=True), NOW)
    return a, events


def one_state(events: list[Event]) -> StateChanged:
    states = [e for e in events if isinstance(e, StateChanged)]
    assert len(states) == 1, events
    return states[0]


def wrap_exposes(exposes: list[Any], name: str = "test/device", ieee: str = "0x00124b0000000001") -> dict[str, Any]:
    """A bridge/devices entry around exposes taken verbatim from a docs fixture."""
    return {
        "ieee_address": ieee,
        "friendly_name": name,
        "type": "Router",
        "supported": True,
        "definition": {"model": "docs", "vendor": "docs", "exposes": exposes},
    }


# ------------------------------------------------------------------------------- every fixture


ALL = sorted(p.name for p in Z2M.glob("*.json") if p.name != SAMPLE)


@pytest.mark.parametrize("name", ALL)
def test_every_fixture_parses_or_is_rejected_with_a_reason(name: str) -> None:
    a, _ = adapter_with(network())
    fx = fixture(name)
    msg = message(name)
    if fx["payload_kind"] == "invalid_json":
        with pytest.raises(Rejected) as exc:
            a.feed(msg, NOW)
        assert exc.value.reason == "invalid_json"
        assert a.counters["invalid_json"] == 1
        return
    if name.startswith("docs_exposes_"):
        # Single exposes quoted from the docs arrive on bridge/devices but are not a list.
        with pytest.raises(Rejected) as refused:
            a.feed(msg, NOW)
        assert refused.value.reason == "not_a_list"
        return
    assert isinstance(a.feed(msg, NOW), list)


def test_discovery_of_the_real_network() -> None:
    a, events = adapter_with(network())
    found = {e.device.id: e.device for e in events if isinstance(e, DeviceDiscovered)}
    assert len(found) == 12  # 13 entries, the Coordinator skipped but counted
    assert a.counters["coordinator"] == 1
    window = found["z2m-0x00158d0001e1a85a"]
    assert window.name == "livingroom/window"
    assert window.identifiers == {"ieee": "0x00158d0001e1a85a"}
    assert window.via == "z2m-0x00124b0022813501"
    assert (window.manufacturer, window.model) == ("Xiaomi", "MCCGQ01LM")
    rows = {p.key: (p.kind, p.unit, p.writable, p.diagnostic) for p in window.points}
    assert rows == {
        "battery": (Kind.BATTERY, "%", False, False),
        "contact": (Kind.CONTACT, None, False, False),
        "voltage": (Kind.VOLTAGE, "V", False, False),
        "linkquality": (Kind.OTHER, "lqi", False, True),
    }
    hue = found["z2m-0x0017880104292f0a"].point("light")
    assert hue is not None
    assert (hue.kind, hue.writable) == (Kind.LIGHT, True)
    remote = found["z2m-0xbc33acfffe17628b"].point("action")
    assert remote is not None
    assert remote.kind is Kind.BUTTON
    assert remote.options == ("on", "off", "brightness_move_down", "brightness_move_up", "brightness_stop")
    switch = found["z2m-0x00124b001e73227f"].point("switch")
    assert switch is not None
    assert (switch.kind, switch.writable, switch.source) == (
        Kind.SWITCH,
        True,
        "zigbee2mqtt:state",
    )


# ------------------------------------------------------------------------------- state traps

STATE_CASES = [
    # fixture, device id, expected values (partial: only what the message carries)
    # contact: true means CLOSED in Z2M -> hub contact False (open = True); mV -> V
    (
        "state_xiaomi_contact_closed.json",
        "z2m-0x00158d0001e1a85a",
        {"contact": False, "voltage": 3.045, "battery": 100.0},
    ),
    # slash and space in the friendly name, contact false = open
    ("state_xiaomi_contact_open_space_in_name.json", "z2m-0x00158d0004261dc7", {"contact": True, "voltage": 3.035}),
    ("state_xiaomi_temp_humidity.json", "z2m-0x00158d0001fa4f2f", {"temperature": 25.84, "humidity": 65.59}),
    # three-level friendly name work/nur/jopa
    (
        "state_xiaomi_vibration_nested_friendly_name.json",
        "z2m-0x00158d0002c48958",
        {"vibration": True, "voltage": 3.015},
    ),
    # battery 0 on a dying sensor is a value, not a missing one
    ("state_aqara_temp_hum_pressure_battery0.json", "z2m-0x00158d0004866f11", {"battery": 0.0, "voltage": 2.815}),
    # brightness 99/254 -> 39 %, color_temp 454 mired -> 2203 K
    (
        "state_hue_light_on_color.json",
        "z2m-0x0017880104dfc05e",
        {"light": {"on": True, "brightness": 39.0, "color_temp": 2203}},
    ),
    ("state_sonoff_basiczbr3_switch.json", "z2m-0x00124b001e73227f", {"switch": True}),
    ("state_xiaomi_wxkg01lm_button_no_action.json", "z2m-0x00158d000224154d", {"battery": 100.0, "voltage": 3.042}),
]


@pytest.mark.parametrize(("name", "device", "expected"), STATE_CASES)
def test_state_normalization(name: str, device: str, expected: dict[str, Any]) -> None:
    a, _ = adapter_with(network())
    state = one_state(a.feed(message(name), NOW))
    assert state.device_id == device
    for key, value in expected.items():
        assert state.values[key] == value, key
    assert "last_seen" not in state.values
    assert not any(isinstance(v, float) and k == "contact" for k, v in state.values.items())


def test_state_kinds_and_units_field_by_field() -> None:
    a, _ = adapter_with(network())
    device = a.device("z2m-0x00158d0004866f11")
    assert device is not None
    rows = {p.key: (p.kind, p.unit, p.writable) for p in device.points}
    assert rows["temperature"] == (Kind.TEMPERATURE, "°C", False)
    assert rows["humidity"] == (Kind.HUMIDITY, "%", False)
    assert rows["pressure"] == (Kind.PRESSURE, "hPa", False)
    pressure = device.point("pressure")
    assert pressure is not None
    assert pressure.note is None


def test_last_seen_only_updates_availability_not_values() -> None:
    a, _ = adapter_with(network())
    events = a.feed(message("state_ikea_e1743_remote_last_seen_only.json"), NOW)
    assert len(events) == 1
    assert isinstance(events[0], AvailabilityChanged)
    assert events[0].device_id == "z2m-0xbc33acfffe17628b"
    assert events[0].availability.last_seen == datetime(2022, 4, 15, 16, 33, 53, tzinfo=timezone(timedelta(hours=8)))


def test_partial_light_update_merges_into_the_composite_value() -> None:
    a, _ = adapter_with(network())
    a.feed(message("state_hue_light_on_color.json"), NOW)
    state = one_state(a.feed(Message("zigbee2mqtt/hue_back_tv", b'{"brightness":254}'), NOW))
    assert state.values == {"light": {"on": True, "brightness": 100.0, "color_temp": 2203}}


def renamed(ieee: str, name: str) -> list[dict[str, Any]]:
    return [{**d, "friendly_name": name} if d["ieee_address"] == ieee else d for d in network()]


def test_action_is_an_event_and_never_replayed_from_retained() -> None:
    # The docs' FRIENDLY_NAME is a WXKG01LM button; give the captured one that name.
    a, _ = adapter_with(renamed("0x00158d000224154d", "FRIENDLY_NAME"))
    live = a.feed(message("docs_state_action_single.json", retain=False), NOW)
    assert live == [PointEvent(ts=NOW, device_id="z2m-0x00158d000224154d", key="action", value="single")]
    assert a.feed(message("docs_state_action_single.json", retain=True), NOW) == []
    # the same action twice in a row is two presses
    assert len(a.feed(message("docs_state_action_single.json", retain=False), NOW)) == 1
    assert a.feed(Message("zigbee2mqtt/FRIENDLY_NAME", b'{"action":""}'), NOW) == []


def test_occupancy_docs_state() -> None:
    devices = [*network(), wrap_exposes([fixture("docs_exposes_binary_occupancy.json")["payload"]], "FRIENDLY_NAME")]
    a, _ = adapter_with(devices)
    device = a.device("z2m-0x00124b0000000001")
    assert device is not None
    assert device.point("occupancy") is not None
    assert device.point("occupancy").kind is Kind.OCCUPANCY  # type: ignore[union-attr]
    assert one_state(a.feed(message("docs_state_occupancy.json"), NOW)).values == {"occupancy": True}


# ------------------------------------------------------------------------------- availability


def test_availability_both_payload_formats_case_insensitive() -> None:
    a, _ = adapter_with(network())
    (off,) = a.feed(message("availability_json_object.json"), NOW)  # {"state":"Offline"}
    assert isinstance(off, AvailabilityChanged)
    assert off.device_id == "z2m-0x0017880104292f0a"
    assert off.availability.state is AvailabilityState.OFFLINE
    assert off.availability.reason == "zigbee2mqtt availability: offline"
    (on,) = a.feed(message("availability_legacy_string.json"), NOW)  # plain "online"; name has a slash
    assert isinstance(on, AvailabilityChanged)
    assert on.device_id == "z2m-0x00158d0001e1a85a"
    assert (on.availability.state, on.availability.last_seen) == (AvailabilityState.ONLINE, NOW)
    assert a.feed(message("availability_legacy_string.json"), NOW) == []  # no change, no event


def test_bridge_offline_takes_every_device_offline_and_back() -> None:
    a, _ = adapter_with(network())
    a.feed(message("availability_legacy_string.json"), NOW)
    down = a.feed(Message("zigbee2mqtt/bridge/state", b"offline", retain=True), NOW)
    assert len(down) == 12
    assert all(isinstance(e, AvailabilityChanged) and e.availability.state is AvailabilityState.OFFLINE for e in down)
    assert all(
        e.availability.reason == "zigbee2mqtt bridge offline" for e in down if isinstance(e, AvailabilityChanged)
    )
    up = a.feed(message("bridge_state_json.json"), NOW)  # {"state":"online"}
    window = [e for e in up if isinstance(e, AvailabilityChanged) and e.device_id == "z2m-0x00158d0001e1a85a"]
    assert window[0].availability.state is AvailabilityState.ONLINE


def test_retained_state_before_bridge_devices_is_replayed() -> None:
    a = Zigbee2MqttAdapter()
    assert a.feed(message("state_xiaomi_contact_closed.json"), NOW) == []
    events = a.feed(Message("zigbee2mqtt/bridge/devices", json.dumps(network()).encode(), retain=True), NOW)
    assert one_state(events).values["contact"] is False


# ------------------------------------------------------------------------------- removal, names


def test_device_absent_from_new_list_is_removed_and_renames_remap_topics() -> None:
    a, _ = adapter_with(network())
    smaller = [d for d in renamed("0x00158d0001fa4f2f", "bedroom/th") if d["ieee_address"] != "0x00158d0001e1a85a"]
    events = a.feed(Message("zigbee2mqtt/bridge/devices", json.dumps(smaller).encode(), retain=True), NOW)
    removed = [e for e in events if isinstance(e, DeviceRemoved)]
    assert [(e.device_id, e.reason) for e in removed] == [
        ("z2m-0x00158d0001e1a85a", "absent from zigbee2mqtt bridge/devices")
    ]
    assert [e.device.name for e in events if isinstance(e, DeviceDiscovered)] == ["bedroom/th"]
    assert a.feed(message("state_xiaomi_contact_closed.json"), NOW) == []
    assert a.feed(message("state_xiaomi_temp_humidity.json"), NOW) == []
    moved = one_state(a.feed(message("state_xiaomi_temp_humidity.json", topic="zigbee2mqtt/bedroom/th"), NOW))
    assert moved.device_id == "z2m-0x00158d0001fa4f2f"


def test_device_leave_event_removes() -> None:
    joined = wrap_exposes([], "my_bulb", "0x90fd9ffffe6494fc")
    a, _ = adapter_with([*network(), joined])
    (ev,) = a.feed(message("docs_bridge_event_device_leave.json"), NOW)
    assert isinstance(ev, DeviceRemoved)
    assert ev.device_id == "z2m-0x90fd9ffffe6494fc"


def test_configurable_base_topic() -> None:
    a, events = adapter_with(network(), base="home/z2m")
    assert a.subscriptions() == ["home/z2m/#"]
    assert len([e for e in events if isinstance(e, DeviceDiscovered)]) == 12
    msg = message("state_xiaomi_contact_closed.json", topic="home/z2m/livingroom/window")
    assert one_state(a.feed(msg, NOW)).values["contact"] is False


# ------------------------------------------------------------------------------- the 403-device sample


def sample() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((Z2M / SAMPLE).read_text(encoding="utf-8"))
    return data


def test_every_sample_device_normalizes() -> None:
    devices = sample()
    a, events = adapter_with(devices)
    discovered = [e for e in events if isinstance(e, DeviceDiscovered)]
    with_definition = [d for d in devices if d.get("definition")]
    assert len(discovered) == len(with_definition) == 401
    assert a.counters["coordinator"] == 1
    assert a.counters["no_definition"] == 1
    assert a.counters["bad_device"] == 0


def test_sample_coverage() -> None:
    report = coverage(sample())
    print(
        f"\nzigbee2mqtt coverage: {report['mapped']}/{report['considered']} = {report['ratio']:.1%} "
        f"of non-diagnostic points map to a kind ({report['diagnostic']} diagnostic/setting points excluded)"
    )
    print("top other:", report["top_other"][:10])
    assert (report["devices"], report["skipped"], report["rejected"]) == (401, 2, 0)
    # The issue's target: README (adapters) says, group by group, what is diagnostic and why.
    assert report["ratio"] >= 0.95
    assert report["other"] <= 80


def test_endpoint_suffixes_become_distinct_points_and_commands() -> None:
    a, _ = adapter_with(sample())
    device = a.device("z2m-0x7b823a75a465c0e4")  # 'Garage wall switch 2', WP33-EU, endpoints l1..l5
    assert device is not None
    keys = [p.key for p in device.points if p.kind is Kind.SWITCH]
    assert keys == ["switch_l1", "switch_l2", "switch_l3", "switch_l4", "switch_l5"]
    state = one_state(a.feed(Message("zigbee2mqtt/Garage wall switch 2", b'{"state_l2":"OFF"}'), NOW))
    assert state.values == {"switch_l2": False}
    (cmd,) = a.encode(device, {"switch_l2": True})
    assert (cmd.topic, json.loads(cmd.payload)) == ("zigbee2mqtt/Garage wall switch 2/set", {"state_l2": "ON"})


def test_sos_button_action_is_routed_to_the_sos_point() -> None:
    a, _ = adapter_with(sample())
    device = a.device("z2m-0xa4c13800c42a5025")  # TS0215A_sos
    assert device is not None
    assert device.point("sos") is not None
    assert device.point("sos").kind is Kind.SOS  # type: ignore[union-attr]
    (ev,) = a.feed(Message("zigbee2mqtt/Kids Room sos button", b'{"action":"emergency"}'), NOW)
    assert isinstance(ev, PointEvent)
    assert (ev.key, ev.value) == ("sos", "emergency")
    binary = a.device("z2m-0x9878621ff05ef81c")  # SEB01ZB: a binary `sos` expose
    assert binary is not None
    assert binary.point("sos").kind is Kind.SOS  # type: ignore[union-attr]
    (ev2,) = a.feed(Message("zigbee2mqtt/Kids Room sos button 2", b'{"sos":true}'), NOW)
    assert isinstance(ev2, PointEvent)
    assert (ev2.key, ev2.value) == ("sos", True)
    assert a.feed(Message("zigbee2mqtt/Kids Room sos button 2", b'{"sos":true}', retain=True), NOW) == []


# ------------------------------------------------------------------------------- encode


def test_encode_switch_matches_the_documented_command() -> None:
    a, _ = adapter_with(renamed("0x00124b001e73227f", "0x0fffffffffffffff"))
    device = a.device("z2m-0x00124b001e73227f")
    assert device is not None
    (cmd,) = a.encode(device, {"switch": True})
    documented = fixture("docs_set_state_on.json")
    assert cmd.topic == documented["topic"]
    assert json.loads(cmd.payload) == documented["payload"] == {"state": "ON"}


def test_encode_light_converts_back_to_native_units() -> None:
    a, _ = adapter_with(network())
    device = a.device("z2m-0x0017880104dfc05e")
    assert device is not None
    (cmd,) = a.encode(device, {"light": {"on": True, "brightness": 50, "color_temp": 2703}})
    assert cmd.topic == "zigbee2mqtt/hue_back_tv/set"
    assert json.loads(cmd.payload) == {"state": "ON", "brightness": 127, "color_temp": 370}


def test_encode_cover_from_the_docs_exposes() -> None:
    cover = fixture("docs_exposes_cover.json")["payload"]
    a, _ = adapter_with([wrap_exposes([cover], "bedroom/blind")])
    device = a.device("z2m-0x00124b0000000001")
    assert device is not None
    point = device.point("cover")
    assert point is not None
    assert (point.kind, point.unit, point.writable) == (Kind.COVER, "%", True)
    (cmd,) = a.encode(device, {"cover": {"position": 50}})
    assert (cmd.topic, json.loads(cmd.payload)) == ("zigbee2mqtt/bedroom/blind/set", {"position": 50})
    state = one_state(a.feed(Message("zigbee2mqtt/bedroom/blind", b'{"position":30,"state":"OPEN"}'), NOW))
    assert state.values == {"cover": {"position": 30.0, "state": "open"}}


def test_encode_refuses_read_only_and_unknown() -> None:
    a, _ = adapter_with(network())
    device = a.device("z2m-0x00158d0001e1a85a")
    assert device is not None
    with pytest.raises(Rejected) as exc:
        a.encode(device, {"contact": True})
    assert exc.value.reason == "not_writable"
    light = a.device("z2m-0x0017880104dfc05e")
    assert light is not None
    with pytest.raises(Rejected) as bad:
        a.encode(light, {"light": "bright"})
    assert bad.value.reason == "bad_value"


# ------------------------------------------------------------------------------- hostile input

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
EXPOSE_KEYS = ["type", "name", "property", "access", "unit", "value_on", "value_off", "values", "features", "endpoint"]
expose = st.dictionaries(st.sampled_from(EXPOSE_KEYS), json_values, max_size=8)
entry = st.fixed_dictionaries(
    {
        "ieee_address": st.sampled_from(["0x00158d0001e1a85a", "0xzz", "", "0x0017880104292f0a"]) | json_values,
        "friendly_name": st.text(max_size=12) | json_values,
        "type": st.sampled_from(["Router", "Coordinator", "EndDevice"]) | json_values,
        "definition": st.none() | st.fixed_dictionaries({"exposes": st.lists(expose, max_size=4) | json_values}),
    }
)
TOPICS = [
    "zigbee2mqtt/bridge/devices",
    "zigbee2mqtt/bridge/state",
    "zigbee2mqtt/bridge/event",
    "zigbee2mqtt/livingroom/window",
    "zigbee2mqtt/livingroom/window/availability",
    "zigbee2mqtt/hue_back_tv",
]


def _feed_safely(a: Zigbee2MqttAdapter, msg: Message) -> None:
    with contextlib.suppress(Rejected):
        a.feed(msg, NOW)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=200), retain=st.booleans())
def test_random_bytes_only_rejected(topic: str, payload: bytes, retain: bool) -> None:
    a, _ = adapter_with(network())
    _feed_safely(a, Message(topic, payload, retain))


@settings(max_examples=150, deadline=None)
@given(topic=st.sampled_from(TOPICS), data=json_values, cut=st.integers(0, 50))
def test_wrong_types_and_truncated_json_only_rejected(topic: str, data: Any, cut: int) -> None:
    a, _ = adapter_with(network())
    raw = json.dumps(data).encode()
    _feed_safely(a, Message(topic, raw))
    _feed_safely(a, Message(topic, raw[: len(raw) - cut]))


@settings(max_examples=120, deadline=None)
@given(entries=st.lists(entry, max_size=4))
def test_hostile_bridge_devices_only_rejected(entries: list[dict[str, Any]]) -> None:
    a, _ = adapter_with(network())
    _feed_safely(a, Message("zigbee2mqtt/bridge/devices", json.dumps(entries).encode()))
    _feed_safely(a, Message("zigbee2mqtt/livingroom/window", b'{"contact":true,"battery":1e999}'))


@settings(max_examples=80, deadline=None)
@given(topic=st.text(min_size=1, max_size=30), payload=st.binary(max_size=40))
def test_unicode_topics(topic: str, payload: bytes) -> None:
    a, _ = adapter_with(network())
    _feed_safely(a, Message(f"zigbee2mqtt/{topic}", payload))


def test_deeply_nested_json_is_refused() -> None:
    a, _ = adapter_with(network())
    with pytest.raises(Rejected) as exc:
        a.feed(Message("zigbee2mqtt/livingroom/window", b"[" * 10_000 + b"]" * 10_000), NOW)
    assert exc.value.reason == "too_deep"
    # an integer beyond float range would overflow float(): it is dropped, the rest still counts
    huge = b'{"voltage": 1' + b"0" * 400 + b', "battery": 90}'
    assert one_state(a.feed(Message("zigbee2mqtt/livingroom/window", huge), NOW)).values == {"battery": 90.0}
