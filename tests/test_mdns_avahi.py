"""Against an advertiser that is not ours: avahi in one network namespace, the hub's browser in another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import mdns
from tests import netns
from tests.mdnsctl import collecting, named

SERVICE = (
    "Shelly Plus 1PM",
    "_shelly._tcp",
    "80",
    "gen=2",
    "app=Plus1PM",
    "ver=1.4.4",
    "id=shellyplus1pm-a8032ab12345",
)
FULL_NAME = "Shelly Plus 1PM._shelly._tcp.local."


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs this test as root)"
    missing = netns.missing_tools()
    if missing:
        why = f"missing {', '.join(missing)} (tools/ensure-binaries installs them as root)"
        if os.environ.get("CI"):
            pytest.fail(why)
        return why
    return None


@pytest.fixture
def pair() -> Iterator[netns.Pair]:
    """The two namespaces, or a skip that says why they cannot be made here."""
    why = _unavailable()
    if why:
        pytest.skip(why)
    try:
        with netns.veth_pair() as made:
            yield made
    except RuntimeError as exc:
        pytest.skip(str(exc))


async def test_avahi_advertisement_is_found_and_its_goodbye_seen(pair: netns.Pair, tmp_path: Path) -> None:
    with netns.avahi_publishing(pair, tmp_path / "avahi", *SERVICE) as publisher:
        # Only this thread enters the hub's namespace, and only while the sockets are made.
        with netns.inside(pair.b):
            browser = mdns.Browser([pair.addr_b])
            browser.open()
        try:
            async with collecting(browser) as seen:
                found = await seen.wait_for(named(mdns.Found, FULL_NAME), timeout=15)
                s = found.sighting
                assert s.addresses == (pair.addr_a,)
                assert (s.port, s.model, s.firmware) == (80, "Plus1PM", "1.4.4")
                assert s.ids == {"shelly_id": "shellyplus1pm-a8032ab12345", "mac": "A8032AB12345"}
                assert mdns.stable_id(s) == "mdns-A8032AB12345"
                assert [i.name for i in browser.interfaces] == [pair.veth_b]
                publisher.terminate()  # avahi-publish withdraws the service: avahi sends a goodbye
                await seen.wait_for(named(mdns.Lost, FULL_NAME), timeout=10)
        finally:
            await browser.close()


def test_hub_discover_in_a_namespace_sees_avahi(pair: netns.Pair, tmp_path: Path) -> None:
    with netns.avahi_publishing(pair, tmp_path / "avahi", *SERVICE):
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                pair.b,
                sys.executable,
                "-m",
                "hub.cli",
                "discover",
                "--interface",
                pair.veth_b,
                "--json",
                "--seconds",
                "3",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
        )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["interfaces"] == [
        {"name": pair.veth_b, "address": pair.addr_b, "up": True, "multicast": True, "note": "up, multicast"}
    ]
    (shelly,) = [s for s in report["found"] if s["name"] == "Shelly Plus 1PM"]
    assert shelly["addresses"] == [pair.addr_a]
    assert shelly["device_id"] == "mdns-A8032AB12345"
    assert "_shelly._tcp" in report["answered"]
