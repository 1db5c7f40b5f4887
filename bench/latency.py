"""Latency: bedroom motion -> the light command the hub's night_path_light rule sends, p50 and p99.

Idle, and under 1,000 msg/s of Zigbee2MQTT state for 1,000 devices with the store recording,
on a private Mosquitto with `set_tcp_nodelay true` and with its default (Nagle on). Beside it,
the floor: a bare aiomqtt relay (also subscribed to, and parsing, all the background traffic)
that turns the same motion into the same Shelly RPC command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt

if __package__ in (None, ""):  # run as a script (make bench): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PYTHON, ROOT, Report, args_parser, child, hub_config, median, mosquitto, sim_command, workdir
from bench.ingest import hub_online

MOTION = "zigbee2mqtt/bedroom/motion"
LIGHT = "shellyplus1pm-a8032ab67890"
RPC = f"{LIGHT}/rpc"
BACKGROUND_RATE = 1000
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # paho leaves Nagle on; the clients must not add it
BACKGROUND_DEVICES = 1000

RULES = """devices:
  - {id: z2m-0x00158d0001a2b3d7, name: Bedroom motion, room: bedroom}
  - {id: shelly-shellyplus1pm-a8032ab67890, name: Hallway night light, room: hallway, role: path_light}
rules:
  - {kind: night_path_light, window: "00:00-23:59", lux_below: 100000}
