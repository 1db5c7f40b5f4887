"""Every dialect end to end against a real Mosquitto: discovery, state, command, offline, removal.

Each scenario is built from real fixture payloads, with its topics and identifiers made unique
per test (the session broker keeps retained messages between tests).
"""

from __future__ import annotations

import json
import os
import random
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from ruamel.yaml import YAML

from hub.adapters import build_adapters
from hub.config import Discovery
from hub.model import DeviceDiscovered
from hub.wire import Message
from tests import captures
from tests.brokers import Mosquitto
from tests.hubctl import config_text, make_config, running_hub, watching

FIXTURES = captures.FIXTURES

Pub = tuple[str, bytes, bool]  # topic, payload, retain


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def raw(name: str) -> str:
    return str(fixture(name)["payload_raw"])


@dataclass
class Scenario:
    """One dialect's device, as real payloads, and what the hub must make of it."""

    discovery_yaml: str  # the test's own `discovery:` settings (unique prefixes)
    discovery: list[Pub]  # retained descriptions published before or after the hub starts
    state: Pub
    point: str
    value: Any
    command: dict[str, Any]
    command_topic: str
    check_command: Callable[[bytes], None]
    offline: Pub
    removal: list[Pub] = field(default_factory=list)
    announce: list[Pub] = field(default_factory=list)  # live messages that reveal the device (Shelly)
    device_id: str = ""


def _z2m(uid: str) -> Scenario:
    base = f"z2m{uid}"
    network = fixture("zigbee2mqtt/bridge_devices_real_network.json")["payload"]
    devices = json.dumps(network).encode()
    without = json.dumps([e for e in network if e["friendly_name"] != "0x00124b001e73227f1"]).encode()
    name = "0x00124b001e73227f1"
    state = raw("zigbee2mqtt/state_sonoff_basiczbr3_switch.json").replace('"ON"', '"OFF"')
    return Scenario(
        discovery_yaml=f"  zigbee2mqtt: {{base_topic: {base}}}\n",
        discovery=[(f"{base}/bridge/devices", devices, True)],
        state=(f"{base}/{name}", state.encode(), False),
        point="switch",
        value=False,
        command={"switch": True},
        command_topic=f"{base}/{name}/set",
        # zigbee2mqtt.io: publish {"state": "ON"} to zigbee2mqtt/FRIENDLY_NAME/set
        check_command=lambda p: _eq(json.loads(p), {"state": "ON"}),
        offline=(
            f"{base}/{name}/availability",
            raw("zigbee2mqtt/availability_json_object.json").replace("online", "offline").encode(),
            True,
        ),
        removal=[(f"{base}/bridge/devices", without, True)],
        device_id="z2m-0x00124b001e73227f",  # one of the network's twelve
    )


def _ha(uid: str) -> Scenario:
    prefix = f"ha{uid}"
    cfg = json.loads(raw("ha_discovery/ha_docs_switch_irrigation.json"))
    cfg = json.loads(json.dumps(cfg).replace("homeassistant/", f"{prefix}/").replace("01ad", uid))
    cfg["availability_topic"] = f"{prefix}/switch/irrigation/availability"  # a documented option
    topic = f"{prefix}/switch/irrigation/config"
    return Scenario(
        discovery_yaml=f"  homeassistant: {{prefix: {prefix}}}\n",
        discovery=[(topic, json.dumps(cfg).encode(), True), (cfg["availability_topic"], b"online", True)],
        state=(cfg["state_topic"], b"ON", False),
        point="irrigation",
        value=True,
        command={"irrigation": False},
        command_topic=cfg["command_topic"],
        # HA MQTT switch: payload_off defaults to "OFF" on command_topic
        check_command=lambda p: _eq(p, b"OFF"),
        offline=(cfg["availability_topic"], b"offline", True),
        removal=[(topic, b"", True)],
    )


