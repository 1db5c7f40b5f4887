"""The Shelly adapter (Gen2+ RPC over MQTT, Gen1 `shellies/`) against the real captures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.adapters.base import Rejected
from hub.adapters.shelly import ShellyAdapter
from hub.model import (
    AvailabilityChanged,
    AvailabilityState,
    DeviceDiscovered,
    Event,
    Kind,
    PointEvent,
    StateChanged,
)
from hub.wire import Message, topic_matches
from tests import captures
from tests.captures import outcome

# CI checks the project out with shared/ beside it (/work/main and /work/shared here).
FIXTURES = captures.FIXTURES / "shelly"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FILES = sorted(p.name for p in FIXTURES.glob("*.json"))
PLUS1PM = "shelly-shellyplus1pm-4417939341dc"


def fixture(name: str) -> dict[str, Any]:
    return captures.fixture("shelly", name)


def message(name: str, *, retain: bool | None = None) -> Message:
    return captures.message("shelly", name, retain=retain)


def feed(adapter: ShellyAdapter, *names: str) -> list[Event]:
    out: list[Event] = []
    for name in names:
        out += adapter.feed(message(name), NOW)
    return out


def states(events: list[Event]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in events:
        if isinstance(e, StateChanged):
            out |= e.values
    return out


def last_device(events: list[Event]) -> DeviceDiscovered:
    return [e for e in events if isinstance(e, DeviceDiscovered)][-1]


@pytest.mark.parametrize("name", FILES)
def test_every_fixture_parses_or_is_rejected_with_a_reason(name: str) -> None:
    fx = fixture(name)
    # The error reply is addressed to the src its requester chose.
    adapter = ShellyAdapter(src="NCELRND1279_shellyplus1-08b61fd9333c")
    events = outcome(lambda: adapter.feed(message(name), NOW))
    if isinstance(events, Rejected):
        assert events.reason
        assert adapter.counters[events.reason] == 1
        assert name == "gen2_rpc_error_response_reserialized.json"
        return
    assert isinstance(events, list)
    if fx["direction"] == "device->hub":
        matching = [f for f in adapter.subscriptions() if topic_matches(f, fx["topic"])]
        # Exactly one filter: the MQTT link would hand a message matching two filters over twice.
        assert len(matching) == 1, (fx["topic"], matching)


# (fixtures fed in order, expected values of the last one's StateChanged events)
STATE_CASES = [
    # Only what changed, as it is: the registry overlays it on the last known status.
    (["gen2_plus1pm_notifystatus_output_on_ws_in.json"], {"switch": True}),
    (["gen2_plus1pm_notifystatus_partial_voltage.json"], {"voltage": 232.7}),
    # Gen2 aenergy.total is Wh -> kWh; the custom prefix PLATZ says nothing about the device.
    (
        ["gen4_1pm_notifystatus_energy_custom_prefix.json"],
        {
            "energy": 1.885832,
            "power": 0.0,
            "current": 0.0,
            "voltage": 232.0,
            "energy_returned": 0.0,
            "frequency": 50.03,
        },
    ),
    (
        ["gen2_plusht_notifyfullstatus_battery.json"],
        {
            "temperature": 19.9,
            "humidity": 54.3,
            "battery": 100.0,
            "battery_voltage": 6.17,
            "rssi": -70.0,
            "uptime": 1.0,
        },
    ),
    # Gen1 energy is in watt-minutes.
    (["gen1_plug_s_energy_watt_minutes.json"], {"energy": 94736 / 60000}),
    (["gen1_plug_s_power.json"], {"power": 20.58}),
    (["gen1_shelly1_relay0_on.json"], {"switch": True}),
    (["gen1_shelly1_input0.json"], {"input_0": False}),
    (["gen1_shelly3em_custom_id_with_slash_announce.json", "gen1_shelly3em_emeter0_power.json"], {"power": 0.0}),
]


@pytest.mark.parametrize(("names", "expected"), STATE_CASES)
def test_state_values(names: list[str], expected: dict[str, Any]) -> None:
    adapter = ShellyAdapter()
    feed(adapter, *names[:-1])
    events = adapter.feed(message(names[-1]), NOW)
    values = states(events)
    assert set(values) == set(expected)
    for key, value in expected.items():
        assert values[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert all(e.ts == NOW for e in events)


# (fixture, point key, kind, unit, writable, diagnostic)
POINT_CASES = [
    ("gen2_plus1pm_notifystatus_output_on_ws_in.json", "switch", Kind.SWITCH, None, True, False),
    ("gen4_1pm_notifystatus_energy_custom_prefix.json", "energy", Kind.ENERGY, "kWh", False, False),
    ("gen4_1pm_notifystatus_energy_custom_prefix.json", "power", Kind.POWER, "W", False, False),
    ("gen4_1pm_notifystatus_energy_custom_prefix.json", "frequency", Kind.OTHER, "Hz", False, False),
    ("gen2_plusht_notifyfullstatus_battery.json", "temperature", Kind.TEMPERATURE, "°C", False, False),
    ("gen2_plusht_notifyfullstatus_battery.json", "humidity", Kind.HUMIDITY, "%", False, False),
    ("gen2_plusht_notifyfullstatus_battery.json", "battery", Kind.BATTERY, "%", False, False),
    ("gen2_plusht_notifyfullstatus_battery.json", "rssi", Kind.OTHER, "dBm", False, True),
    ("gen1_plug_s_energy_watt_minutes.json", "energy", Kind.ENERGY, "kWh", False, False),
    ("gen1_shelly1_relay0_on.json", "switch", Kind.SWITCH, None, True, False),
]


@pytest.mark.parametrize(("name", "key", "kind", "unit", "writable", "diagnostic"), POINT_CASES)
def test_points(name: str, key: str, kind: Kind, unit: str | None, writable: bool, diagnostic: bool) -> None:
    events = ShellyAdapter().feed(message(name), NOW)
    assert isinstance(events[0], DeviceDiscovered)
    point = events[0].device.point(key)
    assert point is not None
    assert (point.kind, point.unit, point.writable, point.diagnostic) == (kind, unit, writable, diagnostic)
    assert point.source
    assert point.source.startswith("shelly")


def test_device_learned_from_src_not_from_the_prefix() -> None:
    events = ShellyAdapter().feed(message("gen4_1pm_notifystatus_energy_custom_prefix.json"), NOW)
    dev = events[0].device  # type: ignore[union-attr]
    assert dev.id == "shelly-shelly1pmg4-7c2c67667790"
    assert dev.identifiers == {"shelly_id": "shelly1pmg4-7c2c67667790", "mac": "7C2C67667790"}
    # A meter without a relay field declares no switch point.
    assert dev.point("switch") is None


def test_retained_online_and_status_wait_for_the_first_frame() -> None:
    adapter = ShellyAdapter()
    assert feed(adapter, "gen2_plus1pm_online_true.json", "gen2_plus1pm_status_switch0_full.json") == []
    events = adapter.feed(message("gen2_plus1pm_notifystatus_partial_voltage.json"), NOW)
    assert isinstance(events[0], DeviceDiscovered)
    assert events[0].device.id == PLUS1PM
    avail = [e for e in events if isinstance(e, AvailabilityChanged)]
    assert len(avail) == 1
    assert avail[0].availability.state is AvailabilityState.ONLINE
    values = states(events)
    assert values["switch"] is False
    assert values["energy"] == 0.0
    assert values["voltage"] == 232.7
    assert values["device_temperature"] == 39.2
    chip = events[0].device.point("device_temperature")
    assert chip is not None
    assert chip.diagnostic


@pytest.mark.parametrize(
    ("payload", "state"), [(b"true", AvailabilityState.ONLINE), (b"false", AvailabilityState.OFFLINE)]
)
def test_availability(payload: bytes, state: AvailabilityState) -> None:
    adapter = ShellyAdapter()
    feed(adapter, "gen4_1pm_notifystatus_energy_custom_prefix.json")
    (event,) = adapter.feed(Message("PLATZ/online", payload, retain=True), NOW)
    assert isinstance(event, AvailabilityChanged)
    assert event.device_id == "shelly-shelly1pmg4-7c2c67667790"
    assert event.availability.state is state
    assert event.availability.reason == f"shelly online {payload.decode()}"


def test_availability_text_is_exact() -> None:
    adapter = ShellyAdapter()
    feed(adapter, "gen4_1pm_notifystatus_energy_custom_prefix.json")
    with pytest.raises(Rejected) as exc:
        adapter.feed(Message("PLATZ/online", b"Online", retain=True), NOW)
    assert exc.value.reason == "bad_availability"


def test_gen1_availability() -> None:
    adapter = ShellyAdapter()
    (event,) = feed(adapter, "gen1_shelly1_relay0_on.json", "gen1_shelly1_online_false.json")[-1:]
    assert isinstance(event, AvailabilityChanged)
    assert event.availability.state is AvailabilityState.OFFLINE
    assert event.device_id == "shelly-shelly1"


def test_uptime_ts_is_not_a_timestamp() -> None:
    # ts 1.61 is seconds since boot: the event carries the hub's receive time instead.
    events = ShellyAdapter().feed(message("gen2_plus1pm_notifystatus_mqtt_connected_ts_uptime.json"), NOW)
    assert [type(e) for e in events] == [DeviceDiscovered]
    assert events[0].ts == NOW


def test_notify_event_is_a_press_never_state() -> None:
    adapter = ShellyAdapter()
    events = adapter.feed(message("gen2_plus1_notifyevent_input_double_push.json"), NOW)
    assert not any(isinstance(e, StateChanged) for e in events)
    press = events[-1]
    assert isinstance(press, PointEvent)
    assert (press.device_id, press.key, press.value) == ("shelly-shellyplus1-a8032abc7158", "button_0", "double")
    button = last_device(events).device.point("button_0")
    assert button is not None
    assert button.kind is Kind.BUTTON
    # The same frame again (a QoS 1 duplicate) is not a second press.
    assert adapter.feed(message("gen2_plus1_notifyevent_input_double_push.json"), NOW) == []
    assert adapter.counters["duplicate_event"] == 1


def test_retained_notify_event_is_refused() -> None:
    adapter = ShellyAdapter()
    with pytest.raises(Rejected) as exc:
        adapter.feed(message("gen2_plus1_notifyevent_input_double_push.json", retain=True), NOW)
    assert exc.value.reason == "retained_event"
    assert adapter.counters["retained_event"] == 1


def test_system_events_are_not_presses() -> None:
    adapter = ShellyAdapter()
    events = adapter.feed(message("gen3_mini_notifyevent_config_changed.json"), NOW)
    assert not any(isinstance(e, PointEvent | StateChanged) for e in events)
    assert adapter.counters["ignored_event"] == 1


def test_gen1_input_event_at_boot_is_not_a_press() -> None:
    events = ShellyAdapter().feed(message("gen1_shelly1_input_event0.json"), NOW)
    assert not any(isinstance(e, PointEvent) for e in events)
    press = Message("shellies/shelly1/input_event/0", b'{"event":"L","event_cnt":3}')
    adapter = ShellyAdapter()
    (*_, event) = adapter.feed(press, NOW)
    assert isinstance(event, PointEvent)
    assert (event.key, event.value) == ("button_0", "long")


def test_gen1_id_with_a_slash() -> None:
    events = feed(
        ShellyAdapter(), "gen1_shelly3em_custom_id_with_slash_announce.json", "gen1_shelly3em_emeter0_power.json"
    )
    dev = last_device(events).device
    assert dev.id == "shelly-shellies-shellyem3"
    assert dev.identifiers == {"shelly_id": "shellies/shellyem3", "mac": "244CAB4354E2"}
    assert dev.model == "SHEM-3"


def test_rpc_error_reply_is_rejected_clearly() -> None:
    adapter = ShellyAdapter(src="NCELRND1279_shellyplus1-08b61fd9333c")
    with pytest.raises(Rejected) as exc:
        adapter.feed(message("gen2_rpc_error_response_reserialized.json"), NOW)
    assert exc.value.reason == "rpc_error"
    assert "shutting down in 952 ms" in exc.value.detail
    assert "-109" in exc.value.detail
    assert adapter.counters["rpc_error"] == 1
    assert adapter.feed(Message("NCELRND1279_shellyplus1-08b61fd9333c/rpc", b'{"id":2,"result":{}}'), NOW) == []


# -- commands ------------------------------------------------------------------------------


def test_encode_switch_set_as_the_gist_shows() -> None:
    adapter = ShellyAdapter(src="homeassistant")
    dev = last_device(feed(adapter, "gen2_plus1pm_notifystatus_output_on_ws_in.json")).device
    (msg,) = adapter.encode(dev, {"switch": True})
    request = fixture("gen2_rpc_request_switch_set.json")
    assert msg.topic == request["topic"].replace("shellyplus1-<ID>", "shellies/plus1pm")
    assert json.loads(msg.payload) == request["payload"]
    assert not msg.retain
    # Each request has its own id, so replies can be matched.
    (again,) = adapter.encode(dev, {"switch": False})
    assert json.loads(again.payload) == {
        "id": 2,
        "src": "homeassistant",
        "method": "Switch.Set",
        "params": {"id": 0, "on": False},
    }


def test_encode_gen1_relay() -> None:
    adapter = ShellyAdapter()
    dev = last_device(feed(adapter, "gen1_shelly1_relay0_on.json")).device
    (msg,) = adapter.encode(dev, {"switch": False})
    assert (msg.topic, msg.payload) == ("shellies/shelly1/relay/0/command", b"off")


@pytest.mark.parametrize(("values", "reason"), [({"voltage": 1.0}, "not_writable"), ({"switch": 1}, "bad_value")])
def test_encode_refusals(values: dict[str, Any], reason: str) -> None:
    adapter = ShellyAdapter()
    dev = last_device(
        feed(adapter, "gen2_plus1pm_status_switch0_full.json", "gen2_plus1pm_notifystatus_partial_voltage.json")
    ).device
    with pytest.raises(Rejected) as exc:
        adapter.encode(dev, values)
    assert exc.value.reason == reason


# -- hostile input -------------------------------------------------------------------------

# Any JSON value: the hostile tests hand adapters values outside the Value type on purpose.
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
TOPICS = [fixture(n)["topic"] for n in FILES] + ["hub-rpc/rpc", "a/b/c/status/switch:0", "shellies/x/y/relay/0/energy"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topics=st.lists(st.sampled_from(TOPICS) | st.text(max_size=40), min_size=1, max_size=3),
    payload=st.binary(max_size=64)
    | st.sampled_from([b"[" * 5000, b"{" * 70 + b"}" * 70, b'{"src":"x","method":"NotifyStatus","params":{'])
    | JSON.map(lambda v: json.dumps(v).encode()),
    retain=st.booleans(),
)
def test_hostile_payloads_only_raise_rejected(topics: list[str], payload: bytes, retain: bool) -> None:
    adapter = ShellyAdapter()
    for topic in topics:
        result = outcome(lambda t=topic: adapter.feed(Message(t, payload, retain=retain), NOW))  # type: ignore[misc]
        assert isinstance(result, list) or result.reason


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_wrong_types_in_every_field(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from([n for n in FILES if fixture(n)["payload_kind"] == "json"]))
    fx = fixture(name)
    payload = fx["payload"]
    key = data.draw(st.sampled_from(sorted(payload)))
    inner = payload[key]
    if isinstance(inner, dict) and inner and data.draw(st.booleans()):
        sub = data.draw(st.sampled_from(sorted(inner)))
        payload = payload | {key: inner | {sub: data.draw(JSON)}}
    else:
        payload = payload | {key: data.draw(JSON)}
    adapter = ShellyAdapter()

    def run() -> None:
        events = adapter.feed(Message(fx["topic"], json.dumps(payload).encode()), NOW)
        for event in events:
            if isinstance(event, DeviceDiscovered):
                adapter.encode(event.device, {p.key: data.draw(captures.VALUES) for p in event.device.points[:2]})

    result = outcome(run)
    assert result is None or result.reason
