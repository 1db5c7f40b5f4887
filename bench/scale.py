"""Scale: start-up time and resident memory with 1,000 and 10,000 devices announced by retained discovery.

The devices (spread over the four dialects with retained discovery) are announced, retained, on a private Mosquitto
before the hub starts. "Up" is when the hub has published every one of them on its API
(`hub/bench/devices/<id>`, adopted) with its rules armed; the memory is the hub process's RSS
then. Beside it, the baseline: a bare aiomqtt client receiving the same retained messages.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

if __package__ in (None, ""):  # run as a script (make bench): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    PYTHON,
    ROOT,
    Report,
    args_parser,
    child,
    hub_config,
    median,
    mosquitto,
    rss_mb,
    sim_command,
    workdir,
)
from hub.sim.dialects import build
from hub.sim.load import announcements, load_specs

BARE = """
import asyncio, json, sys, time, aiomqtt
async def main(port, want):
    t = time.perf_counter(); n = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-scale-bare") as c:
        await c.subscribe("#")  # every retained discovery, availability and state topic
        seen = {}
        async for m in c.messages:
            seen[m.topic.value] = json.loads(m.payload) if m.payload[:1] in (b"{", b"[") else m.payload
            if len(seen) >= want:
                break
    rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
    print(json.dumps({"seconds": time.perf_counter() - t, "rss": rss}))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def announce(port: int, devices: int) -> int:
    """Retained discovery for `devices` devices; how many distinct retained topics that made."""
    cmd = sim_command(port, devices, seconds=0, dialect="retained")
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    boot = announcements([build(s) for s in load_specs(devices, "retained")], datetime.now(UTC))
    return len({m.topic for m in boot if m.retain})


async def count_up(port: int, devices: int, wait: float) -> float:
    """Seconds until `devices` device descriptions are on the hub API (from when this is called)."""
    began = time.perf_counter()
    ids: set[str] = set()
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-scale-{time.monotonic_ns()}") as c:
        await c.subscribe("hub/bench/devices/+")
        async with asyncio.timeout(wait):
            async for m in c.messages:
                if m.payload:
                    ids.add(m.topic.value)
                if len(ids) >= devices:
                    return time.perf_counter() - began
    raise TimeoutError


def main() -> None:
    p = args_parser(__doc__ or "")
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the hub to be up")
    a = p.parse_args()
    sizes = [200] if a.quick else [int(x) for x in a.sizes.split(",")]
    runs = 1 if a.quick else a.runs
    report = Report("scale", ["devices", "subject", "up in s (median)", "RSS MB (median)", "runs"])
    for n in sizes:
        hub_up: list[float] = []
        hub_rss: list[float] = []
        bare_up: list[float] = []
        bare_rss: list[float] = []
        for _ in range(runs):
            with workdir() as work, mosquitto(work, big_home=True) as broker:
                retained = announce(broker.port, n)
                cfg = work / "scale.yaml"
                cfg.write_text(hub_config(f"mqtt://127.0.0.1:{broker.port}"))
                began = time.perf_counter()
                with child(
                    [PYTHON, "-m", "hub.cli", "run", "-c", str(cfg), "--data-dir", str(work / "data")],
                    cwd=ROOT,
                    log=work / "hub.log",
                ) as proc:
                    try:
                        asyncio.run(count_up(broker.port, n, a.wait))
                        hub_up.append(time.perf_counter() - began)
                    except TimeoutError:
                        hub_up.append(float("inf"))  # not up within --wait seconds
                    hub_rss.append(rss_mb(proc.pid))
                began = time.perf_counter()
                out = subprocess.run(
                    [PYTHON, "-c", BARE, str(broker.port), str(retained)],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=True,
                )
                bare_up.append(time.perf_counter() - began)
                bare_rss.append(float(json.loads(out.stdout)["rss"]))
        report.add(
            devices=n,
            subject="hub (adopted, on its API)",
            **{"up in s (median)": median(hub_up), "RSS MB (median)": median(hub_rss), "runs": runs},
        )
        report.add(
            devices=n,
            subject="bare aiomqtt (all retained received)",
            **{"up in s (median)": median(bare_up), "RSS MB (median)": median(bare_rss), "runs": runs},
        )
    report.notes.append("both times include starting the Python process; targets: 10,000 devices up < 5 s, < 150 MB")
    report.notes.append("Mosquitto with max_queued_messages 100000 (its default 1,000 drops retained discovery)")
    report.emit()


if __name__ == "__main__":
    main()
