"""Receive: the hub's MQTT link against a bare aiomqtt client, taking a home's retained messages at QoS 0 and 1.

A private Mosquitto holds N retained Zigbee2MQTT-like states, published at the QoS under
test. Each subscriber (in this process, one after the other, each on a fresh connection)
subscribes at that QoS and is timed until it has all N: the hub's `Link`, whose lane decodes
QoS 0 and 1 publishes itself (and acknowledges QoS 1 ones), and a bare aiomqtt client, in
which paho decodes and acknowledges each. The figure is the wall time; medians of the runs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt

if __package__ in (None, ""):  # run as a script (make bench): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Report, args_parser, median, mosquitto, workdir
from hub.mqtt import Link, LinkSettings
from hub.wire import Message

PAYLOAD = b'{"temperature":21.5,"humidity":40.2,"battery":87,"linkquality":120}'
WAIT = 120.0  # seconds any one subscriber may take


async def retain(port: int, count: int, qos: int) -> None:
    """Publish `count` retained states at `qos` (50 in flight at a time)."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-receive-load") as client:
        for start in range(0, count, 50):
            sends = (
                client.publish(f"load/{qos}/{i}", PAYLOAD, qos=qos, retain=True)
                for i in range(start, min(start + 50, count))
            )
            await asyncio.gather(*sends)


async def by_link(port: int, count: int, qos: int) -> float:
    """Seconds until the hub's link has every retained message of the QoS."""
    done = asyncio.Event()
    got = 0

    def handler(_msg: Message) -> None:
        nonlocal got
        got += 1
        if got == count:
            done.set()

    link = Link(LinkSettings.from_url(f"mqtt://127.0.0.1:{port}"))
    link.subscribe(f"load/{qos}/#", handler, qos=qos)
    began = time.perf_counter()
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(done.wait(), WAIT)
        return time.perf_counter() - began
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def by_aiomqtt(port: int, count: int, qos: int) -> float:
    """Seconds until a bare aiomqtt client has every retained message of the QoS."""
    began = time.perf_counter()
    got = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-receive-{time.monotonic_ns()}") as client:
        await client.subscribe(f"load/{qos}/#", qos=qos)
        async with asyncio.timeout(WAIT):
            async for _ in client.messages:
                got += 1
                if got == count:
                    break
    return time.perf_counter() - began


Receiver = Callable[[int, int, int], Awaitable[float]]
RECEIVERS: dict[str, Receiver] = {"hub link": by_link, "bare aiomqtt (paho)": by_aiomqtt}


async def measure(count: int, runs: int) -> Report:
    """Every receiver at QoS 0 and 1, `runs` times each, on one private Mosquitto."""
    report = Report("receive", ["qos", "subscriber", "messages", "seconds (median)", "msg/s", "runs"])
    with workdir() as work, mosquitto(work, big_home=True) as broker:
        for qos in (0, 1):
            await retain(broker.port, count, qos)
            for name, receive in RECEIVERS.items():
                seconds = median([await receive(broker.port, count, qos) for _ in range(runs)]) or 0.0
                report.add(
                    qos=qos,
                    subscriber=name,
                    messages=count,
                    **{"seconds (median)": seconds, "msg/s": round(count / seconds), "runs": runs},
                )
    report.notes.append("each subscriber connects afresh and takes every retained message; wall time")
    return report


def main() -> None:
    """Run the benchmark and print JSON and a table."""
    a = args_parser(__doc__ or "").parse_args()
    logging.disable(logging.WARNING)  # aiomqtt warns of every publish in flight beyond its soft limit
    asyncio.run(measure(500 if a.quick else 20_000, 1 if a.quick else a.runs)).emit()


if __name__ == "__main__":
    main()
