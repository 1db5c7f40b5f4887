"""Run a real hub for a test: in-process on the test's loop, or as a `hub run` process to signal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from hub.config import Config, load_config_text
from hub.supervisor import Hub, Paths

WAIT = 10.0  # upper bound for any hand-off; they take milliseconds


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:  # noqa: ASYNC109
    """Wait (bounded) for a condition that no event announces (another thread, a browser, a database)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - nothing to await: no hook announces it
            await asyncio.sleep(0.02)


def config_text(broker_url: str | None, *, home: str | None = None, extra: str = "", local_port: int = 1883) -> str:
    """A small devices.yaml for a test home with a unique id (so topics never collide)."""
    home = home or f"t{uuid.uuid4().hex[:10]}"
    url = f"  url: {broker_url}\n" if broker_url else f"  local_port: {local_port}\n"
    return (
        f"home: {{id: {home}, name: Test home, timezone: Asia/Shanghai, language: en}}\n"
        f"mqtt:\n{url}"
        "discovery:\n  mdns: {enabled: false}\n"
        "store: {batch_seconds: 0.05}\n"
        "rooms:\n  - {id: kitchen, name: Kitchen}\n  - {id: bedroom, name: Bedroom}\n" + extra
    )


def make_config(text: str, base_dir: Path) -> Config:
    """Load a test devices.yaml from text."""
    return load_config_text(text, "devices.yaml", base_dir=base_dir)


@contextlib.asynccontextmanager
async def running_hub(config: Config, data_dir: Path) -> AsyncIterator[Hub]:
    """An in-process hub, ready (connected and initial state published) inside the block."""
    hub = Hub(config, Paths(data_dir))
    task = asyncio.create_task(hub.run())
    ready = asyncio.create_task(hub.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        await task  # raises what went wrong
        raise RuntimeError("the hub stopped before it was ready")
    if ready not in done:
        raise TimeoutError("the hub was not ready in time")
    try:
        yield hub
    finally:
        hub.stop()
        await asyncio.wait_for(task, WAIT)


@contextlib.contextmanager
def hub_process(config_path: Path, data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `hub run` process; killed at the end of the block if still running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "-c", str(config_path), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


class Watcher:
    """An MQTT client that collects messages on some filters, and waits for one that matches."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[aiomqtt.Message] = []
        self._changed = asyncio.Condition()

    async def _pump(self) -> None:
        async for msg in self.client.messages:
            async with self._changed:
                self.seen.append(msg)
                self._changed.notify_all()

    async def wait_raw(self, topic: str, timeout: float = WAIT) -> bytes:  # noqa: ASYNC109
        """The payload bytes of the first message seen on `topic` (for payloads that are not JSON)."""

        async def wait() -> bytes:
            async with self._changed:
                while True:
                    for msg in self.seen:
                        if msg.topic.value == topic:
                            return bytes(msg.payload)  # type: ignore[arg-type]
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def wait_for(self, topic: str, predicate: Any = None, timeout: float = WAIT) -> Any:  # noqa: ASYNC109
        """The JSON payload of the first message on `topic` for which predicate(payload) holds."""

        def match() -> Any:
            for msg in reversed(self.seen):
                if msg.topic.value == topic:
                    raw = msg.payload
                    data = json.loads(raw) if raw else None
                    if predicate is None or predicate(data):
                        return data, True
            return None, False

        async def wait() -> Any:
            async with self._changed:
                while True:
                    data, ok = match()
                    if ok:
                        return data
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def watching(host: str, port: int, *filters: str) -> AsyncIterator[Watcher]:
    """A Watcher subscribed to these filters on a broker."""
    async with aiomqtt.Client(host, port, identifier=f"watch-{uuid.uuid4().hex[:8]}") as client:
        for f in filters:
            await client.subscribe(f, qos=1)
        watcher = Watcher(client)
        pump = asyncio.create_task(watcher._pump())
        try:
            yield watcher
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
