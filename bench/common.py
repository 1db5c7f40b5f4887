"""What every benchmark shares: private brokers, child processes that never outlive a run, medians, reports."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.brokers import Mosquitto, free_port, wait_port  # noqa: E402

PYTHON = sys.executable
NODE_RED_VERSION = "4.1"
NODE_RED_DIR = Path(os.environ.get("HUB_BENCH_CACHE", ROOT / "var" / "cache")) / "node-red"


class NaglingMosquitto(Mosquitto):
    """A private Mosquitto with its default `set_tcp_nodelay false` (Nagle's algorithm on)."""

    def config(self) -> str:
        """The test broker's config minus set_tcp_nodelay."""
        return super().config().replace("set_tcp_nodelay true\n", "")


class BigHomeMosquitto(Mosquitto):
    """A private Mosquitto set up for a large home: up to 100,000 messages queued per client.

    Mosquitto's default (1,000) drops what a client subscribing to tens of thousands of
    retained topics has not read yet, for any client that pauses a moment: the README says to
    raise it beyond a few thousand devices.
    """

    def config(self) -> str:
        """The test broker's config plus max_queued_messages."""
        return super().config() + "max_queued_messages 100000\n"


@contextlib.contextmanager
def mosquitto(workdir: Path, *, nodelay: bool = True, big_home: bool = False) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free 127.0.0.1 port for the block."""
    broker = BigHomeMosquitto(workdir) if big_home else Mosquitto(workdir) if nodelay else NaglingMosquitto(workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def child(
    args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own session, killed with its whole group at the end of the block."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def sim_command(
    port: int,
    devices: int,
    *,
    seconds: float,
    rate: float | None = None,
    dialect: str | None = None,
    announce: bool = True,
) -> list[str]:
    """The `hub sim` command line of a load generator against the broker on a 127.0.0.1 port."""
    cmd = [PYTHON, "-m", "hub.cli", "sim", "--url", f"mqtt://127.0.0.1:{port}", "--devices", str(devices)]
    cmd += ["--seconds", str(seconds)]
    if rate is not None:
        cmd += ["--rate", str(rate)]
    if dialect is not None:
        cmd += ["--dialect", dialect]
    return cmd if announce else [*cmd, "--no-announce"]


def hub_config(url: str | None, *, home: str = "bench", local_port: int | None = None, extra: str = "") -> str:
    """devices.yaml for a benchmark hub: auto-adopt (so the whole path runs), no mDNS, SQLite store."""
    broker = f"  url: {url}\n" if url else f"  local_port: {local_port}\n"
    return (
        f"home: {{id: {home}, name: Bench home, timezone: Asia/Shanghai, language: en}}\n"
        f"mqtt:\n{broker}"
        "discovery:\n  auto_adopt: true\n  mdns: {enabled: false}\n"
        "rooms:\n  - {id: hallway, name: Hallway}\n  - {id: bedroom, name: Bedroom}\n" + extra
    )


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def node_red() -> Path | None:
    """red.js of the cached Node-RED, installing it with npm when missing; None (with a reason) if impossible."""
    red = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
    if red.exists():
        return red
    if not shutil.which("node") or not shutil.which("npm"):
        print("node-red: node or npm is missing; the Node-RED baseline is skipped", file=sys.stderr)
        return None
    NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"node-red@{NODE_RED_VERSION}"]
    done = subprocess.run(cmd, cwd=NODE_RED_DIR, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not red.exists():
        print(f"node-red: npm install failed; baseline skipped:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return red


@dataclass
class Report:
    """Rows of figures, printed as JSON and as a table."""

    name: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        """One row."""
        self.rows.append(row)

    def emit(self) -> None:
        """JSON on one line, then a readable table."""
        print(json.dumps({"bench": self.name, "rows": self.rows, "notes": self.notes}, ensure_ascii=False))
        widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in self.rows)) for c in self.columns}
        print()
        print("  ".join(c.ljust(widths[c]) for c in self.columns))
        print("  ".join("-" * widths[c] for c in self.columns))
        for r in self.rows:
            print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in self.columns))
        for n in self.notes:
            print(f"note: {n}")
        print()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return "-" if v is None else str(v)


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def args_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="seconds, not minutes: check that it runs and reports")
    p.add_argument("--runs", type=int, default=5, help="repetitions; figures are medians (default: %(default)s)")
    return p


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary folder for brokers, configs and data."""
    keep = os.environ.get("HUB_BENCH_KEEP")  # a folder to keep logs in, for looking into a failure
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as d:
        yield Path(d)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll a condition (for child processes that give no event to await)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s")
        time.sleep(0.05)


__all__ = ["Mosquitto", "free_port", "wait_port"]
