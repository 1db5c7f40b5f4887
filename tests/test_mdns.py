"""mDNS discovery: TXT parsers on the fixtures and on bad input, and real zeroconf advertisements on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from zeroconf import DNSOutgoing, DNSPointer
from zeroconf.const import _CLASS_IN, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_PTR

from hub import mdns
from hub.broker import choose_broker
from hub.model import Protocol
from tests.brokers import free_port
from tests.mdnsctl import LOOPBACK, advertiser, collecting, fixture, info, named, random_mac, tag, with_txt

# ---- pure: the fixtures -----------------------------------------------------------------

EXPECTED: dict[str, dict[str, Any]] = {
    "esphome_avahi_browse_line.json": {
        "ids": {"mac": "84FCE6C66BC0"},
        "manufacturer": "ESPHome",
        "model": "lolin_s2_mini",
        "firmware": "ESPHome 2026.8.2",
        "friendly_name": "StairLights",
    },
    "esphome_avahi_browse_minimal_mac_only.json": {"ids": {"mac": "04830858E1D0"}, "firmware": None},
    "googlecast_nest_hub_avahi.json": {"category": "display", "model": "Google Nest Hub", "ids": {}},
    "googlecast_nest_mini_avahi.json": {"category": "speaker", "friendly_name": "Speaker"},
    "hap_eufy_homebase2_real_packet.json": {
        "ids": {"homekit_id": "38:71:4F:6B:76:00"},
        "category": "bridge",
        "paired": False,
        "model": "T8010",
    },
    "hap_tradfri_gateway_real_capture.json": {"paired": True, "model": "TRADFRI gateway"},
    "hue_bridge_txt.json": {
        "ids": {"hue_bridge_id": "ECB5FAFFFE2CA569", "mac": "ECB5FA2CA569"},
        "model": "BSB002",
        "category": "bridge",
    },
    "matterc_commissionable_avahi_publish_example.json": {
        "ids": {"matter_discriminator": "65521:32769:3840"},
        "manufacturer": "Matter vendor 0xFFF1",
        "paired": False,
    },
    "matterc_commissionable_go_mdns_doc.json": {"ids": {"matter_discriminator": "65521:32769:3840"}},
    "shelly_gen2_plus1pm_txt_test.json": {
        "ids": {"shelly_id": "shellyplus1pm-a8032ab1c2d3", "mac": "A8032AB1C2D3"},
        "model": "Plus1PM",
        "firmware": "1.4.4",
        "category": "shelly gen2",
    },
    # No `id` in this TXT: the instance label names the device.
    "shelly_gen2_pro4pm_txt_test.json": {"ids": {"shelly_id": "shellypro4pm-f008d1d8b8b8", "mac": "F008D1D8B8B8"}},
    "wled_avahi_browse.json": {"ids": {"mac": "AABBCC44559F"}, "category": "light", "manufacturer": "WLED"},
}


def from_fixture(name: str) -> mdns.Sighting | None:
    d = fixture(name)
    label = d["instance_name"][0] if isinstance(d["instance_name"], list) else d["instance_name"]
    full = label if label.endswith(d["service_type"]) else f"{label}.{d['service_type']}"
    return mdns.sighting(
        d["service_type"],
        full,
        host=d["server"],
        addresses=d["addresses"],
        port=d["port"],
        txt=mdns.encode_txt(d["txt"]),
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_txt_is_parsed_into_what_the_hub_can_know(name: str) -> None:
    s = from_fixture(name)
    assert s is not None
    for attr, want in EXPECTED[name].items():
        assert getattr(s, attr) == want, attr
    assert s.txt.problems == ()
    dev = mdns.to_device([s])
    assert dev is not None
    assert dev.protocol is Protocol.MDNS
    assert dev.id.startswith("mdns-")
    assert dev.seen_via == (f"mdns {s.short}",)


def test_matter_operational_instance_is_one_node_per_fabric() -> None:
    s = from_fixture("matter_operational_ptrs_real_packet.json")
    assert s is not None
    assert (s.ids, s.paired) == ({"matter_node": "A3604AF531F86DB7-0000000000000066"}, True)


@pytest.mark.parametrize("name", ["sonos_real_packet.json", "androidtv_remote_real_packet.json"])
def test_types_outside_the_catalogue_are_not_sightings(name: str) -> None:
    assert from_fixture(name) is None


def test_http_only_keeps_shelly_devices() -> None:
    gen1 = mdns.sighting(
        "_http._tcp.local.", "shelly1pm-A1B2C3._http._tcp.local.", host=None, addresses=[], port=80, txt=b""
    )
    assert gen1 is not None
    assert gen1.ids == {"shelly_id": "shelly1pm-a1b2c3"}
    assert gen1.category == "shelly gen1"
    printer = mdns.sighting("_http._tcp.local.", "Printer._http._tcp.local.", host=None, addresses=[], port=80, txt=b"")
    assert printer is None


def test_broker_is_a_sighting_but_never_a_device() -> None:
    s = mdns.sighting(
        "_mqtt._tcp.local.", "Mosquitto._mqtt._tcp.local.", host="h", addresses=["10.0.0.2"], port=1883, txt=b""
    )
    assert s is not None
    assert s.category == "mqtt broker"
    assert mdns.to_device([s]) is None


# ---- pure: bad TXT and names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "entries", "problem"),
    [
        (b"\x05gen=2\x09ver=1", {"gen": "2"}, "cut off"),
        (b"\x05gen=2\x06ver=\xff\xfe", {"gen": "2", "ver": "\ufffd\ufffd"}, "not UTF-8"),
        (b"\x05gen=2\x05GEN=3", {"gen": "2"}, "duplicate key 'GEN'"),
        (b"\x02=x\x05gen=2", {"gen": "2"}, "empty key"),
        (b"\x05g\xe9n=2\x05gen=2", {"gen": "2"}, "not printable ASCII"),
        (b"\x00", {}, None),
        (b"", {}, None),
        (b"\x04flag", {"flag": ""}, None),
        (mdns.encode_txt(["fn=a\x1b[2Jb"]), {"fn": "a\ufffd[2Jb"}, None),  # no terminal escapes get through
        (bytes([200]) + b"x" * 200 + b"\x05gen=2", {"x" * 200: "", "gen": "2"}, None),
    ],
)
def test_bad_txt_is_parsed_as_far_as_it_can_be(raw: bytes, entries: dict[str, str], problem: str | None) -> None:
    txt = mdns.parse_txt(raw)
    assert txt.as_dict() == entries
    if problem is None:
        assert txt.problems == ()
    else:
        assert any(problem in p for p in txt.problems), txt.problems


def test_oversized_txt_and_too_many_entries_are_bounded() -> None:
    big = mdns.parse_txt(b"".join(bytes([250]) + f"k{i:02d}=".encode() + b"v" * 246 for i in range(20)))
    assert len(big.entries) == mdns.MAX_TXT_BYTES // 251
    assert "only the first" in big.problems[0]
    many = mdns.parse_txt(b"".join(bytes([4]) + f"k{i:03d}".encode() for i in range(100)))
    assert len(many.entries) == mdns.MAX_TXT_ENTRIES
    assert any("more than" in p for p in many.problems)
    assert many.get("K000") == ""  # RFC 6763 §6.4: keys match case-insensitively


def test_names_with_dots_slashes_and_cjk_give_distinct_topic_safe_ids() -> None:
    ids = set()
    for label in ["客厅 灯", "a.b/c", "a.b+c", "a.b#c", "Living\\032Room", "TV Beneden (2)"]:
        s = mdns.sighting(
            "_googlecast._tcp.local.",
            f"{label}._googlecast._tcp.local.",
            host=None,
            addresses=[],
            port=8009,
            txt=b"\x06md=Hub",
        )
        assert s is not None
        assert s.name == label
        dev_id = mdns.stable_id(s)
        assert not set("/+# ") & set(dev_id), dev_id
        ids.add(dev_id)
    assert len(ids) == 6
    cjk = mdns.sighting(
        "_googlecast._tcp.local.", "客厅._googlecast._tcp.local.", host=None, addresses=[], port=1, txt=b""
    )
    assert cjk is not None
    assert mdns.stable_id(cjk) == "mdns-googlecast-客厅"


def test_services_of_one_device_make_one_device_until_the_last_says_goodbye() -> None:
    mac = random_mac()
    shelly = mdns.sighting(
        "_shelly._tcp.local.",
        f"shellyplus1pm-{mac}._shelly._tcp.local.",
        host="h.local.",
        addresses=["10.0.0.7"],
        port=80,
        txt=mdns.encode_txt(["gen=2", "app=Plus1PM", "ver=1.4.4"]),
    )
    http = mdns.sighting(
        "_http._tcp.local.",
        f"shellyplus1pm-{mac}._http._tcp.local.",
        host="h.local.",
        addresses=["10.0.0.7"],
        port=80,
        txt=mdns.encode_txt(["gen=2", "fw_id=x"]),
    )
    assert shelly is not None
    assert http is not None
    devices = mdns.Devices()
    devices.apply(mdns.Found(http))
    dev = devices.apply(mdns.Found(shelly))
    assert dev is not None
    assert dev.id == f"mdns-{mac.upper()}"
    assert dev.seen_via == ("mdns _http._tcp", "mdns _shelly._tcp")
    assert (dev.model, dev.firmware, dev.address) == ("Plus1PM", "1.4.4", "10.0.0.7")  # _shelly._tcp describes it
    assert len(devices.present()) == 1
    after = devices.apply(mdns.Lost(shelly))
    assert after is not None
    assert after.seen_via == ("mdns _http._tcp",)
    assert devices.apply(mdns.Lost(http)) is None
    assert devices.present() == []


def test_interfaces_are_picked_by_address_or_name_and_problems_named() -> None:
    lo = mdns.Interface("lo", "127.0.0.1", True, False, True)
    eth = mdns.Interface("eth0", "192.168.1.10", True, True, False)
    down = mdns.Interface("wlan0", "192.168.2.10", False, True, False)
    nomc = mdns.Interface("tun0", "10.8.0.2", True, False, False)
    assert mdns.pick_interfaces([], [lo, eth, down, nomc]) == ([eth], [])
    assert mdns.pick_interfaces(["127.0.0.1", "eth0"], [lo, eth]) == ([lo, eth], [])
    chosen, problems = mdns.pick_interfaces(["10.9.9.9"], [lo, eth])
    assert chosen == []
    assert "no IPv4 interface is '10.9.9.9'" in problems[0]
    assert mdns.pick_interfaces([], [lo])[1] == ["no non-loopback IPv4 interface that is up and multicast-capable"]
    assert [i.note() for i in (lo, eth, down, nomc)] == [
        "loopback: reaches only programs on this machine",
        "up, multicast",
        "interface is down",
        "no MULTICAST flag: mDNS cannot work on it",
    ]


def test_empty_report_says_why() -> None:
    eth = mdns.Interface("eth0", "192.168.1.10", True, False, False)
    report = mdns.Report(
        [eth], [], ("_hap._tcp.local.",), 2.0, answered=["_ipp._tcp.local."], counters={"unresolved": 2}
    )
    text = mdns.report_text(report)
    for part in [
        "Nothing found in 2 s.",
        "eth0 192.168.1.10: no MULTICAST flag",
        "Service types asked for: _hap._tcp",
        "Service types that answered: _ipp._tcp",
        "2 service(s) announced themselves but did not resolve",
    ]:
        assert part in text


async def test_broker_choice_prefers_an_advertised_broker_and_says_why() -> None:
    port = free_port()

    async def found() -> tuple[str, int, str]:
        return "10.0.0.5", 1883, "Attic broker"

    async def none() -> None:
        return None

    choice = await choose_broker(None, port=port, find=found)
    assert (choice.kind, choice.url) == ("advertised", "mqtt://10.0.0.5:1883")
    assert "'Attic broker' advertises _mqtt._tcp" in choice.reason
    fallback = await choose_broker(None, port=port, find=none, probe_timeout=0.2)
    assert fallback.kind == "embedded"
    assert "none advertised over mDNS" in fallback.reason
    configured = await choose_broker("mqtt://10.0.0.9:1883", find=found)
    assert configured.kind == "configured"


# ---- real advertisements on 127.0.0.1 ---------------------------------------------------


def catalogue_services(t: str) -> dict[str, tuple[Any, str]]:
    """One advertisement per catalogue entry (fixture TXT; unique labels), and the device id it must give."""
    mac = random_mac()
    node = f"A3604AF531F86DB7-{t.upper()}0000000066"[:33]
    rows: dict[str, tuple[Any, str]] = {}
    for name in [
        "shelly_gen2_plus1pm_txt_test.json",
        "esphome_avahi_browse_line.json",
        "hap_eufy_homebase2_real_packet.json",
        "matterc_commissionable_avahi_publish_example.json",
        "hue_bridge_txt.json",
        "googlecast_nest_hub_avahi.json",
        "wled_avahi_browse.json",
    ]:
        d = fixture(name)
        st = d["service_type"]
        label = d["instance_name"].removesuffix("." + st).removesuffix("." + st.rstrip("."))
        txt = list(d["txt"])
        if st == "_shelly._tcp.local.":
            label, txt = f"shellyplus1pm-{mac}", [*txt[:2], f"id=shellyplus1pm-{mac}", txt[3]]
        else:
            label = f"{label} {t}"
        addresses = [a for a in d["addresses"] if ":" not in a] or ["127.0.0.1"]
        i = info(st, label, txt, port=d["port"] or 80, addresses=addresses)
        s = mdns.sighting(st, i.name, host=None, addresses=[], port=None, txt=i.text)
        assert s is not None
        rows[st] = (i, mdns.stable_id(s))
    rows["_matter._tcp.local."] = (info("_matter._tcp.local.", node, [], port=5540), f"mdns-{node}")
    rows["_mqtt._tcp.local."] = (info("_mqtt._tcp.local.", f"Broker {t}", [], port=1883), "")
    rows["_http._tcp.local."] = (
        info("_http._tcp.local.", f"shelly1-{t}", ["fw_id=20230913"], port=80),
        f"mdns-shelly1-{t}",
    )
    return rows


async def test_every_catalogue_entry_is_found_updated_and_lost() -> None:
    t = tag()
    rows = catalogue_services(t)
    assert set(rows) == set(mdns.CATALOGUE)
    printer = info("_http._tcp.local.", f"Printer {t}", ["path=/"], port=631)
    async with (
        mdns.Browser(LOOPBACK, types=tuple(mdns.CATALOGUE)) as browser,
        collecting(browser) as seen,
        advertiser() as adv,
    ):
        await adv.register(*(i for i, _ in rows.values()), printer)
        for st, (i, dev_id) in rows.items():
            found = await seen.wait_for(named(mdns.Found, i.name))
            assert found.sighting.service_type == st
            if dev_id:
                assert mdns.stable_id(found.sighting) == dev_id
        # TXT updates: a new firmware (or any new key) is an Updated of the same service.
        await adv.update(*(with_txt(i, i.text.rstrip(b"\x00") + mdns.encode_txt(["fw=2"])) for i, _ in rows.values()))
        for i, dev_id in rows.values():
            upd = await seen.wait_for(named(mdns.Updated, i.name))
            assert upd.sighting.txt.get("fw") == "2"
            assert upd.before.txt.get("fw") is None
            if dev_id:
                assert mdns.stable_id(upd.sighting) == dev_id  # same device after the change
        # Goodbyes: every one is Lost.
        await adv.unregister(*adv.registered)
        for i, _ in rows.values():
            await seen.wait_for(named(mdns.Lost, i.name))
        assert printer.name in browser.skipped
        assert browser.counters["not_a_known_device"] >= 1
        assert not any(i.name in browser.present for i, _ in rows.values())


async def test_bad_advertisements_never_stop_discovery() -> None:
    t = tag()
    bad = {
        "truncated": b"\x05gen=2\x09ver=1",
        "non-utf8": b"\x05gen=2\x08ver=\xff\xfe\xfd\xfc",
        "dup/empty": b"\x05gen=2\x05GEN=3\x02=x",
        "oversized": b"".join(bytes([250]) + f"k{i:02d}=".encode() + b"v" * 246 for i in range(10)),
    }
    infos = {why: info("_shelly._tcp.local.", f"bad {why} {t}", raw) for why, raw in bad.items()}
    odd = [
        info("_googlecast._tcp.local.", label, ["md=Hub"], port=8009)
        for label in (f"客厅 灯 {t}", f"a.b/c {t}", f"TV (2) {t}")
    ]
    good = info("_wled._tcp.local.", f"wled-{t}", [f"mac={random_mac()}"])
    async with mdns.Browser(LOOPBACK) as browser, collecting(browser) as seen, advertiser() as adv:
        await adv.register(*infos.values(), *odd)
        for why, i in infos.items():
            found = await seen.wait_for(named(mdns.Found, i.name))
            assert found.sighting.txt.get("gen") == ("2" if why != "oversized" else None)
            assert found.sighting.txt.problems, why
        for i in odd:
            found = await seen.wait_for(named(mdns.Found, i.name))
            assert found.sighting.name == i.name.removesuffix("._googlecast._tcp.local.")
        assert browser.counters["txt_problems"] >= len(bad)
        await adv.register(good)  # discovery goes on
        await seen.wait_for(named(mdns.Found, good.name))
        assert browser.counters["handler_error"] == 0


async def test_a_flood_of_updates_is_coalesced_and_the_last_state_wins() -> None:
    t = tag()
    i = info("_wled._tcp.local.", f"flood {t}", ["mac=aabbcc000001", "n=0"])
    async with mdns.Browser(LOOPBACK, min_interval=0.3) as browser, collecting(browser) as seen, advertiser() as adv:
        await adv.register(i)
        await seen.wait_for(named(mdns.Found, i.name))
        pending = []
        for n in range(1, 61):  # an update every few milliseconds
            i = with_txt(i, ["mac=aabbcc000001", f"n={n}"])
            pending.append(await adv.azc.async_update_service(i))
            await asyncio.sleep(0.005)
        adv.registered = [i]
        await seen.wait_for(lambda c: isinstance(c, mdns.Updated) and c.sighting.txt.get("n") == "60")
        await asyncio.gather(*pending)
        updates = sum(1 for c in seen.seen if isinstance(c, mdns.Updated) and c.sighting.full_name == i.name)
        assert browser.counters["coalesced"] > 0
        assert updates < 20, updates  # 60 announcements, a handful of resolutions


async def test_an_address_change_is_an_update_of_the_same_device() -> None:
    t, mac = tag(), random_mac()
    i = info(
        "_esphomelib._tcp.local.", f"kitchen-{t}", [f"mac={mac}", "version=2026.8.2"], port=6053, addresses=["10.1.2.3"]
    )
    async with mdns.Browser(LOOPBACK) as browser, collecting(browser) as seen, advertiser() as adv:
        await adv.register(i)
        found = await seen.wait_for(named(mdns.Found, i.name))
        assert found.sighting.addresses == ("10.1.2.3",)
        await adv.update(with_txt(i, [f"mac={mac}", "version=2026.9.0"], addresses=["10.1.2.4"]))
        upd = await seen.wait_for(named(mdns.Updated, i.name))
        assert upd.sighting.addresses[0] == "10.1.2.4"  # the newest address first
        assert mdns.stable_id(upd.sighting) == mdns.stable_id(found.sighting) == f"mdns-{mac.upper()}"
        assert browser.counters["handler_error"] == 0


async def test_a_record_that_never_resolves_is_counted_and_discovery_goes_on() -> None:
    t = tag()
    ghost = f"ghost {t}._wled._tcp.local."
    good = info("_wled._tcp.local.", f"before-ghost {t}", [f"mac={random_mac()}"])
    after = info("_wled._tcp.local.", f"after-ghost {t}", [f"mac={random_mac()}"])
    async with mdns.Browser(LOOPBACK, resolve_timeout=0.4) as browser, collecting(browser) as seen, advertiser() as adv:
        await adv.register(good)
        await seen.wait_for(named(mdns.Found, good.name))  # the browser is listening
        # A bare PTR answer: the service is announced, but no SRV/TXT/A ever follows.
        out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
        out.add_answer_at_time(DNSPointer("_wled._tcp.local.", _TYPE_PTR, _CLASS_IN, 120, ghost), 0)
        adv.azc.zeroconf.async_send(out)
        await adv.register(after)  # sent after the ghost: once it is found, the ghost was seen
        await seen.wait_for(named(mdns.Found, after.name))
        assert await browser.settled(5.0)
        assert browser.counters["unresolved"] >= 1
        assert ghost not in browser.present


async def test_find_broker_returns_the_advertised_broker() -> None:
    t = tag()
    async with advertiser() as adv:
        await adv.register(info("_mqtt._tcp.local.", f"Broker {t}", [], port=18830, addresses=["127.0.0.1"]))
        found = await mdns.find_broker(LOOPBACK, wait=5.0)
    assert found is not None  # ours, or another test's advertised at the same time: both on loopback
    assert found[0] == "127.0.0.1"


# ---- `hub discover` ---------------------------------------------------------------------


def run_discover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "discover", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_hub_discover_lists_what_is_visible_on_loopback() -> None:
    mac = random_mac()
    async with advertiser() as adv:
        await adv.register(info("_shelly._tcp.local.", f"shellyplus1pm-{mac}", ["gen=2", "app=Plus1PM", "ver=1.4.4"]))
        # Long enough for a browser's second query: a responder answers the same question on a
        # link at most once a second (RFC 6762 §6), so a run right after another may miss the first.
        done = await asyncio.to_thread(run_discover, "--interface", "127.0.0.1", "--json", "--seconds", "3")
        text = await asyncio.to_thread(run_discover, "--interface", "127.0.0.1", "--seconds", "3")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["interfaces"][0]["address"] == "127.0.0.1"
    mine = [s for s in report["found"] if s["name"] == f"shellyplus1pm-{mac}"]
    assert len(mine) == 1
    assert (mine[0]["service_type"], mine[0]["model"], mine[0]["firmware"], mine[0]["ids"]["mac"]) == (
        "_shelly._tcp",
        "Plus1PM",
        "1.4.4",
        mac.upper(),
    )
    assert mine[0]["device_id"] == f"mdns-{mac.upper()}"
    assert "_shelly._tcp" in report["answered"]
    assert text.returncode == 0
    assert f"shellyplus1pm-{mac}" in text.stdout
    assert "firmware: 1.4.4" in text.stdout


def test_hub_discover_explains_an_empty_result() -> None:
    done = run_discover("--interface", "10.255.255.254", "--seconds", "0.2")
    assert done.returncode == 1
    out = done.stdout
    assert "Nothing found" in out
    assert "Interfaces browsed: none" in out
    assert "no IPv4 interface is '10.255.255.254'" in out
    assert "lo 127.0.0.1: loopback" in out
    assert "Service types asked for: _shelly._tcp" in out
