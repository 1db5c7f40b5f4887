"""Ingest: the highest rate of Zigbee2MQTT state messages (1,000 devices) each consumer sustains.

Consumers, measured one after another on the same stream in the same run, each in its own
process: the whole hub (`hub run`: normalize, registry, rules if configured, store, hub API
publish), a bare aiomqtt subscriber that parses and keeps the last state per device, and
Node-RED 4.1 with a flow doing the same. "Sustains" means: while `hub sim` streams at that
rate, a sentinel message sent every 0.25 s comes back (hub API state / echo) within 1 s. The
sentinel device is announced with the others but never streamed to: the hub shows a device's
merged state at most every 0.1 s, and a streamed report must not hide the sentinel's value.
With --brokers embedded, the hub also runs on its own embedded broker (amqtt).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt

if __package__ in (None, ""):  # run as a script (make bench): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    PYTHON,
    ROOT,
    Report,
    args_parser,
    child,
    free_port,
    hub_config,
    median,
    mosquitto,
    node_red,
    sim_command,
    wait_port,
    workdir,
)

DEVICES = 1000
SENTINEL_TOPIC = f"zigbee2mqtt/load/{DEVICES}"  # announced, not streamed: `hub sim` streams to 0..DEVICES-1
SENTINEL_ID = f"z2m-0x00124b00{DEVICES:08x}"
LIMIT = 1.0  # seconds a sentinel may take
PROBE_EVERY = 0.25
LADDER = [1000, 2000, 3000, 4000, 6000, 8000, 11000, 16000, 22000, 27000, 32000, 38000, 45000, 54000, 64000]
QUICK_LADDER = [500, 1000]


def echo_value(consumer: str) -> tuple[str, Callable[[bytes], float | None]]:
    """Where a consumer's answer to a sentinel appears, and how to read the sentinel's value from it."""

    def from_state(payload: bytes) -> float | None:
        data = json.loads(payload)
        v = data.get("values", {}).get("temperature") if isinstance(data, dict) else None
        return float(v) if isinstance(v, int | float) else None

    def from_echo(payload: bytes) -> float | None:
        data = json.loads(payload)
        v = data.get("temperature") if isinstance(data, dict) else None
        return float(v) if isinstance(v, int | float) else None

    if consumer.startswith("hub"):
        return f"hub/bench/devices/{SENTINEL_ID}/state", from_state
    return "bench/echo", from_echo


class Prober:
    """One connection that sends sentinels and times their echoes (kept for a consumer's whole session)."""

    def __init__(self, client: aiomqtt.Client, consumer: str) -> None:
        self.client = client
        self.topic, self.read = echo_value(consumer)
        self.sent: dict[float, float] = {}
        self.delays: dict[float, float] = {}
        self.values = itertools.count(1)
        self.changed = asyncio.Event()

    async def pump(self) -> None:
        """Read echoes (the caller runs this as a task)."""
        await self.client.subscribe(self.topic)
        async for msg in self.client.messages:
            if msg.topic.value != self.topic:
                continue  # amqtt also delivers retained messages of other clients' subscriptions
            try:
                value = self.read(msg.payload)
            except ValueError:
                continue
            if value is not None and value in self.sent and value not in self.delays:
                self.delays[value] = time.perf_counter() - self.sent[value]
                self.changed.set()

    async def probe(self, seconds: float, load: Callable[[], Any] | None) -> float:
        """Worst sentinel delay while `load()` (blocking, run in a thread) runs, or for `seconds` idle."""
        self.sent.clear()
        self.delays.clear()
        stop = asyncio.Event()
        sender = asyncio.create_task(self._send(stop))
        if load is None:
            await asyncio.sleep(seconds)
        else:
            await asyncio.to_thread(load)
        stop.set()
        await sender
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LIMIT + 0.5):
                while len(self.delays) < len(self.sent):
                    self.changed.clear()
                    await self.changed.wait()
        if len(self.delays) < len(self.sent):
            return float("inf")
        return max(self.delays.values(), default=float("inf"))

    async def _send(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            value = 50.0 + next(self.values) / 1000.0
            self.sent[value] = time.perf_counter()
            await self.client.publish(SENTINEL_TOPIC, json.dumps({"temperature": value, "humidity": 50.0}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROBE_EVERY)


def stream(port: int, rate: float, seconds: float) -> None:
    """`hub sim` at a rate for a time (its own process, so it never shares a core's interpreter)."""
    cmd = sim_command(port, DEVICES, seconds=seconds, rate=rate, announce=False)
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=seconds + 60)


def announce(port: int) -> None:
    """The 1,000 devices' and the sentinel's retained discovery (Zigbee2MQTT bridge/devices), once per broker."""
    subprocess.run(sim_command(port, DEVICES + 1, seconds=0), cwd=ROOT, check=True, capture_output=True, timeout=60)


async def ready(prober: Prober, wait: float = 60.0) -> None:
    """Return once the consumer answers a sentinel at all (and has drained what it had queued)."""
    deadline = time.monotonic() + wait
    while await prober.probe(0.5, None) > LIMIT:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the consumer never answered a sentinel within {wait} s")


async def ladder(port: int, consumer: str, rates: list[int], seconds: float) -> int:
    """The highest rate of the ladder sustained (0 if none); stops at the first failure."""
    best = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-probe-{time.monotonic_ns()}") as client:
        prober = Prober(client, consumer)
        pump = asyncio.create_task(prober.pump())
        try:
            await ready(prober)
            for rate in rates:
                worst = await prober.probe(seconds, functools.partial(stream, port, rate, seconds))
                if worst > LIMIT:
                    break
                best = rate
                await ready(prober, 30.0)  # drained before the next step
        finally:
            pump.cancel()
    return best


async def hub_online(port: int, wait: float = 60.0) -> None:
    """Return once the benchmark hub says online (its birth message, sent before it subscribes)."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-wait-{time.monotonic_ns()}") as client:
        await client.subscribe("hub/bench/status")
        async with asyncio.timeout(wait):
            async for msg in client.messages:
                if msg.topic.value == "hub/bench/status" and b'"online"' in bytes(msg.payload):
                    await asyncio.sleep(0.5)  # its subscriptions follow the birth message
                    return


@contextlib.contextmanager
def consumer_process(name: str, port: int, work: Path, red: Path | None) -> Iterator[int]:
    """Start one consumer; yields the broker port the stream goes to."""
    if name == "hub" or name == "hub-embedded":
        embedded = name == "hub-embedded"
        local = free_port() if embedded else None
        cfg = work / f"{name}.yaml"
        cfg.write_text(hub_config(None if embedded else f"mqtt://127.0.0.1:{port}", local_port=local))
        data = work / f"data-{name}-{time.monotonic_ns()}"
        with child(
            [PYTHON, "-m", "hub.cli", "run", "-c", str(cfg), "--data-dir", str(data)],
            cwd=ROOT,
            log=work / f"{name}.log",
        ):
            target = local if local is not None else port
            wait_port(target, 30)
            asyncio.run(hub_online(target))
            if embedded:
                announce(target)  # after the hub subscribed: amqtt loses retained messages sent before that
            yield target
    elif name == "bare":
        bare = [PYTHON, str(ROOT / "bench" / "bare_consumer.py"), "--port", str(port), "--sentinel", SENTINEL_TOPIC]
        with child(bare, cwd=ROOT):
            yield port
    elif name == "node-red" and red is not None:
        userdir = work / f"nr-{time.monotonic_ns()}"
        userdir.mkdir()
        write_node_red(userdir, port)
        with child(
            ["node", str(red), "--userDir", str(userdir), "--settings", str(userdir / "settings.js")],
            cwd=userdir,
            log=work / "node-red.log",
        ):
            yield port
    else:
        raise ValueError(name)


def write_node_red(userdir: Path, port: int) -> None:
    """Settings without editor or HTTP, and a flow: mqtt in (JSON) -> keep last per device -> echo sentinel."""
    ui_port = free_port()
    (userdir / "settings.js").write_text(
        f"module.exports = {{uiPort: {ui_port}, uiHost: '127.0.0.1', httpAdminRoot: false, httpNodeRoot: false,\n"
        " flowFile: 'flows.json', credentialSecret: false, logging: {console: {level: 'warn'}},\n"
        " diagnostics: {enabled: false}, telemetry: {enabled: false}, editorTheme: {tours: false}};\n"
    )
    func = (
        "let last = context.get('last'); if (!last) { last = {}; context.set('last', last); }\n"
        "last[msg.topic] = msg.payload;\n"
        f"if (msg.topic === '{SENTINEL_TOPIC}' && msg.payload && msg.payload.temperature >= 50) "
        "{ return {topic: 'bench/echo', payload: msg.payload}; }\nreturn null;"
    )
    flow = [
        {"id": "tab1", "type": "tab", "label": "ingest"},
        {
            "id": "broker1",
            "type": "mqtt-broker",
            "name": "bench",
            "broker": "127.0.0.1",
            "port": str(port),
            "clientid": "bench-node-red",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
        },
        {
            "id": "in1",
            "type": "mqtt in",
            "z": "tab1",
            "name": "",
            "topic": "zigbee2mqtt/#",
            "qos": "0",
            "datatype": "auto-detect",
            "broker": "broker1",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "x": 100,
            "y": 100,
            "wires": [["fn1"]],
        },
        {
            "id": "fn1",
            "type": "function",
            "z": "tab1",
            "name": "last state",
            "func": func,
            "outputs": 1,
            "x": 300,
            "y": 100,
            "wires": [["out1"]],
        },
        {
            "id": "out1",
            "type": "mqtt out",
            "z": "tab1",
            "name": "",
            "topic": "",
            "qos": "0",
            "retain": "",
            "broker": "broker1",
            "x": 500,
            "y": 100,
            "wires": [],
        },
    ]
    (userdir / "flows.json").write_text(json.dumps(flow))


def main() -> None:
    p = args_parser(__doc__ or "")
    p.add_argument("--brokers", default="mosquitto,embedded", help="mosquitto and/or embedded")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per step of the rate ladder")
    p.add_argument("--consumers", default="hub,bare,node-red", help="which consumers (default: %(default)s)")
    a = p.parse_args()
    runs, seconds, rates = (1, 1.0, QUICK_LADDER) if a.quick else (a.runs, a.seconds, LADDER)
    red = node_red() if "node-red" in a.consumers else None
    wanted = a.consumers.split(",")
    consumers = [c for c in ("hub", "bare") if c in wanted] + (["node-red"] if red and "node-red" in wanted else [])
    if "embedded" in a.brokers:
        consumers.append("hub-embedded")
    results: dict[str, list[int]] = {c: [] for c in consumers}
    with workdir() as work, mosquitto(work) as broker:
        announce(broker.port)
        for _ in range(runs):
            for name in consumers:  # interleaved, so that a noisy minute hurts every consumer alike
                with consumer_process(name, broker.port, work, red) as port:
                    try:
                        results[name].append(asyncio.run(ladder(port, name, rates, seconds)))
                    except TimeoutError as exc:
                        raise SystemExit(f"ingest: {name}: {exc}; log in {work}") from None
    report = Report("ingest", ["consumer", "broker", "sustained msg/s (median)", "runs", "all runs"])
    labels = {
        "hub": ("hub (whole path)", "mosquitto"),
        "bare": ("bare aiomqtt", "mosquitto"),
        "node-red": ("Node-RED 4.1", "mosquitto"),
        "hub-embedded": ("hub (whole path)", "embedded amqtt"),
    }
    for name, values in results.items():
        label, where = labels[name]
        report.add(
            **{
                "consumer": label,
                "broker": where,
                "sustained msg/s (median)": median(values),
                "runs": len(values),
                "all runs": values,
            }
        )
    report.notes.append(
        f"{DEVICES} Zigbee2MQTT devices; ladder {rates[0]}..{rates[-1]} msg/s, {seconds} s a step; "
        f"sustained = every sentinel back within {LIMIT} s"
    )
    if not red and "node-red" in wanted:
        report.notes.append("Node-RED baseline skipped: node/npm missing or install failed (see stderr)")
    report.emit()


if __name__ == "__main__":
    main()
