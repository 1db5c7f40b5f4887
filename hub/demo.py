"""`hub demo`: the example home alive in one process tree: broker, simulated home, hub, and a screen to watch it.

Order of life: the hub starts (and with it the embedded broker when no other answers), the
simulated home connects to the broker the hub chose and announces itself in every dialect,
the resident's day plays in compressed time, scheduled incidents are injected, and the
caregiver TUI (or, without one, a text status) runs in the foreground. When the screen is
quit, or on SIGINT/SIGTERM, everything stops in reverse order and nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import random
import signal
import stat
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from hub.api import AckRequest, Topics
from hub.config import Config
from hub.model import Event, StateChanged
from hub.mqtt import Link
from hub.sim.advertise import advertised
from hub.sim.day import BY_KEY, INCIDENTS, Scheduled
from hub.sim.home import EXAMPLE_HOME
from hub.sim.runner import DayPlayer, SimHome, Timeline, control_topic
from hub.status import render
from hub.supervisor import Hub, Paths
from hub.wire import Message

log = logging.getLogger(__name__)

READY_WAIT = 30.0  # seconds for the hub to come up before the demo gives up
DEFAULT_SCHEDULE = "sos@20s"  # an alert within the first minute, as the README promises


@dataclass
class DemoOptions:
    """How the demo runs."""

    port: int | None = None  # the local broker port (embedded broker when nothing answers there)
    speed: float = 60.0  # simulated seconds per real second
    start: time = time(6, 30)
    schedule: list[Scheduled] = field(default_factory=list)
    viewer: str = "auto"  # auto | tui | text
    mdns: bool | None = None  # None: as devices.yaml says
    seconds: float | None = None  # stop by itself after this long


class Demo:
    """One demo run: owns the hub, the simulated home and the viewer, and stops them all together."""

    def __init__(self, config: Config, config_path: Path, data_dir: Path, options: DemoOptions) -> None:
        self.config_path = config_path
        if options.port is not None:
            config = config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"local_port": options.port})})
        self.config = config
        self.options = options
        self.hub = Hub(config, Paths(data_dir))
        self.topics = Topics.for_home(config.home.id, config.mqtt.topic_root)
        self.player: DayPlayer | None = None
        self.sim: SimHome | None = None
        self.stopping = asyncio.Event()
        self.alerts: dict[str, dict[str, Any]] = {}  # open alerts as the hub API shows them
        self.on_alert: Callable[[str, dict[str, Any] | None], None] | None = None

    # -- the whole run --------------------------------------------------------------------------

    async def run(self, viewer: Callable[[Demo], Coroutine[Any, Any, None]]) -> None:
        """Run everything until the viewer returns, a signal arrives, or the time is up."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stopping.set)
        hub_task = asyncio.create_task(self.hub.run(), name="hub")
        try:
            await self._wait_ready(hub_task)
            async with self._simulated_home() as tasks:
                view = asyncio.create_task(viewer(self), name="viewer")
                stop = asyncio.create_task(self._stop_when_asked(), name="stop")
                done, _ = await asyncio.wait({view, stop, *tasks, hub_task}, return_when=asyncio.FIRST_COMPLETED)
                self.stopping.set()
                for task in (view, stop):
                    task.cancel()
                await asyncio.gather(view, stop, return_exceptions=True)
                for task in done:
                    if task is not view and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            self.hub.stop()
            await asyncio.wait_for(hub_task, READY_WAIT)
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)

    async def _wait_ready(self, hub_task: asyncio.Task[None]) -> None:
        ready = asyncio.create_task(self.hub.ready.wait())
        done, _ = await asyncio.wait({hub_task, ready}, timeout=READY_WAIT, return_when=asyncio.FIRST_COMPLETED)
        if hub_task in done:
            ready.cancel()
            await hub_task  # raises what went wrong
            raise RuntimeError("the hub stopped before it was ready")
        if ready not in done:
            ready.cancel()
            raise TimeoutError(f"the hub was not ready within {READY_WAIT} s")

    async def _stop_when_asked(self) -> None:
        if self.options.seconds is None:
            await self.stopping.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), self.options.seconds)

    @contextlib.asynccontextmanager
    async def _simulated_home(self) -> AsyncIterator[list[asyncio.Task[None]]]:
        home_id = self.config.home.id
        settings = SimHome.settings(self.hub.broker_url, f"sim-{home_id}-{random.randrange(16**6):06x}")
        link = Link(settings)
        self.sim = sim = SimHome(EXAMPLE_HOME, link)
        timeline = Timeline(self.options.start, self.options.speed)
        self.player = player = DayPlayer(sim, timeline, schedule=self.options.schedule, on_incident=self._incident)
        link.subscribe(control_topic(home_id), player.control_handler())
        link.subscribe(self.topics.alert("+"), self._alert_seen)
        mdns = self.config.discovery.mdns.enabled if self.options.mdns is None else self.options.mdns
        link_task = asyncio.create_task(link.run(), name="sim-mqtt")
        tasks: list[asyncio.Task[None]] = [link_task]
        try:
            await link.wait_connected(READY_WAIT)
            await sim.start()
            tasks.append(asyncio.create_task(player.run(), name="day"))
            async with contextlib.AsyncExitStack() as stack:
                if mdns:
                    await stack.enter_async_context(advertised(sim.devices.values(), suffix=f"-{home_id}"))
                yield tasks
        finally:
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks[1:], return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sim.offline(), 2.0)
            link_task.cancel()
            await asyncio.gather(link_task, return_exceptions=True)

    # -- what the viewers use -------------------------------------------------------------------

    def _incident(self, name: str, title: str) -> None:
        log.warning("demo: incident %s injected: %s", name, title)

    def _alert_seen(self, msg: Message) -> None:
        alert_id = msg.topic.rpartition("/")[2]
        try:
            data = json.loads(msg.payload) if msg.payload else None
        except ValueError:
            log.warning("demo: unreadable alert on %s", msg.topic)
            return
        if isinstance(data, dict):
            self.alerts[alert_id] = data
        else:
            self.alerts.pop(alert_id, None)
        if self.on_alert is not None:
            self.on_alert(alert_id, data if isinstance(data, dict) else None)

    async def inject(self, name: str) -> bool:
        """Inject an incident now (from a key or a typed name)."""
        if self.player is None:
            return False
        return await self.player.inject(name)

    async def acknowledge(self, who: str = "demo", note: str = "seen in the demo") -> int:
        """Acknowledge every open alert through the hub API; how many were sent."""
        if self.sim is None:
            return 0
        body = AckRequest(by=who, note=note).model_dump_json().encode()
        ids = [a for a, data in self.alerts.items() if data.get("state") not in ("acknowledged", "resolved")]
        for alert_id in ids:
            await self.sim.link.publish(f"{self.topics.alert(alert_id)}/ack", body, qos=1)
        return len(ids)


