"""The whole path end to end: devices.yaml → broker → adapters → registry → hub API and store."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hub.model import Device, Protocol
from hub.registry import PublishDevice
from hub.sim.dialects import build
from hub.sim.load import announcements, load_specs
from hub.store import Store, StoreError
from hub.supervisor import _Waiter
from tests import captures
from tests.brokers import Mosquitto, free_port, wait_port
from tests.hubctl import WAIT, config_text, hub_process, make_config, running_hub, until, watching

FIXTURES = captures.FIXTURES
SWITCH = "z2m-0x00124b001e73227f"  # BASICZBR3 relay, friendly name 0x00124b001e73227f1
WINDOW = "z2m-0x00158d0001e1a85a"  # MCCGQ01LM contact, friendly name livingroom/window


def bridge_devices() -> bytes:
    return json.dumps(
        json.loads((FIXTURES / "zigbee2mqtt" / "bridge_devices_real_network.json").read_text())["payload"]
    ).encode()


def z2m_home(broker_url: str | None, base: str, **kw: Any) -> str:
    extra = f"devices:\n  - {{id: {SWITCH}, name: Kettle plug, room: kitchen, role: kettle}}\n"
    text = config_text(broker_url, extra=extra, **kw)
    return text.replace("discovery:\n", f"discovery:\n  zigbee2mqtt: {{base_topic: {base}}}\n")


async def publish(broker: Mosquitto, topic: str, payload: bytes | str, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def test_retained_device_reaches_the_api_and_obeys_a_command(mosquitto: Mosquitto, tmp_path: Path) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    config = make_config(z2m_home(mosquitto.url, base), tmp_path)
    root = f"hub/{config.home.id}"
    # Retained discovery and state exist before the hub starts: the retained path.
    await publish(mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
    await publish(mosquitto, f"{base}/0x00124b001e73227f1", b'{"state":"ON","linkquality":18}', retain=True)
    async with (
        watching("127.0.0.1", mosquitto.port, f"{root}/#", f"{base}/+/set") as w,
        running_hub(config, tmp_path / "data") as hub,
    ):
        state = await w.wait_for(f"{root}/devices/{SWITCH}/state", lambda d: d and d["values"].get("switch") is True)
        assert state["availability"]["state"] == "online"
        device = await w.wait_for(f"{root}/devices/{SWITCH}")
        assert (device["name"], device["room"], device["role"], device["status"]) == (
            "Kettle plug",
            "kitchen",
            "kettle",
            "adopted",
        )
        # A normalized command comes out exactly as Zigbee2MQTT documents it.
        await publish(mosquitto, f"{root}/devices/{SWITCH}/set", json.dumps({"values": {"switch": False}}))
        sent = await w.wait_for(f"{base}/0x00124b001e73227f1/set")
        assert sent == {"state": "OFF"}
        # The device reports back; the API state follows.
        await publish(mosquitto, f"{base}/0x00124b001e73227f1", b'{"state":"OFF"}')
        await w.wait_for(f"{root}/devices/{SWITCH}/state", lambda d: d and d["values"].get("switch") is False)
        # Unnamed devices wait in the inbox.
        pending = await w.wait_for(f"{root}/inbox/{WINDOW}")
        assert pending["status"] == "pending"
        assert hub.registry.active(SWITCH)
        assert not hub.registry.active(WINDOW)


async def test_pending_device_refuses_commands_until_adopted(mosquitto: Mosquitto, tmp_path: Path) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    config = make_config(z2m_home(mosquitto.url, base), tmp_path)
    root = f"hub/{config.home.id}"
    async with (
        running_hub(config, tmp_path / "data") as hub,
        watching("127.0.0.1", mosquitto.port, f"{root}/#", f"{base}/+/+/set") as w,
    ):
        # The live path: the bridge announces its devices after the hub is up.
        await publish(mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
        await w.wait_for(f"{root}/inbox/{WINDOW}")
        refused = hub.counters["request_rejected.refused"]
        await publish(mosquitto, f"{root}/devices/{WINDOW}/set", json.dumps({"values": {"contact": True}}))
        await publish(mosquitto, f"{root}/devices/{WINDOW}/set", b"{not json")
        await publish(mosquitto, f"{root}/inbox/{WINDOW}/adopt", json.dumps({"name": "Window", "room": "bedroom"}))
        adopted = await w.wait_for(f"{root}/devices/{WINDOW}", lambda d: d is not None)
        assert (adopted["name"], adopted["room"], adopted["status"]) == ("Window", "bedroom", "adopted")
        assert await w.wait_for(f"{root}/inbox/{WINDOW}", lambda d: d is None) is None  # cleared
        assert hub.counters["request_rejected.refused"] == refused + 1
        assert hub.counters["request_rejected.invalid_json"] == 1
        # Adoption is stored: a new hub on the same data restores it without devices.yaml naming it.
    async with running_hub(config, tmp_path / "data") as again:
        rec = again.registry.get(WINDOW)
        assert rec is not None
        assert (rec.device.status.value, rec.device.name, rec.device.room) == ("adopted", "Window", "bedroom")


async def test_bad_requests_are_counted_never_fatal(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = make_config(config_text(mosquitto.url), tmp_path)
    root = f"hub/{config.home.id}"
    async with running_hub(config, tmp_path / "data") as hub:
        for topic, payload in [
            (f"{root}/devices/nope/set", json.dumps({"values": {"x": 1}})),
            (f"{root}/devices/nope/set", json.dumps({"valeus": {"x": 1}})),
            (f"{root}/inbox/nope/ignore", b"[]"),
            (f"{root}/mode/set", json.dumps({"mode": "party"})),
            (f"{root}/mode/set", b"\xff\xfe"),
        ]:
            await publish(mosquitto, topic, payload)
        async with watching("127.0.0.1", mosquitto.port, f"{root}/mode") as w:
            await publish(mosquitto, f"{root}/mode/set", json.dumps({"mode": "sleep"}))
            assert (await w.wait_for(f"{root}/mode", lambda d: d["mode"] == "sleep"))["mode"] == "sleep"
        rejected = {k: v for k, v in hub.counters.items() if k.startswith("request_rejected")}
        assert rejected == {
            "request_rejected.refused": 1,
            "request_rejected.invalid_payload": 3,
            "request_rejected.invalid_json": 1,
        }


async def test_a_chattering_device_shows_its_last_state_and_every_change_goes_to_events(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    config = make_config(z2m_home(mosquitto.url, base), tmp_path)
    root = f"hub/{config.home.id}"
    state_topic = f"{root}/devices/{SWITCH}/state"
    await publish(mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
    async with (
        watching("127.0.0.1", mosquitto.port, state_topic, f"{root}/events") as w,
        running_hub(config, tmp_path / "data") as hub,
    ):
        await until(lambda: hub.registry.get(SWITCH) is not None)
        reports = 40
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for n in range(reports):  # one connection, in order, as fast as the broker takes them
                await client.publish(f"{base}/0x00124b001e73227f1", json.dumps({"linkquality": n}))
        last = await w.wait_for(state_topic, lambda d: d and d["values"].get("linkquality") == reports - 1)
        assert last["availability"]["state"] == "online"
        await w.wait_for(f"{root}/events", lambda d: d["values"].get("linkquality") == reports - 1)
        states = [json.loads(m.payload) for m in w.seen if m.topic.value == state_topic]  # type: ignore[arg-type]
        events = [json.loads(m.payload) for m in w.seen if m.topic.value == f"{root}/events"]  # type: ignore[arg-type]
        changes = [d["values"] for d in events if d["type"] == "state_changed" and d["device_id"] == SWITCH]
    # The state topic took the first report at once and then one a window, ending on the last;
    # the events stream carried every change, in order.
    assert states[0]["values"]["linkquality"] == 0
    assert len(states) < reports / 2
    assert changes == [{"linkquality": n} for n in range(reports)]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    return path


async def test_sigterm_flushes_history_and_says_offline(mosquitto: Mosquitto, tmp_path: Path) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    text = z2m_home(mosquitto.url, base).replace("batch_seconds: 0.05", "batch_seconds: 30")
    path = write_config(tmp_path, text)
    home = make_config(text, tmp_path).home.id
    root = f"hub/{home}"
    async with watching("127.0.0.1", mosquitto.port, f"{root}/#") as w:
        with hub_process(path, tmp_path / "data") as proc:
            await w.wait_for(f"{root}/status", lambda d: d and d["state"] == "online")
            await publish(mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
            for n in range(20):
                # The last message carries a marker, so that waiting for it means all 20 were handled.
                change = {"state": "ON" if n % 2 else "OFF", "linkquality": 77 if n == 19 else n}
                await publish(mosquitto, f"{base}/0x00124b001e73227f1", json.dumps(change))
            await w.wait_for(f"{root}/devices/{SWITCH}/state", lambda d: d and d["values"].get("linkquality") == 77)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, WAIT) == 0
        status = await w.wait_for(f"{root}/status", lambda d: d and d["state"] == "offline")
        assert status["state"] == "offline"
    # 20 changes were buffered under a 30 s batch window: SIGTERM wrote every one.
    store = Store(f"sqlite:///{tmp_path / 'data' / 'hub.db'}")
    store.open()
    try:
        assert store.count("state") >= 20
        assert SWITCH in store.last_states()
    finally:
        await store.close()


async def test_sigkill_leaves_the_will_and_a_restart_restores_devices(mosquitto: Mosquitto, tmp_path: Path) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    text = z2m_home(mosquitto.url, base)
    path = write_config(tmp_path, text)
    root = f"hub/{make_config(text, tmp_path).home.id}"
    async with watching("127.0.0.1", mosquitto.port, f"{root}/status", f"{root}/inbox/+") as w:
        with hub_process(path, tmp_path / "data") as proc:
            await w.wait_for(f"{root}/status", lambda d: d and d["state"] == "online")
            await publish(mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
            # A device is stored before the API shows it, so seeing it is enough.
            await w.wait_for(f"{root}/inbox/{WINDOW}", lambda d: d is not None)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        status = await w.wait_for(f"{root}/status", lambda d: d and d["state"] == "offline")
        assert status["state"] == "offline"  # the broker published the last will
    assert _count_devices(tmp_path / "data" / "hub.db") >= 2


def _count_devices(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("select count(*) from device").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


async def test_no_broker_anywhere_starts_the_embedded_one(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here: the hub must bring its own broker
    text = config_text(None, local_port=port)
    path = write_config(tmp_path, text)
    root = f"hub/{make_config(text, tmp_path).home.id}"
    with hub_process(path, tmp_path / "data") as proc:
        await asyncio.to_thread(wait_port, port)
        async with watching("127.0.0.1", port, f"{root}/status") as w:
            status = await w.wait_for(f"{root}/status", lambda d: d and d["state"] == "online")
            assert status["broker"] == f"mqtt://127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, WAIT) == 0
        out = proc.stdout.read().decode() if proc.stdout else ""
    assert "embedded" in out


async def test_broker_restart_republishes_the_api(own_mosquitto: Mosquitto, tmp_path: Path) -> None:
    own_mosquitto.start()
    base = f"z2m{uuid.uuid4().hex[:8]}"
    config = make_config(z2m_home(own_mosquitto.url, base), tmp_path)
    root = f"hub/{config.home.id}"
    async with running_hub(config, tmp_path / "data"):
        own_mosquitto.stop()
        own_mosquitto.start()  # no persistence: every retained message is gone
        async with watching("127.0.0.1", own_mosquitto.port, f"{root}/#") as w:
            # Only a reconnected hub can have put these back on the new broker.
            device = await w.wait_for(f"{root}/devices/{SWITCH}")
            assert device["name"] == "Kettle plug"
            assert (await w.wait_for(f"{root}/status"))["state"] == "online"
            # Subscriptions came back too: discovery after the restart reaches the hub.
            await publish(own_mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
            await w.wait_for(f"{root}/inbox/{WINDOW}")


@pytest.mark.parametrize("bad", ["home: [", "home: {id: x y}"])
def test_hub_run_refuses_a_broken_config_with_located_errors(tmp_path: Path, bad: str) -> None:
    import subprocess
    import sys

    path = write_config(tmp_path, bad)
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "-c", str(path), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{path}:1:" in done.stderr


async def test_retained_discoveries_are_each_stored_before_shown_in_a_few_commits(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    own_mosquitto.start()
    count = 200  # of the four dialects whose discovery is retained
    boot = announcements([build(s) for s in load_specs(count, "retained")], datetime.now(UTC))
    async with aiomqtt.Client("127.0.0.1", own_mosquitto.port) as client:
        for msg in boot:
            if msg.retain:
                await client.publish(msg.topic, msg.payload, qos=1, retain=True)
    text = config_text(own_mosquitto.url).replace("discovery:\n", "discovery:\n  auto_adopt: true\n")
    config = make_config(text, tmp_path)
    shown: set[str] = set()
    stored: set[str] = set()  # as last read from the database
    async with aiomqtt.Client("127.0.0.1", own_mosquitto.port) as client:
        await client.subscribe(f"hub/{config.home.id}/devices/+")
        async with running_hub(config, tmp_path / "data") as hub, asyncio.timeout(WAIT):
            async for msg in client.messages:
                device_id = msg.topic.value.rsplit("/", 1)[1]
                if device_id not in shown:
                    shown.add(device_id)
                    # Shown only once committed: another reader of the database finds it already.
                    # (Read again only for a device not seen there yet: a read per device made
                    # this test 200 reads of 200 devices, near its time limit on a busy machine.)
                    if device_id not in stored:
                        stored = {d.id for d in await asyncio.to_thread(hub.store.load_devices)}
                    assert device_id in stored
                if len(shown) == count:
                    break
            # One transaction per burst, not one per device.
            assert hub.store.stats["durable_writes"] < count // 4


async def test_each_caller_is_told_once_its_own_effects_are_stored_across_rounds(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rounds of 16: the callers' effects (5, 40 and 7 devices) straddle rounds.
    monkeypatch.setattr("hub.supervisor.EFFECTS_PER_ROUND", 16)
    config = make_config(config_text(mosquitto.url), tmp_path)
    async with running_hub(config, tmp_path / "data") as hub:

        async def carry(group: str, n: int) -> set[str]:
            devices = [Device(id=f"config-{group}{i}", name=f"{group} {i}", protocol=Protocol.CONFIG) for i in range(n)]
            await hub._carry_out([PublishDevice(d) for d in devices])
            stored = {d.id for d in await asyncio.to_thread(hub.store.load_devices)}
            return {d.id for d in devices} - stored  # what the caller was told of too early

        early = await asyncio.wait_for(asyncio.gather(carry("a", 5), carry("b", 40), carry("c", 7)), WAIT)
    assert early == [set(), set(), set()]


async def test_a_device_is_published_as_it_was_saved_and_an_unsaved_earlier_version_as_itself(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # The hub publishes the JSON the store wrote rather than dumping the device again; a device
    # described twice in one round is saved once (its last version) and shown twice, in order.
    config = make_config(config_text(mosquitto.url), tmp_path)
    root = f"hub/{config.home.id}"
    first = Device(id="config-lamp", name="Lamp", protocol=Protocol.CONFIG)
    second = first.model_copy(update={"name": "Hall lamp", "room": "hallway"})
    async with running_hub(config, tmp_path / "data") as hub:
        async with watching("127.0.0.1", mosquitto.port, f"{root}/inbox/config-lamp") as w:
            await hub._carry_out([PublishDevice(first), PublishDevice(second)])
            await w.wait_for(f"{root}/inbox/config-lamp", lambda d: d["name"] == "Hall lamp")
            assert [json.loads(m.payload)["name"] for m in w.seen] == ["Lamp", "Hall lamp"]
        with hub.store.engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT description FROM device WHERE id = 'config-lamp'").one()
        assert json.loads(row[0]) == json.loads(second.model_dump_json()) == second.model_dump(mode="json")


def test_a_caller_whose_effects_straddle_rounds_hears_of_a_failed_earlier_round() -> None:
    loop = asyncio.new_event_loop()
    try:
        waiter = _Waiter(10, 20, loop.create_future())
        assert waiter.shift(16)  # round 1 took queue[0:16]: six of its effects
        waiter.error = StoreError("disk full")  # and failed
        assert (waiter.start, waiter.end) == (0, 4)
        waiter.tell(None)  # round 2 carried out its last four
        with pytest.raises(StoreError, match="disk full"):
            waiter.done.result()
    finally:
        loop.close()
