"""Alerts end to end: a real broker, apprise posting to a local HTTP server, a real `hub run` killed mid-way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp import web
from apprise.plugins.dingtalk import NotifyDingTalk

from hub.store import Store
from tests.brokers import Mosquitto
from tests.hubctl import WAIT, config_text, hub_process, make_config, running_hub, until, watching
from tests.test_hub import bridge_devices

WINDOW = "z2m-0x00158d0001e1a85a"  # MCCGQ01LM contact, friendly name livingroom/window


class Inbox:
    """A local HTTP endpoint that records every notification posted to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, str, Any]] = []
        self._changed = asyncio.Condition()
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._changed:
            self.posts.append((time.monotonic(), request.path, body))
            self._changed.notify_all()
        if request.path == "/fail":
            return web.Response(status=500, text="down for maintenance")
        if request.path == "/dingtalk":
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        return web.json_response({"ok": True})

    def paths(self) -> list[str]:
        return [p for _, p, _ in self.posts]

    async def wait_for(self, path: str, count: int = 1, timeout: float = WAIT) -> float:  # noqa: ASYNC109
        """When the count-th post to a path arrived (monotonic seconds)."""

        async def wait() -> float:
            async with self._changed:
                while True:
                    times = [t for t, p, _ in self.posts if p == path]
                    if len(times) >= count:
                        return times[count - 1]
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def inbox() -> AsyncIterator[Inbox]:
    box = Inbox()
    app = web.Application()
    app.router.add_post("/{name}", box.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    box.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield box
    finally:
        await runner.cleanup()


def home_text(broker: str, base: str, port: int, rules: str, alerts: str) -> str:
    extra = (
        "people:\n  caregivers:\n"
        f"    - {{id: daughter, name: Daughter, tier: 1, language: zh-CN, notify: ['json://127.0.0.1:{port}/fail',"
        f" 'dingtalk://t0k3n5ecret/']}}\n"
        f"    - {{id: neighbour, name: Neighbour, tier: 2, language: en, notify: ['json://127.0.0.1:{port}/t2']}}\n"
        f"alerts: {alerts}\n"
        f"devices:\n  - {{id: {WINDOW}, name: Front window, room: kitchen}}\n"
        f"rules:\n{rules}"
    )
    text = config_text(broker, extra=extra)
    return text.replace("discovery:\n", f"discovery:\n  zigbee2mqtt: {{base_topic: {base}}}\n")


async def publish(port: int, topic: str, payload: bytes | str, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


CRITICAL_ON_OPEN = (
    "  - kind: generic\n    id: window-open\n    when: {device: " + WINDOW + ", point: contact, is: true}\n"
    "    then: {alert: {severity: critical, message: {en: The window opened, zh-CN: 窗户被打开}}}\n"
)


async def test_escalation_tier_1_then_tier_2_then_ack_over_mqtt_stops_it(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    async with inbox() as box:
        # DingTalk's cloud address, pointed at the local server (the class attribute apprise formats).
        monkeypatch.setattr(
            NotifyDingTalk, "notify_url", f"http://127.0.0.1:{box.port}/dingtalk?access_token={{token}}"
        )
        window = 3.0
        alerts = f"{{critical_ack_minutes: {window / 60}, renotify: 0, rounds: 2}}"
        config = make_config(home_text(mosquitto.url, base, box.port, CRITICAL_ON_OPEN, alerts), tmp_path)
        root = f"hub/{config.home.id}"
        await publish(mosquitto.port, f"{base}/bridge/devices", bridge_devices(), retain=True)
        async with (
            running_hub(config, tmp_path / "data") as hub,
            watching("127.0.0.1", mosquitto.port, f"{root}/alerts/#") as w,
        ):
            await publish(mosquitto.port, f"{base}/livingroom/window", json.dumps({"contact": True}))  # closed
            await publish(mosquitto.port, f"{base}/livingroom/window", json.dumps({"contact": False}))
            # Tier 1: the daughter's first channel fails, her second (DingTalk, in Chinese) works.
            t1 = await box.wait_for("/dingtalk")
            assert box.paths()[:2] == ["/fail", "/dingtalk"]
            content = box.posts[1][2]["text"]["content"]
            assert "[!!] 紧急" in content
            assert "窗户被打开" in content
            assert "t0k3n5ecret" not in content
            alert = await w.wait_for(
                next(iter([f"{root}/alerts/{a}" for a in hub.rules.engine.book.open])),
                lambda d: d and d["state"] == "notified",
            )
            assert alert["tier"] == 1
            assert alert["severity"] == "critical"
            assert [(d["caregiver"], d["channel"], d["ok"]) for d in alert["deliveries"]] == [
                ("daughter", "json", False),
                ("daughter", "dingtalk", True),
            ]
            # No acknowledgement: tier 2 is told one window later.
            t2 = await box.wait_for("/t2")
            # Timed from tier 1's first attempt, which follows the raise at once (the working
            # channel's post, t1, can come most of a second later on a busy machine).
            t0 = await box.wait_for("/fail")
            assert t0 <= t1
            assert window - 0.5 <= t2 - t0 <= window + 1.5
            assert "The window opened" in box.posts[-1][2]["message"]
            # The neighbour acknowledges over MQTT: the ladder stops.
            await publish(
                mosquitto.port, f"{root}/alerts/{alert['id']}/ack", json.dumps({"by": "neighbour", "note": "on my way"})
            )
            acked = await w.wait_for(f"{root}/alerts/{alert['id']}", lambda d: d and d["state"] == "acknowledged")
            assert acked["acknowledged_by"] == "neighbour"
            assert acked["ack_channel"] == "mqtt"
            assert 0 < acked["ack_seconds"] < 3 * window
            assert f"alert/{alert['id']}" not in hub.rules.engine.timers.entries  # nothing more is due
            posts = len(box.posts)
            # An unknown alert is refused, counted, never fatal.
            await publish(mosquitto.port, f"{root}/alerts/nope/ack", json.dumps({"by": "x"}))
        assert len(box.posts) == posts
        assert hub.counters["request_rejected.refused"] >= 1
    store = Store(f"sqlite:///{tmp_path / 'data' / 'hub.db'}")
    store.open()
    try:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT transition, actor, channel, note FROM alert_audit WHERE alert_id = ? ORDER BY id",
                (alert["id"],),
            ).all()
    finally:
        await store.close()
    trail = [(r[0], r[1], r[2]) for r in rows]
    assert trail[:2] == [("raised", None, None), ("escalation_started", None, None)]
    assert ("delivery", "daughter", "json") in trail
    assert ("delivery", "daughter", "dingtalk") in trail
    assert ("notified", None, None) in trail
    assert ("escalated", None, None) in trail
    assert ("delivery", "neighbour", "json") in trail
    assert trail[-1] == ("acknowledged", "neighbour", "mqtt")
    failed = next(r for r in rows if r[0] == "delivery" and r[2] == "json" and r[1] == "daughter")
    assert failed[3].startswith("failed")
    assert str(box.port) not in failed[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    return path


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def test_sigkill_mid_countdown_fires_on_time_once_after_restart(mosquitto: Mosquitto, tmp_path: Path) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    rules = (
        "  - kind: inactivity\n    window: always\n    after: 6s\n    after_with_presence: 6s\n    resident_first: 0s\n"
    )
    text = home_text(mosquitto.url, base, 9, rules, "{}")  # caregivers unreachable: not what is tested here
    path = write(tmp_path, text)
    root = f"hub/{make_config(text, tmp_path).home.id}"
    await publish(mosquitto.port, f"{base}/bridge/devices", bridge_devices(), retain=True)
    async with watching("127.0.0.1", mosquitto.port, f"{root}/#") as w:
        with hub_process(path, tmp_path / "data") as proc:
            await w.wait_for(f"{root}/devices/{WINDOW}", lambda d: d and d["points"])  # known with its points
            await publish(mosquitto.port, f"{base}/livingroom/window", json.dumps({"contact": False}))
            # The countdown is published only after its deadline is stored.
            view = await w.wait_for(
                f"{root}/rules/inactivity", lambda d: d and d["state"] == "counting" and d["deadline"], timeout=WAIT
            )
            deadline = _ts(view["deadline"])
            await asyncio.sleep(max(0.0, deadline - 4 - time.time()))
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, WAIT)
        assert time.time() < deadline - 1, "killed too late to test the restart"
        with hub_process(path, tmp_path / "data"):
            alert = await wait_alert(w, root, "inactivity")
            assert abs(_ts(alert["raised_at"]) - deadline) < 1.0  # on time, not at the restart
            await asyncio.sleep(1.5)
            mine = [m for m in w.seen if m.topic.value.startswith(f"{root}/alerts/") and m.payload]
            assert {json.loads(m.payload)["id"] for m in mine} == {alert["id"]}
            assert all(json.loads(m.payload)["count"] == 1 for m in mine)


async def wait_alert(w: Any, root: str, rule_id: str) -> dict[str, Any]:
    """The first retained alert of a rule published under root."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for m in w.seen:
            if m.topic.value.startswith(f"{root}/alerts/") and m.payload:
                data = json.loads(m.payload)
                if data["rule_id"] == rule_id:
                    return data  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no alert of {rule_id}")


async def test_sigkill_during_an_escalation_step_tells_tier_2_on_time_once(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    async with inbox() as box:
        window = 6.0
        alerts = f"{{critical_ack_minutes: {window / 60}, renotify: 0, rounds: 1}}"
        text = home_text(mosquitto.url, base, box.port, CRITICAL_ON_OPEN, alerts).replace(
            "'dingtalk://t0k3n5ecret/'", f"'json://127.0.0.1:{box.port}/t1'"
        )
        path = write(tmp_path, text)
        root = f"hub/{make_config(text, tmp_path).home.id}"
        await publish(mosquitto.port, f"{base}/bridge/devices", bridge_devices(), retain=True)
        async with watching("127.0.0.1", mosquitto.port, f"{root}/#") as w:
            with hub_process(path, tmp_path / "data") as proc:
                await w.wait_for(f"{root}/devices/{WINDOW}", lambda d: d and d["points"])
                await publish(mosquitto.port, f"{base}/livingroom/window", json.dumps({"contact": False}))  # open
                await box.wait_for("/t1")
                told = time.time()
                # Once the alert shows it was delivered, its next step is stored: kill now.
                alert = await wait_alert(w, root, "window-open")
                await w.wait_for(f"{root}/alerts/{alert['id']}", lambda d: d and d["state"] == "notified")
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait, WAIT)
            assert "/t2" not in box.paths()
            with hub_process(path, tmp_path / "data"):
                await box.wait_for("/t2", timeout=window + WAIT)
                late = time.time() - told
                assert window - 1.0 <= late <= window + 2.0
                # Exactly once: tier 1 is not told again by the restart, tier 2 once.
                assert (box.paths().count("/fail"), box.paths().count("/t1"), box.paths().count("/t2")) == (1, 1, 1)


async def test_deadlines_moved_by_a_stream_of_reports_are_stored_in_bulk(mosquitto: Mosquitto, tmp_path: Path) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    rules = "  - kind: inactivity\n    window: always\n    after: 1h\n    after_with_presence: 1h\n"
    config = make_config(home_text(mosquitto.url, base, 9, rules, "{}"), tmp_path)
    await publish(mosquitto.port, f"{base}/bridge/devices", bridge_devices(), retain=True)
    events = f"hub/{config.home.id}/events"
    async with running_hub(config, tmp_path / "data") as hub, watching("127.0.0.1", mosquitto.port, events) as w:
        timers = hub.rules.engine.timers.entries
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for i in range(30):  # each opening or closing is activity: the countdown moves a little later
                await client.publish(f"{base}/livingroom/window", json.dumps({"contact": i % 2 == 0}))

        def heard() -> int:
            # An event leaves for `events` at the end of the turn in which the rules heard it.
            changes = [json.loads(m.payload) for m in w.seen]
            return sum(1 for e in changes if e.get("device_id") == WINDOW and "contact" in e.get("values", {}))

        await until(lambda: heard() >= 30)
        [(key, (moved, _, _))] = [(k, v) for k, v in timers.items() if v[1] == "inactivity"]
        reader = Store(hub.store.url)
        reader.open()
        try:  # written within MOVES_EVERY, with the other moves
            await until(lambda: {t.key: t.deadline for t in reader.load_timers()}.get(key) == moved)
        finally:
            await reader.close()
        assert hub.rules.counters["deadline_moves_unsaved"] == 0