# --- viewers ---------------------------------------------------------------------------------------


def _describe(demo: Demo, event: Event) -> str | None:
    """One line per state change, with the device's name and the simulated time."""
    if not isinstance(event, StateChanged):
        return None
    rec = demo.hub.registry.get(event.device_id)
    name = rec.device.name if rec else event.device_id
    values = ", ".join(f"{k}={v}" for k, v in event.values.items() if k not in ("linkquality", "voltage"))
    sim_time = demo.player.sim_time().strftime("%H:%M") if demo.player else "--:--"
    return f"[{sim_time}] {name}: {values}" if values else None


_TEXT_HELP = (
    "Type an incident and Enter: "
    + ", ".join(f"{i + 1}={name}" for i, name in enumerate(INCIDENTS))
    + "; 'ack' acknowledges the open alerts; 'q' quits."
)


async def text_viewer(demo: Demo) -> None:
    """The plain-text screen: the status of the home, one line per change and alert, commands on stdin."""
    await asyncio.sleep(1.0)  # let the simulated home announce itself before the first picture
    print(render(demo.hub), flush=True)
    print(_TEXT_HELP, flush=True)

    def event_line(event: Event) -> None:
        line = _describe(demo, event)
        if line:
            print(line, flush=True)

    def alert_line(alert_id: str, data: dict[str, Any] | None) -> None:
        if data is None:
            print(f"ALERT {alert_id} closed", flush=True)
            return
        text = data.get("message_en") or data.get("title") or data.get("kind") or ""
        print(f"ALERT {alert_id} [{data.get('severity', '?')}] {data.get('state', '?')}: {text}", flush=True)

    demo.hub.listeners.append(event_line)
    demo.on_alert = alert_line
    names = list(INCIDENTS)
    async for line in _stdin_lines():
        word = line.strip().lower()
        if word in ("q", "quit", "exit"):
            return
        if word == "ack":
            print(f"acknowledged {await demo.acknowledge()} alert(s)", flush=True)
        elif word.isdigit() and 1 <= int(word) <= len(names):
            await demo.inject(names[int(word) - 1])
        elif word in INCIDENTS:
            await demo.inject(word)
        elif word:
            print(_TEXT_HELP, flush=True)
    await demo.stopping.wait()  # stdin closed (a pipe or /dev/null): run until stopped


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines typed on stdin, read without blocking the loop; ends at end of input."""
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (sys.stdin.isatty() or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return  # /dev/null or a file: nothing will be typed (and epoll cannot watch a file)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError) as exc:  # a closed or unusual stdin: no commands then
        log.info("demo: stdin not readable (%s); commands by keys are off", exc)
        return
    while line := await reader.readline():
        yield line.decode(errors="replace")


async def tui_viewer(demo: Demo) -> None:
    """The caregiver TUI in the foreground, with function keys that inject incidents."""
    from textual.binding import Binding

    from hub.tui.app import CaregiverApp
    from hub.tui.main import target_and_settings

    args = argparse.Namespace(
        config=demo.config_path,
        url=demo.hub.broker_url,
        home=None,
        fleet=False,
        lang=None,
        theme="dark",
        large=False,
        plain=False,
        bell=False,
        who="demo",
    )
    target, settings = target_and_settings(args)

    class DemoApp(CaregiverApp):
        """The caregiver TUI plus the demo's incident keys."""

        BINDINGS = [  # noqa: RUF012 - extends the parent's class attribute
            *CaregiverApp.BINDINGS,
            *(Binding(inc.key, f"incident('{name}')", name, show=False) for name, inc in INCIDENTS.items()),
        ]

        async def action_incident(self, name: str) -> None:
            """Inject an incident into the simulated home."""
            await demo.inject(name)
            self.notify(f"{INCIDENTS[name].title}", title="demo incident")

    app = DemoApp(target, settings)
    stop = asyncio.create_task(demo.stopping.wait())
    stop.add_done_callback(lambda _: app.exit())
    try:
        await app.run_async()
    finally:
        stop.cancel()