def _tasmota(uid: str) -> Scenario:
    prefix = f"tas{uid}/discovery"
    mac = "DC4F22" + uid[:6].upper()
    t = f"tasmota_{uid}"
    cfg = raw("tasmota/discovery_config_sonoff_basic_9_4_topic_prefix_order.json")
    cfg = cfg.replace("DC4F220848A2", mac).replace("tasmota_0848A2", t)
    return Scenario(
        discovery_yaml=f"  tasmota: {{prefix: {prefix}}}\n",
        discovery=[(f"{prefix}/{mac}/config", cfg.encode(), True), (f"{t}/tele/LWT", b"Online", True)],
        state=(f"{t}/stat/RESULT", raw("tasmota/stat_result_power1.json").replace("POWER1", "POWER").encode(), False),
        point="switch",
        value=True,
        command={"switch": False},
        # full topic `%topic%/%prefix%/` (the fixture's reversed order): <topic>/cmnd/POWER OFF
        command_topic=f"{t}/cmnd/POWER",
        check_command=lambda p: _eq(p, b"OFF"),
        offline=(f"{t}/tele/LWT", b"Offline", True),
        removal=[(f"{prefix}/{mac}/config", b"", True)],
    )


def _shelly(uid: str) -> Scenario:
    prefix = f"sh{uid}/plus1pm"
    mac = uid[:12].ljust(12, "0")
    frame = raw("shelly/gen2_plus1pm_notifystatus_output_on_ws_in.json")
    frame = frame.replace("4417939341dc", mac).replace("shellies/plus1pm", prefix)
    off = frame.replace('"output":true', '"output":false')

    def check(p: bytes) -> None:
        body = json.loads(p)
        # Shelly Gen2 RPC over MQTT: {"id", "src", "method": "Switch.Set", "params": {"id": 0, "on": true}}
        assert (body["method"], body["params"], body["src"]) == ("Switch.Set", {"id": 0, "on": True}, "hub-rpc")
        assert isinstance(body["id"], int)

    return Scenario(
        discovery_yaml="",
        discovery=[
            (f"{prefix}/online", raw("shelly/gen2_plus1pm_online_true.json").encode(), True),
            (f"{prefix}/status/switch:0", raw("shelly/gen2_plus1pm_status_switch0_full.json").encode(), True),
        ],
        # The retained status waits until the first notification names the device (its src).
        announce=[(f"{prefix}/events/rpc", frame.encode(), False)],
        state=(f"{prefix}/events/rpc", off.encode(), False),
        point="switch",
        value=False,
        command={"switch": True},
        command_topic=f"{prefix}/rpc",
        check_command=check,
        offline=(f"{prefix}/online", raw("shelly/gen2_plus1pm_online_false.json").encode(), True),
    )


def _homie(uid: str) -> Scenario:
    root = f"h{uid}/5/dev-{uid}"
    desc = raw("homie/v5_node_homie_description.json")
    return Scenario(
        discovery_yaml="",
        discovery=[(f"{root}/$state", b"ready", True), (f"{root}/$description", desc.encode(), True)],
        state=(
            f"{root}/actor/switch",
            raw("homie/v5_node_homie_property_switch.json").replace("false", "true").encode(),
            True,
        ),
        point="switch",
        value=True,
        command={"switch": False},
        # Homie 5: the new value, as its datatype's text, to <property topic>/set
        command_topic=f"{root}/actor/switch/set",
        check_command=lambda p: _eq(p, b"false"),
        offline=(f"{root}/$state", b"lost", True),
        removal=[(f"{root}/$state", b"", True)],
    )


def _eq(got: Any, want: Any) -> None:
    assert got == want


SCENARIOS: dict[str, Callable[[str], Scenario]] = {
    "zigbee2mqtt": _z2m,
    "homeassistant": _ha,
    "tasmota": _tasmota,
    "shelly": _shelly,
    "homie": _homie,
}


def scenario(dialect: str) -> Scenario:
    """The dialect's scenario with unique topics, and its device id as the adapter itself names it."""
    s = SCENARIOS[dialect](uuid.uuid4().hex[:12])
    discovery = Discovery.model_validate(YAML(typ="safe").load(textwrap.dedent(s.discovery_yaml)) or {})
    adapter = build_adapters(discovery)[dialect]
    now = datetime.now(UTC)
    found = [
        e.device.id
        for topic, payload, retain in [*s.discovery, *s.announce]
        for e in adapter.feed(Message(topic, payload, retain), now)
        if isinstance(e, DeviceDiscovered)
    ]
    s.device_id = s.device_id or found[0]
    assert s.device_id in found, f"{dialect}: the fixture payloads do not describe {s.device_id}"
    return s


