"""The Tasmota adapter against the real captures in shared/fixtures/tasmota."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.adapters.base import Rejected
from hub.adapters.tasmota import TasmotaAdapter
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
FIXTURES = captures.FIXTURES / "tasmota"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FILES = sorted(p.name for p in FIXTURES.glob("*.json"))


def fixture(name: str) -> dict[str, Any]:
    return captures.fixture("tasmota", name)


def message(name: str, *, retain: bool | None = None) -> Message:
    return captures.message("tasmota", name, retain=retain)


def config(base: str, **changes: Any) -> Message:
    """A real discovery config with the fields a test needs changed (topic, relays, buttons)."""
    cfg = fixture(base)["payload"] | changes
    return Message(f"tasmota/discovery/{cfg['mac']}/config", json.dumps(cfg).encode(), retain=True)


def states(events: list[Event]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in events:
        if isinstance(e, StateChanged):
            out |= e.values
    return out


def discovered(events: list[Event]) -> DeviceDiscovered:
    return next(e for e in events if isinstance(e, DeviceDiscovered))


# Devices of the state captures, described by a real config with the capture's topic.
BASIC = "discovery_config_sonoff_basic_9_4_topic_prefix_order.json"  # ft %topic%/%prefix%/
FOUR = "discovery_config_4ch_relay_10_0.json"  # ft %prefix%/%topic%/
DERIVED = {
    "chambre2nd": config(BASIC, t="chambre2nd", mac="A4CF12B3C4D5"),
    "compteur": config(BASIC, t="compteur", mac="A4CF12B3C4D6"),
    "GD-30W": config(FOUR, t="GD-30W", mac="A4CF12B3C4D7", rl=[1, 1, 1, 1, 2, 0, 0, 0], lt_st=1),
    "tasmota_49A3BC": config(BASIC, t="tasmota_49A3BC", mac="A4CF12B3C4D8", btn=[1, 0, 0, 0, 0, 0, 0, 0]),
    "tasmota_17A5A0": config(FOUR, t="tasmota_17A5A0", mac="A4CF12B3C4D9"),
    "rfid-test": config(FOUR, t="rfid-test", mac="A4CF12B3C4DA"),
    "tasmota": config(FOUR, t="tasmota", mac="A4CF12B3C4DB", rl=[1, 0, 0, 0, 0, 0, 0, 0]),
}


def primed() -> TasmotaAdapter:
    adapter = TasmotaAdapter()
    for name in FILES:
        if "discovery_config" in name:
            adapter.feed(message(name), NOW)
    for msg in DERIVED.values():
        adapter.feed(msg, NOW)
    return adapter


@pytest.mark.parametrize("name", FILES)
def test_every_fixture_parses_or_is_rejected_with_a_reason(name: str) -> None:
    adapter = primed()
    events = outcome(lambda: adapter.feed(message(name), NOW))
    if isinstance(events, Rejected):
        assert events.reason
        assert adapter.counters[events.reason] == 1
        return
    assert isinstance(events, list)
    topic = fixture(name)["topic"]
    assert any(topic_matches(f, topic) for f in adapter.subscriptions()), topic
    # Every state capture is for a device the test described, so each yields something.
    assert events or "tuyareceived" in name


# (fixture, device id, expected values). Values are canonical (kWh, W, °C) and partial.
STATE_CASES = [
    # %topic%/%prefix%/ order: the state is on chambre2nd/tele/STATE.
    (
        "tele_state_custom_fulltopic_pilotwire.json",
        "tasmota-A4CF12B3C4D5",
        {"switch": False, "rssi": 54.0, "signal": -73.0, "uptime": 83412.0},
    ),
    ("tele_state_adc_vcc_docs.json", "tasmota-A4CF12B3C4DB", {"switch": False, "rssi": 100.0}),
    (
        "tele_sensor_pilotwire_ds18b20.json",
        "tasmota-A4CF12B3C4D5",
        {"temperature": 16.9, "temperature_pilotwire": 16.9},
    ),
    # Tasmota ENERGY.Total is already kWh: no conversion.
    (
        "tele_sensor_teleinfo_energy_custom_fulltopic.json",
        "tasmota-A4CF12B3C4D6",
        {"energy": 7970.903, "energy_today": 6.024, "energy_yesterday": 3.198, "power": 860.0, "current": 4.0},
    ),
    (
        "stat_state_tuyamcu_5_relays_dimmer.json",
        "tasmota-A4CF12B3C4D7",
        {
            "switch_1": True,
            "switch_2": False,
            "switch_3": True,
            "switch_4": False,
            "light": {"on": True, "brightness": 100.0},
        },
    ),
    ("stat_power1_plain.json", "tasmota-A4CF12B3C4D7", {"switch_1": True}),
    ("stat_result_power1.json", "tasmota-A4CF12B3C4D7", {"switch_1": True}),
    ("tele_sensor_esp32_temperature_docs.json", "tasmota-A4CF12B3C4D9", {"temperature_esp32": 41.7}),
    ("tele_sensor_rc522_rfid_docs.json", "tasmota-A4CF12B3C4DA", {"rc522_uid": "BA839D07"}),
]


@pytest.mark.parametrize(("name", "dev_id", "expected"), STATE_CASES)
def test_state_values(name: str, dev_id: str, expected: dict[str, Any]) -> None:
    events = primed().feed(message(name), NOW)
    changed = [e for e in events if isinstance(e, StateChanged)]
    assert changed
    assert all(e.device_id == dev_id and e.ts == NOW for e in changed)
    values = states(events)
    for key, value in expected.items():
        assert values[key] == (pytest.approx(value) if isinstance(value, float) else value), key


# (fixture, point key, kind, unit, writable, diagnostic)
POINT_CASES = [
    ("tele_sensor_teleinfo_energy_custom_fulltopic.json", "energy", Kind.ENERGY, "kWh", False, False),
    ("tele_sensor_teleinfo_energy_custom_fulltopic.json", "power", Kind.POWER, "W", False, False),
    ("tele_sensor_teleinfo_energy_custom_fulltopic.json", "current", Kind.CURRENT, "A", False, False),
    ("tele_sensor_pilotwire_ds18b20.json", "temperature", Kind.TEMPERATURE, "°C", False, False),
    ("tele_sensor_pilotwire_ds18b20.json", "pilotwire_target", Kind.OTHER, None, False, False),
    # The ESP32 chip temperature is a diagnostic, never the room's temperature.
    ("tele_sensor_esp32_temperature_docs.json", "temperature_esp32", Kind.TEMPERATURE, "°C", False, True),
]


@pytest.mark.parametrize(("name", "key", "kind", "unit", "writable", "diagnostic"), POINT_CASES)
def test_points_learned_from_telemetry(
    name: str, key: str, kind: Kind, unit: str | None, writable: bool, diagnostic: bool
) -> None:
    adapter = primed()
    events = adapter.feed(message(name), NOW)
    assert isinstance(events[0], DeviceDiscovered), "new points are announced before their values"
    point = events[0].device.point(key)
    assert point is not None
    assert (point.kind, point.unit, point.writable, point.diagnostic) == (kind, unit, writable, diagnostic)
    if kind is Kind.OTHER:
        assert point.note
        assert adapter.counters["other_point"] >= 1
    # The second report of the same payload learns nothing new.
    assert not any(isinstance(e, DeviceDiscovered) for e in adapter.feed(message(name), NOW))


def test_discovery_of_a_four_relay_board() -> None:
    (event,) = TasmotaAdapter().feed(message(FOUR), NOW)
    assert isinstance(event, DeviceDiscovered)
    dev = event.device
    assert dev.id == "tasmota-84CCA8852612"
    assert dev.identifiers == {"mac": "84CCA8852612"}
    assert (dev.model, dev.firmware) == ("4CH Relay", "10.0.0")
    switches = [p for p in dev.points if p.kind is Kind.SWITCH]
    assert [p.key for p in switches] == ["switch_1", "switch_2", "switch_3", "switch_4"]
    # Empty friendly names fall back to "<dn> <n>".
    assert [p.name for p in switches] == ["Tasmota", "Tasmota 2", "Tasmota 3", "Tasmota 4"]
    assert all(p.writable and p.unit is None for p in switches)


def test_arrays_of_different_lengths_and_unicode_names() -> None:
    (event,) = TasmotaAdapter().feed(message("discovery_config_nous_a1t_13_1_bat_dslp.json"), NOW)
    assert isinstance(event, DeviceDiscovered)
    switch = event.device.point("switch")
    assert switch is not None
    assert switch.name == "Geschirrspüler"
    assert event.device.point("switch_1") is None


def test_sensors_snapshot_declares_points_without_stale_values() -> None:
    adapter = TasmotaAdapter()
    adapter.feed(message("discovery_config_nspanel_12_2.json"), NOW)
    events = adapter.feed(message("discovery_sensors_nspanel_analog_esp32.json"), NOW)
    assert [type(e) for e in events] == [DeviceDiscovered]
    dev = discovered(events).device
    room, chip = dev.point("temperature"), dev.point("temperature_esp32")
    assert room is not None
    assert room.kind is Kind.TEMPERATURE
    assert room.unit == "°C"
    assert not room.diagnostic
    assert room.source == "tasmota:ANALOG.Temperature1"
    assert chip is not None
    assert chip.diagnostic


def test_reversed_full_topic_and_lwt() -> None:
    adapter = TasmotaAdapter()
    adapter.feed(message(BASIC), NOW)
    (online,) = adapter.feed(Message("tasmota_0848A2/tele/LWT", b"Online", retain=True), NOW)
    assert isinstance(online, AvailabilityChanged)
    assert online.availability.state is AvailabilityState.ONLINE
    assert online.availability.reason
    (offline,) = adapter.feed(Message("tasmota_0848A2/tele/LWT", b"Offline", retain=True), NOW)
    assert isinstance(offline, AvailabilityChanged)
    assert offline.availability.state is AvailabilityState.OFFLINE
    # The LWT texts are compared as the device configured them: `offline` is not `Offline`.
    with pytest.raises(Rejected) as exc:
        adapter.feed(Message("tasmota_0848A2/tele/LWT", b"offline", retain=True), NOW)
    assert exc.value.reason == "bad_availability"
    assert adapter.counters["bad_availability"] == 1
    # The default order would be tele/tasmota_0848A2/...: that is some other device.
    assert adapter.feed(Message("tele/tasmota_0848A2/LWT", b"Online", retain=True), NOW) == []


def test_retained_lwt_before_the_config_is_replayed() -> None:
    adapter = TasmotaAdapter()
    assert adapter.feed(Message("tasmota_0848A2/tele/LWT", b"Online", retain=True), NOW) == []
    events = adapter.feed(message(BASIC), NOW)
    assert [type(e) for e in events] == [DeviceDiscovered, AvailabilityChanged]


def test_custom_full_topic_is_subscribed_once_discovered() -> None:
    adapter = TasmotaAdapter()
    adapter.feed(config(BASIC, ft="home/%prefix%/%topic%/"), NOW)
    assert "home/tele/tasmota_0848A2/+" in adapter.subscriptions()
    events = adapter.feed(Message("home/stat/tasmota_0848A2/POWER", b"ON"), NOW)
    assert states(events) == {"switch": True}


def test_button_press_is_an_event_and_never_from_retained() -> None:
    adapter = primed()
    (press,) = adapter.feed(message("stat_result_button1_single_so73.json"), NOW)
    assert isinstance(press, PointEvent)
    assert (press.device_id, press.key, press.value) == ("tasmota-A4CF12B3C4D8", "button_1", "single")
    with pytest.raises(Rejected) as exc:
        adapter.feed(message("stat_result_button1_single_so73.json", retain=True), NOW)
    assert exc.value.reason == "retained_event"


def test_fahrenheit_is_converted() -> None:
    adapter = primed()
    raw = fixture("tele_sensor_esp32_temperature_docs.json")["payload_raw"].replace('"C"', '"F"')
    values = states(adapter.feed(Message("tele/tasmota_17A5A0/SENSOR", raw.encode()), NOW))
    assert values["temperature_esp32"] == pytest.approx(5.39)


def test_config_removed() -> None:
    adapter = TasmotaAdapter()
    adapter.feed(message(BASIC), NOW)
    (removed,) = adapter.feed(Message("tasmota/discovery/DC4F220848A2/config", b"", retain=True), NOW)
    assert isinstance(removed, DeviceRemoved)
    assert removed.device_id == "tasmota-DC4F220848A2"
    assert adapter.feed(Message("tasmota_0848A2/stat/POWER", b"ON"), NOW) == []


# -- commands: as the Tasmota docs prescribe -------------------------------------------


def test_encode_relay_of_a_multi_relay_board() -> None:
    adapter = TasmotaAdapter()
    dev = discovered(adapter.feed(message(FOUR), NOW)).device
    (msg,) = adapter.encode(dev, {"switch_1": True})
    assert (msg.topic, msg.payload, msg.retain) == ("cmnd/tasmota_852612/POWER1", b"ON", False)
    (msg,) = adapter.encode(dev, {"switch_3": False})
    assert (msg.topic, msg.payload) == ("cmnd/tasmota_852612/POWER3", b"OFF")


def test_encode_single_relay_with_reversed_full_topic() -> None:
    adapter = TasmotaAdapter()
    dev = discovered(adapter.feed(message(BASIC), NOW)).device
    (msg,) = adapter.encode(dev, {"switch": True})
    assert (msg.topic, msg.payload) == ("tasmota_0848A2/cmnd/POWER", b"ON")


def test_encode_light() -> None:
    adapter = primed()
    dev = next(d.device for d in adapter._devices.values() if d.id == "tasmota-A4CF12B3C4D7")
    assert dev is not None
    msgs = adapter.encode(dev, {"light": {"on": True, "brightness": 40}})
    assert [(m.topic, m.payload) for m in msgs] == [("cmnd/GD-30W/Dimmer", b"40"), ("cmnd/GD-30W/POWER5", b"ON")]


@pytest.mark.parametrize(
    ("values", "reason"),
    [({"rssi": 1}, "not_writable"), ({"nope": 1}, "not_writable"), ({"switch_1": "ON"}, "bad_value")],
)
def test_encode_refusals(values: dict[str, Any], reason: str) -> None:
    adapter = TasmotaAdapter()
    dev = discovered(adapter.feed(message(FOUR), NOW)).device
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
TOPICS = [fixture(n)["topic"] for n in FILES] + [m.topic for m in DERIVED.values()]
SHARED = primed()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.sampled_from(TOPICS) | st.text(max_size=40),
    payload=st.binary(max_size=64)
    | st.sampled_from([b"[" * 5000, b"{" * 70 + b"}" * 70, b'{"ENERGY":{"Total":'])
    | JSON.map(lambda v: json.dumps(v).encode()),
    retain=st.booleans(),
)
def test_hostile_payloads_only_raise_rejected(topic: str, payload: bytes, retain: bool) -> None:
    result = outcome(lambda: SHARED.feed(Message(topic, payload, retain=retain), NOW))
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
        inner = inner | {data.draw(st.sampled_from(sorted(inner))): data.draw(JSON)}
        payload = payload | {key: inner}
    else:
        payload = payload | {key: data.draw(JSON)}
    adapter = primed()

    def run() -> None:
        adapter.feed(Message(fx["topic"], json.dumps(payload).encode()), NOW)
        for dev in adapter._devices.values():
            if dev.device is not None:
                adapter.encode(dev.device, {k: data.draw(captures.VALUES) for k in list(dev.points)[:2]})

    result = outcome(run)
    assert result is None or result.reason
