"""A plain-text status of a running hub, printed by `hub demo` until the TUI takes over."""

from __future__ import annotations

import asyncio
import sys

from hub.model import Event
from hub.supervisor import Hub, run_until_signal


def render(hub: Hub) -> str:
    """The hub's status as a short text: broker, devices by room with availability and status."""
    cfg = hub.config
    rooms = {r.id: r.name for r in cfg.rooms}
    lines = [
        f"Home: {cfg.home.name} ({cfg.home.id})   broker: {hub.broker_url}   topic root: {hub.topics.root}",
        f"Rules configured: {len(cfg.rules)}   house mode: {hub.mode.mode}",
        "",
        f"{'room':<14} {'device':<34} {'status':<8} {'availability':<12} note",
    ]
    for dev in sorted(hub.registry.devices(), key=lambda d: (d.room or "~", d.name)):
        av = dev.availability
        room = rooms.get(dev.room or "", dev.room or "-")
        lines.append(f"{room:<14} {dev.name[:34]:<34} {dev.status.value:<8} {av.state.value:<12} {av.reason or ''}")
    lines.append("")
    lines.append(f"{len(hub.registry.records)} devices. Press Ctrl-C to stop.")
    return "\n".join(lines)


def _describe(event: Event) -> str:
    ident = getattr(event, "device_id", None) or getattr(getattr(event, "device", None), "id", "")
    return f"{event.ts:%H:%M:%S} {event.type:<22} {ident}"


async def watch(hub: Hub, *, once: bool = False) -> None:
    """Run the hub, print its status when it is ready, then one line per event until stopped."""
    task = asyncio.create_task(run_until_signal(hub))
    ready = asyncio.create_task(hub.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if hub.ready.is_set():
        print(render(hub), flush=True)
        if once:
            hub.stop()
        else:
            hub.listeners.append(lambda e: print(_describe(e), file=sys.stdout, flush=True))
    ready.cancel()
    await task