def home(broker: Mosquitto, s: Scenario) -> str:
    text = config_text(broker.url)
    return text.replace("discovery:\n", "discovery:\n  auto_adopt: true\n" + s.discovery_yaml)


async def publish(broker: Mosquitto, *messages: Pub) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for topic, payload, retain in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


@pytest.mark.parametrize("path", ["retained", "live"])
@pytest.mark.parametrize("dialect", list(SCENARIOS))
async def test_dialect_end_to_end(mosquitto: Mosquitto, tmp_path: Path, dialect: str, path: str) -> None:
    s = scenario(dialect)
    config = make_config(home(mosquitto, s), tmp_path)
    root = f"hub/{config.home.id}"
    dev = s.device_id
    if path == "retained":
        await publish(mosquitto, *s.discovery)  # the device was there before the hub
    async with (
        watching("127.0.0.1", mosquitto.port, f"{root}/#", s.command_topic) as w,
        running_hub(config, tmp_path / "data") as hub,
    ):
        if path == "live":
            await publish(mosquitto, *s.discovery)
        await publish(mosquitto, *s.announce)
        described = await w.wait_for(f"{root}/devices/{dev}", lambda d: d is not None)
        assert described["status"] == "adopted"
        # A state update arrives normalized on the hub API.
        await publish(mosquitto, s.state)
        state = await w.wait_for(f"{root}/devices/{dev}/state", lambda d: d and d["values"].get(s.point) == s.value)
        assert state["availability"]["state"] == "online"
        # A command comes out exactly as the device's own documentation prescribes.
        await publish(mosquitto, (f"{root}/devices/{dev}/set", json.dumps({"values": s.command}).encode(), False))
        s.check_command(await w.wait_raw(s.command_topic))
        # The device going offline shows in the state's availability.
        await publish(mosquitto, s.offline)
        offline = await w.wait_for(
            f"{root}/devices/{dev}/state", lambda d: d and d["availability"]["state"] == "offline"
        )
        assert offline["values"].get(s.point) == s.value  # the last value is kept
        if s.removal:  # Shelly's MQTT API has no removal message
            await publish(mosquitto, *s.removal)
            assert await w.wait_for(f"{root}/devices/{dev}", lambda d: d is None) is None
            assert hub.registry.get(dev) is None
        assert not [k for k in hub.counters if k.startswith("rejected.")], hub.counters