"""


def announce_home(port: int) -> None:
    """The motion sensor, the night light and the background devices, through the simulator's dialect encoders."""
    code = (
        "import asyncio\n"
        "from datetime import UTC, datetime\n"
        "from hub.sim.dialects import build, ZigbeeBridge\n"
        "from hub.sim.fastpub import FastPublisher\n"
        "from hub.sim.home import EXAMPLE_HOME\n"
        "async def main():\n"
        "    specs = [s for s in EXAMPLE_HOME if s.key in ('bedroom_motion', 'night_light')]\n"
        "    devs = [build(s) for s in specs]\n"
        "    now = datetime.now(UTC)\n"
        "    from hub.sim.load import load_specs\n"
        f"    load = [build(s) for s in load_specs({BACKGROUND_DEVICES}, 'zigbee2mqtt')]\n"
        "    msgs = ZigbeeBridge([devs[0], *load]).announce() + devs[0].announce(now) + devs[1].announce(now)\n"
        "    msgs += [m for d in load for m in d.announce(now)]\n"
        f"    pub = await FastPublisher.connect('127.0.0.1', {port}, 'bench-home')\n"
        "    await pub.send(msgs); await pub.sync(); await pub.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([PYTHON, "-c", code], cwd=ROOT, check=True, timeout=60)


def background(port: int, seconds: float) -> subprocess.Popen[bytes]:
    """`hub sim` at 1,000 msg/s for the 1,000 background devices, in its own process."""
    return subprocess.Popen(
        sim_command(port, BACKGROUND_DEVICES, seconds=seconds, rate=BACKGROUND_RATE, announce=False),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _notify(on: bool) -> bytes:
    body = {
        "src": LIGHT,
        "dst": f"{LIGHT}/events",
        "method": "NotifyStatus",
        "params": {"ts": time.time(), "switch:0": {"id": 0, "output": on}},
    }
    return json.dumps(body).encode()


async def measure(port: int, probes: int) -> list[float]:
    """Round trips (ms): motion published -> the RPC command seen; the light then reports off so it re-arms."""
    out: list[float] = []
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"bench-lat-{time.monotonic_ns()}", socket_options=NODELAY
    ) as c:
        await c.subscribe(RPC)
        got = asyncio.Queue[float]()

        async def pump() -> None:
            async for msg in c.messages:
                if msg.topic.value == RPC:
                    got.put_nowait(time.perf_counter())

        reader = asyncio.create_task(pump())
        try:
            await _rearmed(c, got)
            for i in range(probes + 5):
                sent = time.perf_counter()
                await c.publish(MOTION, json.dumps({"occupancy": True, "illuminance": 1}))
                try:
                    arrived = await asyncio.wait_for(got.get(), 5.0)
                except TimeoutError:
                    arrived = float("inf")
                if i >= 5:  # the first few warm caches up
                    out.append((arrived - sent) * 1000)
                await c.publish(MOTION, json.dumps({"occupancy": False, "illuminance": 1}))
                # The light reports on (the rule's), off (a person took it over), on, off (the person
                # is done with it): only state changes reach the rule, and this hands the light back.
                for on in (True, False, True, False):
                    await c.publish(f"{LIGHT}/events/rpc", _notify(on))
                await asyncio.sleep(0.03)
                while not got.empty():
                    got.get_nowait()
        finally:
            reader.cancel()
    return out


async def _rearmed(c: aiomqtt.Client, got: asyncio.Queue[float], wait: float = 120.0) -> None:
    """Return once a motion gets its command at all (the hub has caught up with what it was sent before)."""
    async with asyncio.timeout(wait):
        while True:
            await c.publish(MOTION, json.dumps({"occupancy": True, "illuminance": 1}))
            try:
                await asyncio.wait_for(got.get(), 2.0)
            except TimeoutError:
                continue
            finally:
                await c.publish(MOTION, json.dumps({"occupancy": False, "illuminance": 1}))
                for on in (True, False, True, False):
                    await c.publish(f"{LIGHT}/events/rpc", _notify(on))
            await asyncio.sleep(0.2)
            while not got.empty():
                got.get_nowait()
            return


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def subject(name: str, port: int, work: Path) -> Iterator[None]:
    """The hub (with the rule) or the bare relay, running against the broker."""
    if name == "hub":
        cfg = work / "latency.yaml"
        cfg.write_text(
            hub_config(f"mqtt://127.0.0.1:{port}", extra=RULES).replace("auto_adopt: true", "auto_adopt: false")
        )
        data = work / f"data-{time.monotonic_ns()}"
        with child(
            [PYTHON, "-m", "hub.cli", "run", "-c", str(cfg), "--data-dir", str(data)],
            cwd=ROOT,
            log=work / "latency-hub.log",
        ):
            asyncio.run(hub_online(port))
            announce_home(port)  # with the background devices: one Zigbee2MQTT bridge lists them all
            yield
    else:
        with child([PYTHON, str(ROOT / "bench" / "relay.py"), "--port", str(port)], cwd=ROOT):
            yield


def main() -> None:
    p = args_parser(__doc__ or "")
    p.add_argument("--probes", type=int, default=200)
    a = p.parse_args()
    runs, probes = (1, 10) if a.quick else (a.runs, a.probes)
    report = Report("latency", ["subject", "broker", "load", "p50 ms", "p99 ms", "p99 / floor p99", "runs"])
    figures: dict[tuple[str, bool, bool], dict[str, list[float]]] = {}
    with workdir() as work:
        for nodelay in (True,) if a.quick else (True, False):
            with mosquitto(work, nodelay=nodelay) as broker:
                for _ in range(runs):
                    for name in ("hub", "relay"):
                        with subject(name, broker.port, work):
                            for loaded in (False, True):
                                bg = background(broker.port, 3600) if loaded else None
                                try:
                                    if bg is not None:
                                        time.sleep(2.0)  # the background devices announced and streaming
                                    trips = asyncio.run(measure(broker.port, probes))
                                finally:
                                    if bg is not None:
                                        bg.terminate()
                                        bg.wait()
                                f = figures.setdefault((name, nodelay, loaded), {"p50": [], "p99": []})
                                f["p50"].append(statistics.median(trips))
                                f["p99"].append(pct(trips, 0.99))
    for (name, nodelay, loaded), f in figures.items():
        floor = figures[("relay", nodelay, loaded)]
        p99, floor99 = median(f["p99"]), median(floor["p99"])
        report.add(
            **{
                "subject": "hub + night_path_light rule" if name == "hub" else "bare aiomqtt relay (floor)",
                "broker": "mosquitto nodelay" if nodelay else "mosquitto default (Nagle)",
                "load": f"{BACKGROUND_RATE} msg/s, {BACKGROUND_DEVICES} devices" if loaded else "idle",
                "p50 ms": median(f["p50"]),
                "p99 ms": p99,
                "p99 / floor p99": (p99 / floor99) if p99 and floor99 else None,
                "runs": len(f["p99"]),
            }
        )
    report.notes.append(
        f"{probes} probes per run; figures are medians over runs of each run's p50/p99; "
        "the hub records every state in its SQLite store"
    )
    report.emit()


if __name__ == "__main__":
    main()
