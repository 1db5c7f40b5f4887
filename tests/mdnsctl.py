"""Real mDNS advertisements on 127.0.0.1 for tests (never the machine's real interface)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from hub import mdns
from tests import captures

FIXTURES = captures.FIXTURES / "mdns"
LOOPBACK = ["127.0.0.1"]
WAIT = 10.0


def fixture(name: str) -> dict[str, Any]:
    """One mDNS fixture file."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def tag() -> str:
    """A short random tag: services on loopback are visible to every process on the machine."""
    return secrets.token_hex(3)


def random_mac() -> str:
    """A random locally administered MAC as 12 lower-case hex digits."""
    return "02" + secrets.token_hex(5)


def info(
    service_type: str,
    label: str,
    txt: Sequence[str] | bytes,
    *,
    port: int = 80,
    addresses: Sequence[str] = ("127.0.0.1",),
    server: str | None = None,
) -> ServiceInfo:
    """A ServiceInfo to advertise; TXT given as `key=value` strings or as raw (possibly broken) bytes."""
    raw = txt if isinstance(txt, bytes) else mdns.encode_txt(txt)
    return ServiceInfo(
        service_type,
        f"{label}.{service_type}",
        port=port,
        properties=raw,
        server=server or f"t{tag()}.local.",
        parsed_addresses=list(addresses),
    )


def with_txt(i: ServiceInfo, txt: Sequence[str] | bytes, addresses: Sequence[str] | None = None) -> ServiceInfo:
    """The same service with another TXT record (and optionally other addresses)."""
    return ServiceInfo(
        i.type,
        i.name,
        port=i.port,
        properties=txt if isinstance(txt, bytes) else mdns.encode_txt(txt),
        server=i.server,
        parsed_addresses=list(addresses) if addresses is not None else i.parsed_addresses(),
    )


class Advertiser:
    """An AsyncZeroconf on loopback that registers, updates and unregisters services (double-awaited)."""

    def __init__(self) -> None:
        self.azc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
        self.registered: list[ServiceInfo] = []

    async def register(self, *infos: ServiceInfo) -> None:
        """Register services in parallel; returns once their announcements are sent."""

        async def one(i: ServiceInfo) -> None:
            await (await self.azc.async_register_service(i))
            self.registered.append(i)

        await asyncio.gather(*(one(i) for i in infos))

    async def update(self, *infos: ServiceInfo) -> None:
        """Announce changed services (TXT, address, port), in parallel."""
        await asyncio.gather(*[await self.azc.async_update_service(i) for i in infos])
        new = {i.name: i for i in infos}
        self.registered = [new.get(r.name, r) for r in self.registered]

    async def unregister(self, *infos: ServiceInfo) -> None:
        """Say goodbye for services, in parallel."""
        await asyncio.gather(*[await self.azc.async_unregister_service(i) for i in infos])
        gone = {i.name for i in infos}
        self.registered = [r for r in self.registered if r.name not in gone]

    async def close(self) -> None:
        """Say goodbye for everything left and close."""
        await self.unregister(*self.registered)
        await self.azc.async_close()


@contextlib.asynccontextmanager
async def advertiser() -> AsyncIterator[Advertiser]:
    """An Advertiser closed (goodbyes sent) at the end of the block."""
    adv = Advertiser()
    try:
        yield adv
    finally:
        await adv.close()


class Collector:
    """Collects a Browser's changes; tests await the first one that matches."""

    def __init__(self, browser: mdns.Browser) -> None:
        self.browser = browser
        self.seen: list[mdns.Change] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        async for change in self.browser.changes():
            async with self._changed:
                self.seen.append(change)
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[mdns.Change], bool], timeout: float = WAIT) -> mdns.Change:  # noqa: ASYNC109
        """The first change (already seen or coming) for which predicate holds."""

        async def wait() -> mdns.Change:
            async with self._changed:
                while True:
                    hit = next((c for c in self.seen if predicate(c)), None)
                    if hit is not None:
                        return hit
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def collecting(browser: mdns.Browser) -> AsyncIterator[Collector]:
    """A Collector running over an opened browser for the block."""
    collector = Collector(browser)
    collector._task = asyncio.create_task(collector._pump())
    try:
        yield collector
    finally:
        collector._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector._task


def named(kind: type, name: str) -> Callable[[mdns.Change], bool]:
    """A predicate: a change of this type for the service with this full name."""
    return lambda c: isinstance(c, kind) and c.sighting.full_name == name