async def test_zigbee2mqtt_and_its_ha_discovery_copy_are_one_device(mosquitto: Mosquitto, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    base, prefix = f"z2m{uid}", f"ha{uid}"
    text = config_text(mosquitto.url).replace(
        "discovery:\n",
        f"discovery:\n  auto_adopt: true\n  zigbee2mqtt: {{base_topic: {base}}}\n"
        f"  homeassistant: {{prefix: {prefix}}}\n",
    )
    config = make_config(text, tmp_path)
    root = f"hub/{config.home.id}"
    name, ieee = "0x00124b001e73227f1", "0x00124b001e73227f"
    # What Zigbee2MQTT itself publishes with homeassistant: true for this plug.
    copy = {
        "name": None,
        "state_topic": f"{base}/{name}",
        "command_topic": f"{base}/{name}/set",
        "value_template": "{{ value_json.state }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "unique_id": f"{ieee}_switch_zigbee2mqtt",
        "device": {"identifiers": [f"zigbee2mqtt_{ieee}"], "name": name, "manufacturer": "SONOFF"},
    }
    devices = json.dumps(fixture("zigbee2mqtt/bridge_devices_real_network.json")["payload"]).encode()
    copy_msg = Message(f"{prefix}/switch/{ieee}/switch/config", json.dumps(copy).encode(), True)
    [seen] = build_adapters(Discovery.model_validate({"homeassistant": {"prefix": prefix}}))["homeassistant"].feed(
        copy_msg, datetime.now(UTC)
    )
    assert isinstance(seen, DeviceDiscovered)
    ha_id = seen.device.id
    async with (
        watching("127.0.0.1", mosquitto.port, f"{root}/#") as w,
        running_hub(config, tmp_path / "data") as hub,
    ):
        await publish(mosquitto, (copy_msg.topic, copy_msg.payload, True))
        await w.wait_for(f"{root}/devices/{ha_id}", lambda d: d is not None)
        await publish(mosquitto, (f"{base}/bridge/devices", devices, True))
        await w.wait_for(f"{root}/devices/z2m-{ieee}", lambda d: d is not None)
        await publish(mosquitto, (f"{base}/{name}", b'{"state":"ON"}', False))
        await w.wait_for(f"{root}/devices/z2m-{ieee}/state", lambda d: d and d["values"].get("switch") is True)
        same = [d for d in hub.registry.devices() if d.identifiers.get("ieee") == ieee]
        assert [d.id for d in same] == [f"z2m-{ieee}"]
        # The copy seen first was folded into the native device: its API entry is gone.
        assert await w.wait_for(f"{root}/devices/{ha_id}", lambda d: d is None) is None


HOSTILE_TOPICS = {
    "zigbee2mqtt": ["{base}/bridge/devices", "{base}/bridge/state", "{base}/bridge/event", "{base}/livingroom/window"],
    "homeassistant": ["{ha}/sensor/x/config", "{ha}/switch/y/z/config"],
    "tasmota": ["{tas}/AABBCCDDEEFF/config", "{tas}/AABBCCDDEEFF/sensors", "t{uid}/tele/STATE"],
    "shelly": ["sh{uid}/events/rpc", "sh{uid}/status/switch:0", "sh{uid}/online"],
    "homie": ["h{uid}/5/d{uid}/$description", "h{uid}/5/d{uid}/$state", "homie/d{uid}/$homie"],
}


async def test_hostile_input_is_counted_by_reason_and_the_hub_stays_up(mosquitto: Mosquitto, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:10]
    names = {"base": f"z2m{uid}", "ha": f"ha{uid}", "tas": f"tas{uid}/discovery", "uid": uid}
    text = config_text(mosquitto.url).replace(
        "discovery:\n",
        f"discovery:\n  auto_adopt: true\n  zigbee2mqtt: {{base_topic: {names['base']}}}\n"
        f"  homeassistant: {{prefix: {names['ha']}}}\n  tasmota: {{prefix: {names['tas']}}}\n",
    )
    text = text.replace("mqtt:\n", "mqtt:\n  max_payload_bytes: 65536\n")
    config = make_config(text, tmp_path)
    root = f"hub/{config.home.id}"
    rng = random.Random(7)
    payloads = [
        os.urandom(64),
        bytes(rng.randrange(256) for _ in range(300)),
        b"\xff\xfe\x00garbage",
        b"[" * 5000 + b"]" * 5000,  # deeply nested JSON
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b'{"truncated": [1, 2, ',
        b"x" * 70_000,  # beyond the configured size limit: refused before parsing
    ]
    bad = [(t.format(**names), p, False) for topics in HOSTILE_TOPICS.values() for t in topics for p in payloads]
    async with (
        watching("127.0.0.1", mosquitto.port, f"{root}/#") as w,
        running_hub(config, tmp_path / "data") as hub,
    ):
        await publish(mosquitto, *bad)
        # Still alive and still normalizing: a real device after the storm comes through.
        devices = json.dumps(fixture("zigbee2mqtt/bridge_devices_real_network.json")["payload"]).encode()
        await publish(mosquitto, (f"{names['base']}/bridge/devices", devices, False))
        await publish(mosquitto, (f"{names['base']}/livingroom/window", b'{"contact":true}', False))
        await w.wait_for(
            f"{root}/devices/z2m-0x00158d0001e1a85a/state", lambda d: d and d["values"].get("contact") is False
        )
        counted = {k: v for k, v in hub.counters.items() if k.startswith(("rejected.", "dropped."))}
    oversize = sum(len(t) for t in HOSTILE_TOPICS.values())
    assert counted["dropped.too_large"] == oversize
    reasons = {k.split(".")[2] for k in counted if k.startswith("rejected.")}
    assert {"not_utf8", "too_deep", "invalid_json"} <= reasons, counted
    assert {k.split(".")[1] for k in counted if k.startswith("rejected.")} >= {
        "zigbee2mqtt",
        "homeassistant",
        "tasmota",
        "shelly",
        "homie",
    }, counted
