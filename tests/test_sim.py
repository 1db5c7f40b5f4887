"""The simulated home: its payloads have the shapes of the real captures, the adapters make the expected devices
of them, and the simulated devices obey commands sent through the hub API."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from hub.adapters import build_adapters
from hub.config import Discovery, load_config
from hub.model import DeviceDiscovered, Event, StateChanged
from hub.mqtt import Link
from hub.sim.day import DAY, INCIDENTS, parse_schedule
from hub.sim.dialects import (
    EsphomeDevice,
    HomieDevice,
    ShellyPlus,
    TasmotaPlug,
    ZigbeeBridge,
    ZigbeeDevice,
    build,
    hub_id,
)
from hub.sim.home import EXAMPLE_HOME
from hub.sim.load import LoadPlan, announcements, load_specs, stream
from hub.sim.runner import SimHome, due_steps
from hub.wire import Message
from tests.brokers import Mosquitto, running
from tests.hubctl import WAIT, running_hub, watching

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parents[2] / "shared" / "fixtures"
NOW = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)


def fixture(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / path).read_text(encoding="utf-8"))
    return data


def payload(msg: Message) -> Any:
    return json.loads(msg.payload)


def devices() -> dict[str, Any]:
    return {s.key: build(s) for s in EXAMPLE_HOME}


# --- shapes: the simulator against the captures ------------------------------------------------


def test_zigbee2mqtt_shapes_match_the_captures() -> None:
    zigbee = [d for d in devices().values() if isinstance(d, ZigbeeDevice)]
    bridge = ZigbeeBridge(zigbee).announce()
    entries = payload(next(m for m in bridge if m.topic == "zigbee2mqtt/bridge/devices"))
    sample = json.loads((FIXTURES / "zigbee2mqtt" / "bridge_devices_sample.json").read_text())
    sample_keys = set().union(*(e.keys() for e in sample))
    for entry in entries[1:]:
        assert set(entry) <= sample_keys
        assert {"ieee_address", "friendly_name", "definition", "type"} <= set(entry)
    assert payload(bridge[0]).keys() == fixture("zigbee2mqtt/bridge_state_json.json")["payload"].keys()
    for dev in zigbee:
        avail, state = dev.announce(NOW)
        assert payload(avail).keys() == {"state"}  # availability_json_object.json, lower-case as Z2M 2.x writes it
        exposed = {e.get("property") for e in dev.entry["definition"]["exposes"]}
        assert set(payload(state)) <= exposed | {"linkquality", "last_seen", "voltage"}
    # The real contact state's shape, and its inverted meaning: true is CLOSED.
    door = devices()["front_door"].announce(NOW)[1]
    real = fixture("zigbee2mqtt/state_xiaomi_contact_closed.json")["payload"]
    assert set(payload(door)) <= set(real) | {"linkquality", "last_seen"}
    assert payload(door)["contact"] is True  # the front door starts closed


def test_esphome_discovery_shapes_match_the_captures() -> None:
    climate = devices()["bedroom_climate"]
    assert isinstance(climate, EsphomeDevice)
    configs = [m for m in climate.announce(NOW) if m.topic.endswith("/config")]
    real = fixture("ha_discovery/esphome_sensor_temperature_captured.json")["payload"]
    for msg in configs:
        body = payload(msg)
        assert set(body) == set(real)
        assert set(body["dev"]) == set(real["dev"])
        assert msg.retain
    smoke = devices()["smoke"]
    real_binary = fixture("ha_discovery/esphome_binary_sensor_no_device_class.json")["payload"]
    (config,) = [m for m in smoke.announce(NOW) if m.topic.endswith("/config")]
    assert set(payload(config)) == set(real_binary) | {"dev_cla"}


def test_tasmota_shapes_match_the_captures() -> None:
    plug = devices()["cooktop"]
    assert isinstance(plug, TasmotaPlug)
    msgs = {m.topic: m for m in plug.announce(NOW)}
    real = fixture("tasmota/discovery_config_nous_a1t_13_1_bat_dslp.json")["payload"]
    assert set(payload(msgs["tasmota/discovery/A4CF12B3C4D5/config"])) == set(real)
    state = payload(msgs[f"tele/{plug.topic}/STATE"])
    assert set(fixture("tasmota/tele_state_custom_fulltopic_pilotwire.json")["payload"]) - {"Vcc"} >= set(state) - {
        "Wifi"
    }
    energy = payload(msgs[f"tele/{plug.topic}/SENSOR"])["ENERGY"]
    real_energy = fixture("tasmota/tele_sensor_teleinfo_energy_custom_fulltopic.json")["payload"]["ENERGY"]
    assert set(real_energy) <= set(energy)
    assert msgs[f"tele/{plug.topic}/LWT"].payload == b"Online"


def test_shelly_shapes_match_the_captures() -> None:
    shelly = devices()["night_light"]
    assert isinstance(shelly, ShellyPlus)
    online, full = shelly.announce(NOW)
    assert online.payload == fixture("shelly/gen2_plus1pm_online_true.json")["payload_raw"].encode()
    real_status = fixture("shelly/gen2_plus1pm_status_switch0_full.json")["payload"]
    assert set(payload(full)["params"]["switch:0"]) == set(real_status)
    note, power = shelly.report({"on": True}, NOW)
    real_note = fixture("shelly/gen2_plus1pm_notifystatus_output_on_ws_in.json")["payload"]
    assert set(payload(note)) == set(real_note)
    assert set(payload(note)["params"]["switch:0"]) == set(real_note["params"]["switch:0"])
    real_partial = fixture("shelly/gen2_plus1pm_notifystatus_partial_voltage.json")["payload"]["params"]["switch:0"]
    assert set(payload(power)["params"]["switch:0"]) == set(real_partial) - {"voltage"} | {"apower"}
    # RPC: the captured Switch.Set request is obeyed and answered like the captured reply.
    request = fixture("shelly/gen2_rpc_request_switch_set.json")
    reply, *notes = shelly.command(
        Message(f"{shelly.prefix}/rpc", request["payload_raw"].replace('"on": true', '"on": false').encode()), NOW
    )
    real_reply = fixture("shelly/gen2_rpc_error_response_reserialized.json")["payload"]
    assert reply.topic == "homeassistant/rpc"
    assert {"id", "src", "dst"} <= set(payload(reply)) <= set(real_reply)
    assert payload(reply)["result"] == {"was_on": True}
    assert shelly.values["on"] is False
    assert payload(notes[0])["params"]["switch:0"]["output"] is False


def test_homie_shapes_match_the_captures() -> None:
    env = devices()["kitchen_env"]
    assert isinstance(env, HomieDevice)
    msgs = env.announce(NOW)
    assert msgs[0].payload == b"init"
    assert msgs[-1].payload == b"ready"
    desc = payload(next(m for m in msgs if m.topic.endswith("$description")))
    real = fixture("homie/v5_node_homie_description.json")["payload"]
    assert set(desc) <= set(real)
    real_prop = real["nodes"]["sensors"]["properties"]["temperature"]
    assert set(desc["nodes"]["sensors"]["properties"]["temperature"]) == set(real_prop)
    value = next(m for m in msgs if m.topic.endswith("/sensors/temperature"))
    float(value.payload)  # a plain number, as v5_node_homie_property_temperature.json


# --- the adapters make the expected devices of the simulator's messages -------------------------


def feed_all(messages: list[Message]) -> list[Event]:
    adapters = build_adapters(Discovery())
    events: list[Event] = []
    for msg in messages:
        for adapter in adapters.values():
            if any(_matches(f, msg.topic) for f in adapter.subscriptions()):
                events += adapter.feed(msg, NOW)
    return events


def _matches(pattern: str, topic: str) -> bool:
    from hub.wire import topic_matches

    return topic_matches(pattern, topic)


def test_every_dialect_normalizes_to_the_devices_of_devices_yaml() -> None:
    devs = devices()
    zigbee = [d for d in devs.values() if isinstance(d, ZigbeeDevice)]
    messages = ZigbeeBridge(zigbee).announce() + [m for d in devs.values() for m in d.announce(NOW)]
    events = feed_all(messages)
    found = {e.device.id: e.device for e in events if isinstance(e, DeviceDiscovered)}
    assert set(found) == {hub_id(s) for s in EXAMPLE_HOME}
    named = {d.id for d in load_config(ROOT / "devices.yaml").devices}
    assert named <= set(found)  # the hub adopts every simulated device by name
    assert {d.protocol.value for d in found.values()} == {"z2m", "ha", "tasmota", "shelly", "homie"}
    values: dict[str, dict[str, Any]] = {}
    for e in events:
        if isinstance(e, StateChanged):
            values.setdefault(e.device_id, {}).update(e.values)
    assert values["z2m-0x00158d0002a1b2d4"]["contact"] is True  # the bathroom door starts open
    assert values["z2m-0x00158d0004c6d7e8"]["contact"] is False  # the front door starts closed
    assert values["ha-bedroom-climate"]["temperature"] == pytest.approx(24.5)
    assert values["tasmota-A4CF12B3C4D5"]["switch"] is False
    assert values["homie-kitchen-env"]["temperature"] == pytest.approx(25.0)


def test_an_sos_press_is_an_sos_event() -> None:
    sos = devices()["sos"]
    assert isinstance(sos, ZigbeeDevice)
    events = feed_all([*ZigbeeBridge([sos]).announce(), *sos.report({"sos": "emergency"}, NOW)])
    assert any(getattr(e, "key", None) == "sos" for e in events)


@pytest.mark.parametrize("dialect", ["zigbee2mqtt", "homeassistant", "tasmota", "shelly", "homie"])
def test_load_devices_normalize_in_every_dialect(dialect: str) -> None:
    devs = [build(s) for s in load_specs(5, dialect)]
    msgs = announcements(devs, NOW)
    gen = stream(devs, NOW)
    msgs += [next(gen) for _ in range(20)]
    events = feed_all(msgs)
    assert len({e.device.id for e in events if isinstance(e, DeviceDiscovered)}) == 5
    assert sum(isinstance(e, StateChanged) for e in events) >= 10


def test_load_plan_bounds() -> None:
    LoadPlan(devices=10, rate=10, seconds=1).check()
    for bad in (LoadPlan(devices=0), LoadPlan(rate=0), LoadPlan(seconds=-1), LoadPlan(dialect="x10")):
        with pytest.raises(ValueError, match=r"--|dialect"):
            bad.check()


# --- the day and its incidents ------------------------------------------------------------------


def test_the_day_uses_only_the_homes_devices_and_repeats() -> None:
    keys = {s.key for s in EXAMPLE_HOME}
    assert {step.device for step in DAY} <= keys
    assert {dev for inc in INCIDENTS.values() for _, dev, _ in inc.steps} <= keys
    two_days = due_steps(DAY, 0, 2 * 86400)
    assert len(two_days) == 2 * len(DAY)
    assert [at for at, _ in two_days] == sorted(at for at, _ in two_days)


def test_schedules_parse_and_explain_mistakes() -> None:
    assert [(s.incident, s.after) for s in parse_schedule("fall@2m, sos@20s")] == [("sos", 20.0), ("fall", 120.0)]
    assert parse_schedule("") == []
    with pytest.raises(ValueError, match="incidents: fall"):
        parse_schedule("flood@3s")
    assert time(6, 30) < time(7, 0)


# --- end to end: the simulated devices obey the hub ----------------------------------------------


async def test_simulated_devices_obey_commands_through_the_hub(tmp_path: Path, own_mosquitto: Mosquitto) -> None:
    with running(own_mosquitto) as broker:
        cfg = load_config(ROOT / "devices.yaml")
        cfg = cfg.model_copy(
            update={
                "mqtt": cfg.mqtt.model_copy(update={"url": broker.url}),
                "discovery": cfg.discovery.model_copy(
                    update={"mdns": cfg.discovery.mdns.model_copy(update={"enabled": False})}
                ),
            }
        )
        async with running_hub(cfg, tmp_path / "data") as hub:
            link = Link(SimHome.settings(broker.url, "sim-test"))
            sim = SimHome(EXAMPLE_HOME, link)
            task = asyncio.create_task(link.run())
            try:
                await link.wait_connected(WAIT)
                async with watching("127.0.0.1", broker.port, "hub/wang-home/devices/+/state") as w:
                    await sim.start()
                    light = "shelly-shellyplus1pm-a8032ab67890"
                    plug = "tasmota-A4CF12B3C4D5"
                    await w.wait_for(
                        f"hub/wang-home/devices/{light}/state", lambda d: d["values"].get("switch") is False
                    )
                    await w.wait_for(f"hub/wang-home/devices/{plug}/state", lambda d: "switch" in d["values"])
                    for dev in (light, plug):
                        await link.publish(f"hub/wang-home/devices/{dev}/set", json.dumps({"values": {"switch": True}}))
                        state = await w.wait_for(
                            f"hub/wang-home/devices/{dev}/state", lambda d: d["values"].get("switch") is True
                        )
                        assert state["availability"]["state"] == "online"
                    assert sim.devices["night_light"].values["on"] is True
                    assert sim.devices["cooktop"].values["on"] is True
                    # Homie /set straight to the pending lamp (the hub sends nothing to a pending device).
                    await link.publish("homie/5/living-room-lamp/light/power/set", b"true")
                    async with watching("127.0.0.1", broker.port, "homie/5/living-room-lamp/light/power") as lamp:
                        await lamp.wait_for("homie/5/living-room-lamp/light/power", lambda d: d is True)
                assert hub.registry.get(light) is not None
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
