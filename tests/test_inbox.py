"""The inbox end to end: real mDNS advertisements on 127.0.0.1, a real Mosquitto, the real hub."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zeroconf import ServiceInfo

from hub.model import Device, DeviceDiscovered, DeviceRemoved, Protocol, Status
from hub.registry import Forward, Registry, Unpublish
from tests.brokers import Mosquitto, free_port
from tests.hubctl import config_text, make_config, running_hub, until, watching
from tests.mdnsctl import advertiser, info, random_mac, tag, with_txt
from tests.test_hub import publish

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def mdns_home(broker_url: str | None, discovery: str = "", **kw: object) -> str:
    """A test home whose hub browses mDNS on 127.0.0.1 only."""
    text = config_text(broker_url, **kw)  # type: ignore[arg-type]
    return text.replace(
        "discovery:\n  mdns: {enabled: false}\n",
        f"discovery:\n  mdns: {{enabled: true, interfaces: ['127.0.0.1']}}\n{discovery}",
    )


def shelly(mac: str, *txt: str, addresses: tuple[str, ...] = ("10.1.2.3",)) -> ServiceInfo:
    return info(
        "_shelly._tcp.local.",
        f"shellyplus1pm-{mac}",
        ["gen=2", "app=Plus1PM", "ver=1.4.4", *txt],
        addresses=addresses,
    )


async def test_mdns_device_waits_in_the_inbox_then_is_adopted(mosquitto: Mosquitto, tmp_path: Path) -> None:
    mac = random_mac()
    dev_id = f"mdns-{mac.upper()}"
    config = make_config(mdns_home(mosquitto.url), tmp_path)
    root = f"hub/{config.home.id}"
    ad = shelly(mac)
    async with (
        running_hub(config, tmp_path / "data") as hub,
        watching("127.0.0.1", mosquitto.port, f"{root}/#") as w,
        advertiser() as adv,
    ):
        await adv.register(ad)
        pending = await w.wait_for(f"{root}/inbox/{dev_id}")
        # Where and when it was seen, and what its TXT said.
        assert pending["status"] == "pending"
        assert (pending["seen_via"], pending["address"]) == (["mdns _shelly._tcp"], "10.1.2.3")
        assert pending["availability"]["last_seen"] is not None
        assert (pending["manufacturer"], pending["model"], pending["firmware"]) == ("Shelly", "Plus1PM", "1.4.4")
        assert pending["identifiers"] == {"shelly_id": f"shellyplus1pm-{mac}", "mac": mac.upper()}
        assert not hub.registry.active(dev_id)
        # A command to a pending device is refused, with the reason on the events topic.
        await publish(mosquitto, f"{root}/devices/{dev_id}/set", json.dumps({"values": {"switch": True}}))
        failed = await w.wait_for(
            f"{root}/events", lambda d: d["type"] == "command_failed" and d["command"]["device_id"] == dev_id
        )
        assert "pending: adopt it" in failed["reason"]
        # New firmware and a new address: the same device, updated in place.
        await adv.update(with_txt(ad, ["gen=2", "app=Plus1PM", "ver=1.5.0"], addresses=["10.1.2.4"]))
        moved = await w.wait_for(
            f"{root}/inbox/{dev_id}",
            lambda d: d is not None and d["firmware"] == "1.5.0" and d["address"] == "10.1.2.4",
        )
        assert moved["id"] == dev_id
        assert [k for k in hub.registry.records if mac.upper() in k] == [dev_id]
        # Adopted through the hub API: out of the inbox, into the home.
        await publish(mosquitto, f"{root}/inbox/{dev_id}/adopt", json.dumps({"name": "Hall light", "room": "bedroom"}))
        adopted = await w.wait_for(f"{root}/devices/{dev_id}", lambda d: d is not None)
        assert (adopted["name"], adopted["room"], adopted["status"]) == ("Hall light", "bedroom", "adopted")
        assert await w.wait_for(f"{root}/inbox/{dev_id}", lambda d: d is None) is None
        assert hub.registry.active(dev_id)


async def test_ignored_device_stays_ignored_after_a_restart(mosquitto: Mosquitto, tmp_path: Path) -> None:
    mac, t = random_mac(), tag()
    dev_id = f"mdns-{mac.upper()}"
    config = make_config(mdns_home(mosquitto.url), tmp_path)
    root = f"hub/{config.home.id}"
    wled = info("_wled._tcp.local.", f"wled-{t}", [f"mac={mac}"])
    sentinel_mac = random_mac()
    sentinel = info("_wled._tcp.local.", f"sentinel-{t}", [f"mac={sentinel_mac}"])
    async with advertiser() as adv:
        await adv.register(wled)
        async with (
            watching("127.0.0.1", mosquitto.port, f"{root}/#") as w,
            running_hub(config, tmp_path / "data") as hub,
        ):
            await w.wait_for(f"{root}/inbox/{dev_id}", lambda d: d is not None)
            await publish(mosquitto, f"{root}/inbox/{dev_id}/ignore", b"{}")
            assert await w.wait_for(f"{root}/inbox/{dev_id}", lambda d: d is None) is None
            rec = hub.registry.get(dev_id)
            assert rec is not None
            assert rec.device.status is Status.IGNORED
        # A new hub on the same data, with the device still advertising itself.
        async with (
            watching("127.0.0.1", mosquitto.port, f"{root}/#") as w,
            running_hub(config, tmp_path / "data") as again,
        ):
            restored = again.registry.get(dev_id)
            assert restored is not None
            assert restored.device.status is Status.IGNORED  # restored from the store
            await until(lambda: again.mdns_browser is not None and wled.name in again.mdns_browser.present)
            # Sightings are applied in order: once the sentinel is in the inbox, the ignored
            # device's fresh sighting has been applied too.
            await adv.register(sentinel)
            await w.wait_for(f"{root}/inbox/mdns-{sentinel_mac.upper()}", lambda d: d is not None)
            after = again.registry.get(dev_id)
            assert after is not None
            assert after.device.status is Status.IGNORED
            assert not any(m.topic.value == f"{root}/inbox/{dev_id}" and m.payload for m in w.seen)


async def test_pending_device_not_seen_for_the_expiry_leaves_the_inbox(mosquitto: Mosquitto, tmp_path: Path) -> None:
    t = tag()
    gone_mac, stays_mac = random_mac(), random_mac()
    gone_id, stays_id = f"mdns-{gone_mac.upper()}", f"mdns-{stays_mac.upper()}"
    # 0.0005 h = 1.8 s: checked and refreshed every 0.45 s.
    config = make_config(mdns_home(mosquitto.url, "  pending_expiry_hours: 0.0005\n"), tmp_path)
    root = f"hub/{config.home.id}"
    gone = info("_wled._tcp.local.", f"gone-{t}", [f"mac={gone_mac}"])
    stays = info("_wled._tcp.local.", f"stays-{t}", [f"mac={stays_mac}"])
    async with (
        running_hub(config, tmp_path / "data") as hub,
        watching("127.0.0.1", mosquitto.port, f"{root}/#") as w,
        advertiser() as adv,
    ):
        await adv.register(gone, stays)
        await w.wait_for(f"{root}/inbox/{gone_id}", lambda d: d is not None)
        await w.wait_for(f"{root}/inbox/{stays_id}", lambda d: d is not None)
        await adv.unregister(gone)  # a goodbye alone does not empty the inbox; silence does
        removed = await w.wait_for(
            f"{root}/events", lambda d: d["type"] == "device_removed" and d["device_id"] == gone_id
        )
        assert "pending and not seen since" in removed["reason"]
        assert await w.wait_for(f"{root}/inbox/{gone_id}", lambda d: d is None) is None
        assert hub.registry.get(gone_id) is None
        # Still advertising: refreshed by the browser, so it stays however long the test takes.
        assert hub.registry.get(stays_id) is not None
        stored = {d.id for d in await asyncio.to_thread(hub.store.load_devices)}
        assert gone_id not in stored
        assert stays_id in stored


async def test_mdns_and_mqtt_sightings_of_one_shelly_become_one_device(mosquitto: Mosquitto, tmp_path: Path) -> None:
    mac = random_mac()
    native = f"shellyplus1pm-{mac}"
    mdns_id, shelly_id = f"mdns-{mac.upper()}", f"shelly-{native}"
    prefix = f"t{tag()}/plus1pm"
    config = make_config(mdns_home(mosquitto.url), tmp_path)
    root = f"hub/{config.home.id}"
    async with (
        running_hub(config, tmp_path / "data") as hub,
        watching("127.0.0.1", mosquitto.port, f"{root}/#") as w,
        advertiser() as adv,
    ):
        await adv.register(shelly(mac, f"id={native}", addresses=("10.1.2.5",)))
        await w.wait_for(f"{root}/inbox/{mdns_id}", lambda d: d is not None)
        frame = {
            "src": native,
            "dst": f"{prefix}/events",
            "method": "NotifyStatus",
            "params": {"ts": 1.0, "switch:0": {"id": 0, "output": True}},
        }
        await publish(mosquitto, f"{prefix}/events/rpc", json.dumps(frame))
        merged = await w.wait_for(
            f"{root}/inbox/{shelly_id}", lambda d: d is not None and "mdns _shelly._tcp" in d["seen_via"]
        )
        # The native MQTT path describes it; mDNS adds where it is.
        assert set(merged["seen_via"]) == {"mdns _shelly._tcp", "shelly"}
        assert merged["address"] == "10.1.2.5"
        assert merged["identifiers"]["mac"] == mac.upper()
        assert merged["points"]  # from the MQTT path: mDNS knows no points
        # The copy's inbox entry is gone: one device, reachable by either id.
        assert await w.wait_for(f"{root}/inbox/{mdns_id}", lambda d: d is None) is None
        assert hub.registry.get(mdns_id) is hub.registry.get(shelly_id)
        assert [d.id for d in hub.registry.devices() if mac.upper() in d.identifiers.get("mac", "")] == [shelly_id]
        # Still pending: its switch takes no command until an installer adopts it.
        await publish(mosquitto, f"{root}/devices/{shelly_id}/set", json.dumps({"values": {"switch": False}}))
        failed = await w.wait_for(
            f"{root}/events", lambda d: d["type"] == "command_failed" and d["command"]["device_id"] == shelly_id
        )
        assert "pending" in failed["reason"]


async def test_hub_without_a_broker_uses_one_advertised_over_mdns(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = make_config(mdns_home(None, local_port=free_port()), tmp_path)
    async with advertiser() as adv:
        await adv.register(info("_mqtt._tcp.local.", f"Home broker {tag()}", [], port=mosquitto.port))
        async with running_hub(config, tmp_path / "data") as hub:
            assert hub.broker_url == f"mqtt://127.0.0.1:{mosquitto.port}"


# ---- the registry's expiry, pure --------------------------------------------------------


def test_expire_forgets_only_pending_devices_silent_for_too_long() -> None:
    reg = Registry(decisions={"mdns-B": Status.IGNORED, "mdns-C": Status.ADOPTED})
    for dev_id in ("mdns-A", "mdns-B", "mdns-C"):
        reg.apply(DeviceDiscovered(ts=T0, device=Device(id=dev_id, name=dev_id, protocol=Protocol.MDNS)))
    reg.apply(
        DeviceDiscovered(ts=T0 + timedelta(hours=2), device=Device(id="mdns-D", name="D", protocol=Protocol.MDNS))
    )
    assert reg.expire(T0 + timedelta(hours=1), timedelta(hours=2)) == []
    effects = reg.expire(T0 + timedelta(hours=3), timedelta(hours=2))
    assert effects[0] == Unpublish("mdns-A")
    assert isinstance(effects[1], Forward)
    assert isinstance(effects[1].event, DeviceRemoved)
    assert len(effects) == 2
    assert [d.id for d in reg.devices()] == ["mdns-B", "mdns-C", "mdns-D"]
    # A fresh sighting moves last_seen on without a new discovery event.
    again = reg.apply(
        DeviceDiscovered(ts=T0 + timedelta(hours=4), device=Device(id="mdns-D", name="D", protocol=Protocol.MDNS))
    )
    assert [type(e).__name__ for e in again] == ["PublishDevice"]
    assert reg.expire(T0 + timedelta(hours=5), timedelta(hours=2)) == []
