"""mDNS adverts of the simulated Shelly and ESPHome devices, on loopback only (device side: it imports zeroconf).

The TXT records follow shared/fixtures/mdns/shelly_gen2_plus1pm_txt_test.json and
esphome_avahi_browse_line.json. Only used when mDNS is asked for: never on a real interface.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterable

from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from hub.sim.dialects import EsphomeDevice, ShellyPlus, SimDevice

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def _shelly(dev: ShellyPlus, suffix: str) -> ServiceInfo:
    name = dev.spec.native + suffix
    return ServiceInfo(
        "_shelly._tcp.local.",
        f"{name}._shelly._tcp.local.",
        port=80,
        properties={"gen": "2", "app": dev.APP, "id": dev.spec.native, "ver": "1.4.4"},
        server=f"{name}.local.",
        addresses=[socket.inet_aton(LOOPBACK)],
    )


def _esphome(dev: EsphomeDevice, suffix: str) -> ServiceInfo:
    name = dev.node + suffix
    return ServiceInfo(
        "_esphomelib._tcp.local.",
        f"{name}._esphomelib._tcp.local.",
        port=6053,
        properties={
            "network": "wifi",
            "board": "esp32dev",
            "platform": "ESP32",
            "mac": dev.mac,
            "version": "2026.8.0",
            "friendly_name": dev.spec.name,
        },
        server=f"{name}.local.",
        addresses=[socket.inet_aton(LOOPBACK)],
    )


def advert(dev: SimDevice, suffix: str = "") -> ServiceInfo | None:
    """The mDNS advert of a device whose dialect advertises (Shelly, ESPHome), else None."""
    match dev:
        case ShellyPlus():
            return _shelly(dev, suffix)
        case EsphomeDevice():
            return _esphome(dev, suffix)
    return None


def service_infos(devices: Iterable[SimDevice], suffix: str = "") -> list[ServiceInfo]:
    """The adverts of the devices marked `mdns`; `suffix` keeps instance names unique between runs on one host."""
    infos = (advert(d, suffix) for d in devices if d.spec.mdns)
    return [i for i in infos if i is not None]


@contextlib.asynccontextmanager
async def advertised(devices: Iterable[SimDevice], *, suffix: str = "") -> AsyncIterator[list[ServiceInfo]]:
    """Advertise the devices on 127.0.0.1 inside the block, and say goodbye (unregister) when it ends."""
    infos = service_infos(devices, suffix)
    azc = AsyncZeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only)
    registered: list[ServiceInfo] = []
    try:
        for info in infos:
            # The double await: the first schedules the announcement, the second waits for it.
            await (await azc.async_register_service(info, allow_name_change=True))
            registered.append(info)
        log.info("sim: advertising %d devices over mDNS on %s", len(registered), LOOPBACK)
        yield registered
    finally:
        for info in registered:
            await (await azc.async_unregister_service(info))
        await azc.async_close()
