"""`hub demo` from a clean data folder on the embedded broker: every dialect on the hub API, the injected SOS
raises an alert that is acknowledged, and quitting leaves no process and no port behind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.brokers import free_port, wait_port
from tests.hubctl import Watcher, watching

ROOT = Path(__file__).parents[1]
DIALECTS = ("z2m-", "ha-", "tasmota-", "shelly-", "homie-")


async def first(w: Watcher, predicate: Callable[[str, Any], bool], timeout: float) -> tuple[str, Any]:  # noqa: ASYNC109
    """The first message seen (topic, JSON payload) for which predicate holds."""

    async def wait() -> tuple[str, Any]:
        async with w._changed:
            while True:
                for msg in w.seen:
                    data = json.loads(msg.payload) if msg.payload else None
                    if predicate(msg.topic.value, data):
                        return msg.topic.value, data
                await w._changed.wait()

    return await asyncio.wait_for(wait(), timeout)


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port any more."""
    with socket.socket() as s:
        # The broker closes its clients' connections first, so their ends linger in TIME_WAIT
        # for a minute. They carry SO_REUSEADDR from the broker's listener (asyncio sets it), so
        # a bind that sets it too passes over them, and still fails while anything listens there:
        # a leftover broker is still caught.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_demo_runs_the_home_raises_the_alert_and_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo-data"
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it is instant; it is read from a thread
        [
            sys.executable,
            "-m",
            "hub.cli",
            "demo",
            "-c",
            str(ROOT / "devices.yaml"),
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--viewer",
            "text",
            "--no-mdns",
            "--incident",
            "sos@3s",
            "--seconds",
            "90",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdin is not None
    try:
        await asyncio.to_thread(wait_port, port, 30)
        async with watching("127.0.0.1", port, "hub/wang-home/devices/+", "hub/wang-home/alerts/+") as w:
            for prefix in DIALECTS:
                await first(w, lambda t, d, p=prefix: t.startswith(f"hub/wang-home/devices/{p}") and bool(d), 30)
            _, alert = await first(w, lambda t, d: "/alerts/" in t and bool(d) and d["rule_kind"] == "sos", 30)
            assert alert["severity"] == "critical"
            topic = f"hub/wang-home/alerts/{alert['id']}"
            acked: Any = "never"
            for _ in range(10):  # the demo acknowledges the alerts it has seen: it may see this one a moment later
                proc.stdin.write(b"ack\n")
                proc.stdin.flush()
                try:
                    acked = await w.wait_for(topic, lambda a: a is None or a["state"] == "acknowledged", 3)
                    break
                except TimeoutError:
                    continue
            assert acked != "never", "the alert was never acknowledged"
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.stdin.write(b"q\n")
        proc.stdin.flush()
        out, _ = await asyncio.to_thread(proc.communicate, None, 30)
        assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
        assert "Wang Xiuying" in out.decode()
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert port_is_free(port)
        assert (data / "hub.db").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def _until(check: Callable[[], bool], timeout: float) -> bool:
    # A terminal gives no event to await: poll the screen, bounded.
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_demo_in_the_tui_acknowledges_with_enter_and_quits_with_q(tmp_path: Path) -> None:
    port = free_port()
    session = f"hubdemo{os.getpid()}"
    done = tmp_path / "exit-code"
    cmd = (
        f"cd {ROOT} && {sys.executable} -m hub.cli demo --data-dir {tmp_path / 'data'} --port {port} --no-mdns "
        f"--viewer tui --incident sos@2s; echo $? > {done}"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd], check=True)
    try:
        # The alert's row selected in the list, not only the banner (which is drawn first): an
        # Enter sent before the list holds the row would reach nothing.
        assert _until(lambda: "> [!!]" in _screen(session), 45), _screen(session)
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        assert _until(lambda: "╭" in _screen(session), 10), _screen(session)  # the note prompt
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        assert _until(lambda: "[OK]" in _screen(session) and "demo" in _screen(session), 15), _screen(session)
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        assert _until(done.exists, 30)
        assert _until(lambda: done.read_text().strip() != "", 5)
        assert done.read_text().strip() == "0"
        assert port_is_free(port)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
