"""Home Assistant MQTT discovery adapter against the real configs in shared/fixtures/ha_discovery."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.adapters.base import Rejected
from hub.adapters.homeassistant import ABBREVIATIONS, HomeAssistantAdapter, Template, TemplateError
from hub.model import (
    AvailabilityChanged,
    AvailabilityState,
    Device,
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
HA = FIXTURES / "ha_discovery"
NOW = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
# The TS130F capture has no topic; this is the one Zigbee2MQTT uses for it (see the manifest).
COVER_TOPIC = "homeassistant/cover/0xa4c138b5bc064c64/cover/config"
DEVICE_TOPIC = "homeassistant/device/kitchen01/config"  # the docs leave <object_id> open


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HA / f"{name}.json").read_text(encoding="utf-8"))
    return data


def config(name: str) -> Message:
    fx = fixture(name)
    topic = fx["topic"] or COVER_TOPIC
    return Message(topic.replace("<object_id>", "kitchen01"), fx["payload_raw"].encode(), retain=True)


def discover(a: HomeAssistantAdapter, *names: str) -> Device:
    device: Device | None = None
    for name in names:
        found = [e.device for e in a.feed(config(name), NOW) if isinstance(e, DeviceDiscovered)]
        assert found, name
        device = found[-1]
    assert device is not None
    return device


def values(events: list[Event]) -> dict[str, Any]:
    states = [e for e in events if isinstance(e, StateChanged)]
    assert len(states) == 1, events
    return states[0].values


def state(a: HomeAssistantAdapter, topic: str, payload: str | bytes, retain: bool = False) -> list[Event]:
    raw = payload.encode() if isinstance(payload, str) else payload
    return a.feed(Message(topic, raw, retain=retain), NOW)


# ------------------------------------------------------------------------------- every fixture

ALL = sorted(p.stem for p in HA.glob("*.json"))


@pytest.mark.parametrize("name", ALL)
def test_every_fixture_parses_or_is_rejected_with_a_reason(name: str) -> None:
    a = HomeAssistantAdapter()
    fx = fixture(name)
    if fx["topic"] and not fx["topic"].endswith("/config"):
        # a state message: discover the config that names its topic first
        sibling = {"ha_docs_climate_state_invalid_json": "ha_docs_climate_abbreviated"}.get(
            name, "ha_docs_sensor_temperature_full_device" if "sensor" in name else "ha_docs_motion_binary_sensor"
        )
        discover(a, sibling)
    msg = config(name)
    if fx["payload_kind"] == "invalid_json":
        with pytest.raises(Rejected) as exc:
            a.feed(msg, NOW)
        assert exc.value.reason == "invalid_json"
        assert a.counters["invalid_json"] == 1
        return
    events = a.feed(msg, NOW)
    assert isinstance(events, list)


# ------------------------------------------------------------------------------- points, field by field

# fixture, point key, kind, unit, writable, diagnostic
POINTS = [
    ("esphome_binary_sensor_no_device_class", "garage_door_position", Kind.OTHER, None, False, False),
    ("esphome_sensor_temperature_captured", "garage_temperature", Kind.TEMPERATURE, "°C", False, False),
    ("esphome_button_log_line", "start_hp", Kind.OTHER, None, True, False),
    ("ha_docs_climate_abbreviated", "livingroom", Kind.CLIMATE, "°C", True, False),
    ("ha_docs_light_json_abbrev_dev_origin", "kitchen", Kind.LIGHT, None, True, False),
    ("ha_docs_motion_binary_sensor", "garden", Kind.MOTION, None, False, False),
    ("ha_docs_switch_irrigation", "irrigation", Kind.SWITCH, None, True, False),
    ("tasmota_rule_water_leak_binary_sensor_abbrev_tilde", "18a6b3_sns_1", Kind.WATER_LEAK, None, False, False),
    ("tasmota_docs_fan_tilde_at_end", "macaddr", Kind.FAN, None, True, False),
    ("z2m_1_6_contact_door_inverted_payload", "contact", Kind.CONTACT, None, False, False),
    ("z2m_bridge_permit_join_switch_json_payloads", "zigbee2mqtt_bridge_permit_join", Kind.SWITCH, None, True, True),
    ("z2m_bridge_restart_required_binary_sensor", "zigbee2mqtt_bridge_restart_required", Kind.OTHER, None, False, True),
    ("z2m_cover_ts130f_position_templates", "cover_slaapkamer_klein_raam", Kind.COVER, "%", True, False),
    ("z2m_device_automation_trigger_action", "action", Kind.BUTTON, None, False, False),
]


@pytest.mark.parametrize(("name", "key", "kind", "unit", "writable", "diagnostic"), POINTS)
def test_points(name: str, key: str, kind: Kind, unit: str | None, writable: bool, diagnostic: bool) -> None:
    device = discover(HomeAssistantAdapter(), name)
    point = device.point(key)
    assert point is not None, [p.key for p in device.points]
    assert (point.kind, point.unit, point.writable, point.diagnostic) == (kind, unit, writable, diagnostic)


def test_other_points_say_why() -> None:
    a = HomeAssistantAdapter()
    assert discover(a, "esphome_binary_sensor_no_device_class").points[0].note == "no device_class"
    bridge = discover(a, "z2m_bridge_network_map_sensor_now_template")
    (point,) = bridge.points
    assert point.kind is Kind.OTHER
    assert "template not supported: {{ now().strftime('%Y-%m-%d %H:%M:%S') }}" in (point.note or "")
    assert a.counters["other_points"] == 2


def test_identifiers_ids_and_via() -> None:
    a = HomeAssistantAdapter()
    esp = discover(a, "esphome_sensor_temperature_captured")
    assert esp.id == "ha-20500de464ec"
    assert esp.identifiers == {"ha": "20500de464ec", "mac": "20500DE464EC"}
    trigger = discover(a, "z2m_device_automation_trigger_action")
    assert trigger.id == "ha-zigbee2mqtt_0x6c5cb1fffe0a4c21"
    assert trigger.identifiers["ieee"] == "0x6c5cb1fffe0a4c21"
    assert trigger.via == "ha-zigbee2mqtt_bridge_0x00124b00a17f52d9"
    assert (trigger.name, trigger.manufacturer, trigger.firmware) == ("Example Switch", "Inovelli", "2.18")
    no_device = discover(a, "tasmota_docs_fan_tilde_at_end")
    assert no_device.id == "ha-AABBCC"
    assert no_device.identifiers == {"unique_id": "AABBCC"}


# ------------------------------------------------------------------------------- state traps


def test_z2m_contact_door_inverted_and_stringified_false() -> None:
    # payload_on is JSON false: HA compares str(False) == "False" with the rendered template
    a = HomeAssistantAdapter()
    discover(a, "z2m_1_6_contact_door_inverted_payload")
    assert values(state(a, "zigbee2mqtt/0x00158d00029b063b", '{"contact": true}')) == {"contact": False}
    assert values(state(a, "zigbee2mqtt/0x00158d00029b063b", '{"contact": false}')) == {"contact": True}
    # a message without the key is a partial update that carries nothing for this entity
    assert state(a, "zigbee2mqtt/0x00158d00029b063b", '{"battery": 90}') == []


def test_numeric_payload_on_is_compared_as_string_and_avty_list_with_tilde() -> None:
    a = HomeAssistantAdapter()
    device = discover(a, "hadiscovery_lib_binary_sensor_avty_list_numeric_payload")
    assert device.name == "ha-myuniqueid"
    assert device.point("myuniqueid") is not None
    assert values(state(a, "basetopic/myuniqueid/sensorname", "1")) == {"myuniqueid": True}
    assert values(state(a, "basetopic/myuniqueid/sensorname", "0")) == {"myuniqueid": False}
    assert state(a, "basetopic/myuniqueid/sensorname", "true") == []
    (ev,) = state(a, "basetopic/myuniqueid/$system/status", "online")
    assert isinstance(ev, AvailabilityChanged)
    assert ev.availability.state is AvailabilityState.ONLINE
    assert ev.availability.last_seen == NOW


def test_abbreviations_and_tilde_at_start_with_case_sensitive_availability() -> None:
    a = HomeAssistantAdapter()
    discover(a, "tasmota_rule_water_leak_binary_sensor_abbrev_tilde")
    assert "tasmota_18A6B3/stat/Moisture" in a.subscriptions()
    assert values(state(a, "tasmota_18A6B3/stat/Moisture", '{"Leak":"ON"}')) == {"18a6b3_sns_1": True}
    assert state(a, "tasmota_18A6B3/tele/LWT", "online") == []  # Tasmota says "Online"
    (ev,) = state(a, "tasmota_18A6B3/tele/LWT", "Online")
    assert isinstance(ev, AvailabilityChanged)
    assert ev.availability.state is AvailabilityState.ONLINE
    (off,) = state(a, "tasmota_18A6B3/tele/LWT", "Offline")
    assert isinstance(off, AvailabilityChanged)
    assert off.availability.state is AvailabilityState.OFFLINE
    assert off.availability.reason == "homeassistant availability: offline (tasmota_18A6B3/tele/LWT)"


def test_tilde_at_end_and_fan_command() -> None:
    a = HomeAssistantAdapter()
    device = discover(a, "tasmota_docs_fan_tilde_at_end")
    assert values(state(a, "stat/%topic%/POWER1", "ON")) == {"macaddr": True}
    (cmd,) = a.encode(device, {"macaddr": False})
    assert (cmd.topic, cmd.payload) == ("cmnd/%topic%/POWER1", b"OFF")


def test_motion_state_from_docs() -> None:
    a = HomeAssistantAdapter()
    device = discover(a, "ha_docs_motion_binary_sensor")
    assert device.name == "Garden"
    assert device.points[0].name is None
    fx = fixture("ha_docs_motion_state_on")
    assert values(state(a, fx["topic"], fx["payload_raw"])) == {"garden": True}


def test_shared_state_topic_feeds_two_entities_of_one_device() -> None:
    a = HomeAssistantAdapter()
    device = discover(a, "ha_docs_sensor_humidity_shared_device", "ha_docs_sensor_temperature_full_device")
    assert device.id == "ha-bedroom01ae"
    assert (device.name, device.manufacturer, device.model) == ("Bedroom", "Example sensors Ltd.", "Example Sensor")
    assert [(p.key, p.kind, p.unit) for p in device.points] == [
        ("sensorbedroomh", Kind.HUMIDITY, "%"),
        ("sensorbedroomt", Kind.TEMPERATURE, "°C"),
    ]
    fx = fixture("ha_docs_sensor_shared_state")
    assert values(state(a, fx["topic"], fx["payload_raw"])) == {"sensorbedroomh": 43.7, "sensorbedroomt": 23.2}


def test_device_based_discovery_and_removing_one_component() -> None:
    a = HomeAssistantAdapter()
    device = discover(a, "ha_docs_device_discovery_cmps")
    assert [(p.key, p.kind) for p in device.points] == [
        ("some_unique_component_id1", Kind.TEMPERATURE),
        ("some_unique_id2", Kind.HUMIDITY),
    ]
    # the shared root state_topic is inherited by every component
    assert values(state(a, "sensorBedroom/state", '{"temperature": 20.5, "humidity": 40}')) == {
        "some_unique_component_id1": 20.5,
        "some_unique_id2": 40.0,
    }
    smaller = discover(a, "ha_docs_device_discovery_remove_one_component")
    assert [p.key for p in smaller.points] == ["some_unique_component_id1"]
    assert values(state(a, "sensorBedroom/state", '{"temperature": 21, "humidity": 41}')) == {
        "some_unique_component_id1": 21.0
    }
    (removed,) = a.feed(Message(DEVICE_TOPIC, b"", retain=True), NOW)
    assert isinstance(removed, DeviceRemoved)
    assert removed.device_id == "ha-ea334450945afc"


def test_empty_config_removes() -> None:
    a = HomeAssistantAdapter()
    discover(a, "ha_docs_motion_binary_sensor")
    (ev,) = a.feed(config("ha_docs_remove_empty_payload"), NOW)
    assert isinstance(ev, DeviceRemoved)
    assert ev.device_id == "ha-01ad"
    assert state(a, "homeassistant/binary_sensor/garden/state", "ON") == []


def test_removing_one_entity_keeps_the_device() -> None:
    a = HomeAssistantAdapter()
    discover(a, "ha_docs_sensor_humidity_shared_device", "ha_docs_sensor_temperature_full_device")
    (ev,) = a.feed(Message("homeassistant/sensor/sensorBedroomH/config", b"", retain=True), NOW)
    assert isinstance(ev, DeviceDiscovered)
    assert [p.key for p in ev.device.points] == ["sensorbedroomt"]


def test_migrate_discovery_is_not_a_config() -> None:
    a = HomeAssistantAdapter()
    assert a.feed(config("ha_docs_migrate_discovery"), NOW) == []
    assert a.counters["migrate_discovery"] == 1


def test_bridge_sensors_templates() -> None:
    a = HomeAssistantAdapter()
    discover(
        a,
        "z2m_bridge_coordinator_version_sensor_nested_template",
        "z2m_bridge_version_sensor",
        "z2m_bridge_restart_required_binary_sensor",
        "z2m_bridge_permit_join_switch_json_payloads",
        "z2m_bridge_log_level_select",
    )
    info = {
        "version": "2.1.3",
        "coordinator": {"meta": {"revision": "7.3.1.0 build 176"}},
        "restart_required": False,
        "permit_join": False,
        "log_level": "INFO",
    }
    assert values(state(a, "zigbee2mqtt/bridge/info", json.dumps(info))) == {
        "zigbee2mqtt_bridge_coordinator_version": "7.3.1.0 build 176",
        "zigbee2mqtt_bridge_version": "2.1.3",
        "zigbee2mqtt_bridge_restart_required": False,  # payload_off JSON false -> "False"
        "zigbee2mqtt_bridge_permit_join": False,  # state_off "false" after `| lower`
        "zigbee2mqtt_bridge_log_level": "info",
    }


def test_availability_mode_all_needs_bridge_and_device() -> None:
    a = HomeAssistantAdapter()
    discover(a, "z2m_cover_ts130f_position_templates")
    assert state(a, "zigbee2mqtt/bridge/state", "online") == []  # device topic still unknown
    (on,) = state(a, "zigbee2mqtt/cover.slaapkamer.klein-raam/availability", "online")
    assert isinstance(on, AvailabilityChanged)
    assert on.availability.state is AvailabilityState.ONLINE
    (off,) = state(a, "zigbee2mqtt/bridge/state", "offline")
    assert isinstance(off, AvailabilityChanged)
    assert off.availability.state is AvailabilityState.OFFLINE


def test_availability_template_on_json_bridge_state() -> None:
    a = HomeAssistantAdapter()
    discover(a, "z2m_bridge_version_sensor")
    (ev,) = state(a, "zigbee2mqtt/bridge/state", '{"state":"online"}')
    assert isinstance(ev, AvailabilityChanged)
    assert ev.availability.state is AvailabilityState.ONLINE


def _synthetic(topic: str, cfg: dict[str, Any]) -> Message:
    return Message(topic, json.dumps(cfg).encode(), retain=True)


@pytest.mark.parametrize(
    ("mode", "payloads", "expected"),
    [
        ("any", {"a/status": "online", "b/status": "offline"}, AvailabilityState.ONLINE),
        ("all", {"a/status": "online", "b/status": "offline"}, AvailabilityState.OFFLINE),
        ("latest", {"a/status": "offline", "b/status": "online"}, AvailabilityState.ONLINE),
        ("latest", {"b/status": "online", "a/status": "offline"}, AvailabilityState.OFFLINE),
    ],
)
def test_availability_modes(mode: str, payloads: dict[str, str], expected: AvailabilityState) -> None:
    # Synthetic config (no capture has mode `any`): two availability topics with the given mode.
    a = HomeAssistantAdapter()
    cfg = {"stat_t": "x/state", "uniq_id": "x1", "avty": [{"t": "a/status"}, {"t": "b/status"}], "avty_mode": mode}
    a.feed(_synthetic("homeassistant/sensor/x1/config", cfg), NOW)
    events: list[Event] = []
    for topic, payload in payloads.items():
        events += state(a, topic, payload)
    last = [e for e in events if isinstance(e, AvailabilityChanged)][-1]
    assert last.availability.state is expected


@pytest.mark.parametrize(
    ("device_class", "kind", "payload", "value"),
    [
        ("door", Kind.CONTACT, "ON", True),  # ON = open
        ("window", Kind.CONTACT, "OFF", False),
        ("lock", Kind.LOCK, "ON", False),  # ON = unlocked -> hub lock False
        ("lock", Kind.LOCK, "OFF", True),
        ("battery", Kind.BATTERY_LOW, "ON", True),  # ON = low
        ("moisture", Kind.WATER_LEAK, "ON", True),
    ],
)
def test_binary_sensor_inversions(device_class: str, kind: Kind, payload: str, value: bool) -> None:
    # Synthetic configs: the captures have no lock/battery binary_sensor.
    a = HomeAssistantAdapter()
    cfg = {"stat_t": "s/state", "uniq_id": "s1", "dev_cla": device_class}
    (ev,) = a.feed(_synthetic("homeassistant/binary_sensor/s1/config", cfg), NOW)
    assert isinstance(ev, DeviceDiscovered)
    assert ev.device.points[0].kind is kind
    assert values(state(a, "s/state", payload)) == {"s1": value}


def test_device_trigger_is_an_event_never_replayed() -> None:
    a = HomeAssistantAdapter()
    discover(a, "z2m_device_automation_trigger_action")
    (ev,) = state(a, "zigbee2mqtt/Example Switch/action", "up_single")
    assert isinstance(ev, PointEvent)
    assert (ev.key, ev.value) == ("action", "up_single")
    assert state(a, "zigbee2mqtt/Example Switch/action", "up_single", retain=True) == []
    assert state(a, "zigbee2mqtt/Example Switch/action", "down_single") == []


def test_climate_state_strings_and_invalid_json() -> None:
    a = HomeAssistantAdapter()
    discover(a, "ha_docs_climate_abbreviated")
    topic = "homeassistant/climate/livingroom/state"
    got = values(state(a, topic, '{"mode":"heat","target_temp":"21.50","current_temp":"23.60"}'))
    assert got == {"livingroom": {"mode": "heat", "target": 21.5, "current": 23.6}}
    with pytest.raises(Rejected) as exc:
        a.feed(config("ha_docs_climate_state_invalid_json"), NOW)
    assert exc.value.reason == "invalid_json"


def test_cover_position_and_unsupported_state_template() -> None:
    a = HomeAssistantAdapter()
    device = discover(a, "z2m_cover_ts130f_position_templates")
    point = device.points[0]
    assert point.note is not None
    assert point.note.startswith("template not supported: {% if")
    got = values(state(a, "zigbee2mqtt/cover.slaapkamer.klein-raam", '{"position": 40, "moving": "UP"}'))
    assert got == {"cover_slaapkamer_klein_raam": {"position": 40.0}}


def test_light_json_schema_state() -> None:
    a = HomeAssistantAdapter()
    discover(a, "ha_docs_light_json_abbrev_dev_origin")
    got = values(state(a, "homeassistant/light/kitchen/state", '{"state": "ON", "brightness": 255}'))
    assert got == {"kitchen": {"on": True, "brightness": 100.0}}
    got = values(state(a, "homeassistant/light/kitchen/state", '{"color_temp": 370}'))
    assert got == {"kitchen": {"on": True, "brightness": 100.0, "color_temp": 2703}}


# ------------------------------------------------------------------------------- encode


def test_encode_switch_and_tilde_command_topic() -> None:
    a = HomeAssistantAdapter()
    device = discover(a, "ha_docs_switch_abbrev_base_topic")
    (cmd,) = a.encode(device, {"irrigation": True})
    assert (cmd.topic, cmd.payload) == ("homeassistant/switch/irrigation/set", b"ON")


def test_encode_json_payloads_and_command_template() -> None:
    a = HomeAssistantAdapter()
    bridge = discover(
        a, "z2m_bridge_permit_join_switch_json_payloads", "z2m_bridge_log_level_select", "z2m_bridge_restart_button"
    )
    (join,) = a.encode(bridge, {"zigbee2mqtt_bridge_permit_join": True})
    assert (join.topic, join.payload) == ("zigbee2mqtt/bridge/request/permit_join", b'{"time": 254}')
    (level,) = a.encode(bridge, {"zigbee2mqtt_bridge_log_level": "debug"})
    assert level.topic == "zigbee2mqtt/bridge/request/options"
    assert json.loads(level.payload) == {"options": {"advanced": {"log_level": "debug"}}}
    (restart,) = a.encode(bridge, {"zigbee2mqtt_bridge_restart": True})
    assert (restart.topic, restart.payload) == ("zigbee2mqtt/bridge/request/restart", b"")


def test_encode_light_json_and_cover_position_template() -> None:
    a = HomeAssistantAdapter()
    light = discover(a, "ha_docs_light_json_abbrev_dev_origin")
    (cmd,) = a.encode(light, {"kitchen": {"on": True, "brightness": 50}})
    assert cmd.topic == "homeassistant/light/kitchen/set"
    assert json.loads(cmd.payload) == {"state": "ON", "brightness": 128}
    cover = discover(a, "z2m_cover_ts130f_position_templates")
    (pos,) = a.encode(cover, {"cover_slaapkamer_klein_raam": {"position": 50}})
    assert pos.topic == "zigbee2mqtt/cover.slaapkamer.klein-raam/set"
    assert json.loads(pos.payload) == {"position": 50}


def test_encode_climate_and_refusals() -> None:
    a = HomeAssistantAdapter()
    climate = discover(a, "ha_docs_climate_abbreviated")
    msgs = a.encode(climate, {"livingroom": {"mode": "heat", "target": 21.5}})
    assert [(m.topic, m.payload) for m in msgs] == [
        ("homeassistant/climate/livingroom/thermostatModeCmd", b"heat"),
        ("homeassistant/climate/livingroom/targetTempCmd", b"21.5"),
    ]
    sensor = discover(a, "esphome_sensor_temperature_captured")
    with pytest.raises(Rejected) as exc:
        a.encode(sensor, {"garage_temperature": 20})
    assert exc.value.reason == "not_writable"


# ------------------------------------------------------------------------------- templates

TEMPLATES = [
    ("{{ value }}", " 42 ", "42"),
    ("{{ value_json.a.b }}", '{"a": {"b": 3}}', "3"),
    ("{{ value_json['a'].b }}", '{"a": {"b": false}}', "False"),
    ("{{ value_json.t | float }}", '{"t": "21.50"}', "21.5"),
    ("{{ value_json.t | int }}", '{"t": "21"}', "21"),
    ("{{ value_json.t | float | round(1) }}", '{"t": 21.456}', "21.5"),
    ("{{ value_json.s | lower }}", '{"s": "INFO"}', "info"),
    ("{{ value_json.s | upper }}", '{"s": "on"}', "ON"),
    ("{{ value_json.x | float(0) }}", '{"x": "n/a"}', "0"),
    ("{{ value_json.x if value_json.x is defined else 'none' }}", "{}", "none"),
    ("{{ value_json.l[1] }}", '{"l": [1, 2]}', "2"),
]


@pytest.mark.parametrize(("source", "payload", "expected"), TEMPLATES)
def test_template_subset(source: str, payload: str, expected: str) -> None:
    variables = {"value": payload, "value_json": json.loads(payload) if payload.startswith("{") else None}
    assert Template.parse(source).render(variables) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{ now().strftime('%H') }}",
        "{% if value %}1{% endif %}",
        "{{ '%0.1f'|format(value_json.x) }}",
        "{{ value_json.data.value | tojson }}",
        "{{ __import__('os') }}",
        "{{ value_json.a + 1 }}",
    ],
)
def test_unsupported_templates_are_refused(source: str) -> None:
    with pytest.raises(TemplateError):
        Template.parse(source)


# ------------------------------------------------------------------------------- hostile input

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
KEYS = sorted({*ABBREVIATIONS, *ABBREVIATIONS.values(), "~", "device", "dev", "availability"})
configs = st.dictionaries(st.sampled_from(KEYS), json_values | st.sampled_from(["~/x", "x/~", "ON", "{{ value }}"]))
CONFIG_TOPICS = [
    "homeassistant/sensor/a/config",
    "homeassistant/binary_sensor/n/a/config",
    "homeassistant/light/a/config",
    "homeassistant/cover/a/config",
    "homeassistant/climate/a/config",
    "homeassistant/device/a/config",
    "homeassistant/device_automation/a/config",
]


def _feed_safely(a: HomeAssistantAdapter, msg: Message) -> list[Event]:
    try:
        return a.feed(msg, NOW)
    except Rejected:
        return []


@settings(max_examples=200, deadline=None)
@given(topic=st.sampled_from(CONFIG_TOPICS), cfg=configs, payload=st.binary(max_size=60))
def test_hostile_configs_and_states_only_rejected(topic: str, cfg: dict[str, Any], payload: bytes) -> None:
    a = HomeAssistantAdapter()
    events = _feed_safely(a, Message(topic, json.dumps(cfg).encode()))
    for t in a.subscriptions()[2:]:
        _feed_safely(a, Message(t, payload))
        _feed_safely(a, Message(t, json.dumps(cfg).encode()))
    for e in events:
        if isinstance(e, DeviceDiscovered):
            for p in e.device.points:
                with contextlib.suppress(Rejected):
                    a.encode(e.device, {p.key: True})


@settings(max_examples=150, deadline=None)
@given(topic=st.sampled_from(CONFIG_TOPICS), payload=st.binary(max_size=200), cut=st.integers(0, 30))
def test_random_bytes_and_truncated_json_only_rejected(topic: str, payload: bytes, cut: int) -> None:
    a = HomeAssistantAdapter()
    _feed_safely(a, Message(topic, payload))
    raw = fixture("z2m_cover_ts130f_position_templates")["payload_raw"].encode()
    _feed_safely(a, Message(topic, raw[: max(0, len(raw) - cut)]))


@settings(max_examples=80, deadline=None)
@given(topic=st.text(min_size=1, max_size=30), payload=st.binary(max_size=40))
def test_unicode_topics(topic: str, payload: bytes) -> None:
    a = HomeAssistantAdapter()
    _feed_safely(a, Message(f"homeassistant/{topic}/config", payload))
    _feed_safely(a, Message(topic, payload))


def test_deeply_nested_config_is_refused() -> None:
    a = HomeAssistantAdapter()
    with pytest.raises(Rejected) as exc:
        a.feed(Message("homeassistant/sensor/a/config", b'{"a":' * 5000 + b"1" + b"}" * 5000), NOW)
    assert exc.value.reason == "too_deep"
    assert a.counters["too_deep"] == 1


def test_a_state_or_availability_nested_deeper_than_any_parser_allows_is_no_value_never_an_error() -> None:
    # State and availability payloads go to templates unguarded by decode_json's depth check:
    # a bomb there must read as "no JSON", as invalid JSON does, not escape as a RecursionError.
    a = HomeAssistantAdapter()
    discover(a, "z2m_bridge_version_sensor")
    bomb = b"[" * 100_000 + b"]" * 100_000
    assert state(a, "zigbee2mqtt/bridge/state", bomb) == []
    (ev,) = state(a, "zigbee2mqtt/bridge/state", '{"state":"online"}')
    assert isinstance(ev, AvailabilityChanged)