def tui_available() -> bool:
    """Whether the caregiver TUI is installed in this build."""
    return all(importlib.util.find_spec(m) is not None for m in ("hub.tui.app", "hub.tui.main"))


VIEWERS: dict[str, Callable[[Demo], Coroutine[Any, Any, None]]] = {"text": text_viewer, "tui": tui_viewer}


def choose_viewer(wanted: str, *, interactive: bool) -> str:
    """`auto` is the TUI on a terminal when it exists, else the text status."""
    if wanted != "auto":
        return wanted
    return "tui" if interactive and tui_available() else "text"


def keys_help() -> str:
    """Which key injects which incident, for the README and --help."""
    return ", ".join(f"{key.upper()} {name}" for key, name in BY_KEY.items())


def run(config: Config, config_path: Path, data_dir: Path, options: DemoOptions) -> int:
    """Run the demo in this process until it is quit; 0 on a clean stop."""
    viewer = choose_viewer(options.viewer, interactive=sys.stdin.isatty() and sys.stdout.isatty())
    if viewer == "tui":
        # The screen belongs to the TUI: log lines go to a file in the data folder.
        data_dir.mkdir(parents=True, exist_ok=True)
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        logging.basicConfig(
            filename=data_dir / "demo.log", level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    demo = Demo(config, config_path, data_dir, options)
    asyncio.run(demo.run(VIEWERS[viewer]))
    return 0
