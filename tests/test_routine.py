"""routine_change: history relearnt from the store after a restart, the weekly digest, alert transitions as events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from hub.model import Device, Kind, Point, Protocol, StateChanged, Status
from hub.replay import Recording, as_table, run
from hub.rules.effects import Effect, Notify
from hub.rules.library import RoutineChangeRule
from hub.rules.routine import Category, changes, weekly_digest
from hub.store import Store
from tests.brokers import Mosquitto
from tests.hubctl import config_text, make_config, running_hub, watching
from tests.rules_home import MONDAY, TZ, Home

MOTION = "z2m-kitchen-motion-0x01"


def three_weeks(trips_last_week: int) -> list[tuple[datetime, Category]]:
    """A steady home for three weeks; only the night bathroom trips change in the last week."""
    log: list[tuple[datetime, Category]] = []
    for day in range(21):
        d = MONDAY + timedelta(days=day)
        trips = trips_last_week if day >= 14 else 1
        log += [(d.replace(hour=2, minute=10 + 20 * n), "bathroom") for n in range(trips)]
        log += [(d.replace(hour=7), "other"), (d.replace(hour=8), "kitchen"), (d.replace(hour=12), "kitchen")]
        log += [(d.replace(hour=18), "kitchen"), (d.replace(hour=10), "exit"), (d.replace(hour=10, minute=2), "exit")]
    return sorted(log)


def test_weekly_digest_flags_only_the_change_of_30_percent_or_more() -> None:
    log = three_weeks(trips_last_week=2)
    end = MONDAY + timedelta(days=21)
    digest = weekly_digest(log, end, TZ)
    assert digest is not None
    figures = {m.name: (m.now, m.before, m.flagged) for m in digest.measures}
    assert figures == {
        "night_bathroom_trips": (14.0, 7.0, True),  # one a night before, two a night now: +100 %
        "first_activity_minute": (420.0, 420.0, False),  # 07:00 every day
        "meals": (21.0, 21.0, False),
        "exits": (7.0, 7.0, False),  # two reports two minutes apart are one exit
    }
    assert weekly_digest(three_weeks(trips_last_week=1), end, TZ).flagged == ()  # type: ignore[union-attr]
    assert weekly_digest(log[len(log) // 2 :], end, TZ) is None  # under three weeks of history


def test_changes_are_what_differs_between_merged_rows() -> None:
    t = MONDAY
    rows = [
        (t, "a", {"motion": True, "lux": 3}),
        (t + timedelta(minutes=1), "a", {"motion": True, "lux": 5}),
        (t + timedelta(minutes=2), "a", {"motion": False, "lux": 5}),
    ]
    assert [(c.key, c.value) for c in changes(rows)] == [("motion", True), ("lux", 3), ("lux", 5), ("motion", False)]


async def test_weekly_digest_is_an_info_alert_never_sent_to_a_phone() -> None:
    home = Home.build("  - kind: routine_change\n", start=MONDAY.replace(hour=7))
    home.engine.book.notify = True  # as in a running hub: only info must stay off the phones
    seen: list[object] = []
    drain = home.engine.drain

    def spy() -> list[Effect]:
        effects = drain()
        seen.extend(effects)
        return effects

    home.engine.drain = spy  # type: ignore[method-assign]
    for day in range(21):
        night = ["02:10", "02:40"] if day >= 14 else ["02:10"]  # after 21:00: the next night
        for hhmm in ["07:00", "08:00", "12:00", "18:00", "21:00", *night]:
            await home.at(hhmm)
            device = "z2m-bath-motion" if hhmm.startswith("02") else "z2m-kitchen-motion"
            home.set(device, motion=True)
            home.set(device, motion=False)
    await home.at("08:30")
    digests = [a for a in home.raised if a.rule_id == "routine_change.digest"]
    assert len(digests) == 1  # the Monday 08:00 after three weeks; earlier Mondays lacked history
    assert digests[0].severity == "info"
    assert "night bathroom trips 14 (7) +100%" in digests[0].message["en"]
    told = {e.alert_id for e in seen if isinstance(e, Notify)}
    info = {c.view.id for c in home.changes if c.view.severity == "info"}
    assert told, "device health warnings are sent: the spy sees what is sent"
    assert digests[0].id in info
    assert not told & info


async def test_replay_of_three_weeks_prints_the_digest(tmp_path: Path) -> None:
    config = make_config(
        config_text(
            None,
            extra="devices:\n  - {id: casas-M1, name: Bath motion, room: bathroom}\nrules:\n  - kind: routine_change\n",
        ).replace(
            "  - {id: bedroom, name: Bedroom}\n", "  - {id: bedroom, name: Bedroom}\n  - {id: bathroom, name: Bath}\n"
        ),
        tmp_path,
    )
    dev = Device(
        id="casas-M1",
        name="M1",
        protocol=Protocol.HOMIE,
        room="bathroom",
        status=Status.ADOPTED,
        points=(Point(key="motion", kind=Kind.MOTION),),
    )
    items = []
    for day in range(21):
        for hh, mm in [(2, 10), (7, 0)] + ([(3, 10)] if day >= 14 else []):
            ts = (MONDAY + timedelta(days=day)).replace(hour=hh, minute=mm)
            items.append((ts, StateChanged(ts=ts, device_id=dev.id, values={"motion": True})))
            items.append(
                (
                    ts + timedelta(minutes=1),
                    StateChanged(ts=ts + timedelta(minutes=1), device_id=dev.id, values={"motion": False}),
                )
            )
    items.sort(key=lambda i: i[0])
    recording = Recording(format="export", devices=[dev], items=list(items))
    result = await run(config, recording)
    assert "routine_change" in result.digests
    text = as_table(result, TZ, "en")
    assert "weekly digest of routine_change" in text
    assert "night bathroom trips 14 (7) +100%" in text


async def test_restarted_hub_relearns_history_and_flags_a_silence_and_publishes_transitions(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    extra = f"devices:\n  - {{id: {MOTION}, name: Kitchen motion, room: kitchen}}\nrules:\n  - kind: routine_change\n"
    config = make_config(config_text(mosquitto.url, extra=extra), tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    # Sixteen days of a home where someone moves every 30 minutes, stored as a hub would have;
    # the last movement three hours ago: far past the usual 30 minutes (and the 2 h floor).
    store = Store(f"sqlite:///{data / 'hub.db'}")
    store.open()
    now = datetime.now(UTC)
    await store.save_device(
        Device(
            id=MOTION,
            name="Kitchen motion",
            protocol=Protocol.Z2M,
            room="kitchen",
            status=Status.ADOPTED,
            points=(Point(key="motion", kind=Kind.MOTION),),
        )
    )
    last = now - timedelta(hours=3)
    ts = last - timedelta(days=16)
    while ts <= last:
        store.record_state(MOTION, {"motion": True}, ts)
        store.record_state(MOTION, {"motion": False}, ts + timedelta(minutes=1))
        ts += timedelta(minutes=30)
    await store.close()

    root = f"hub/{config.home.id}"
    async with (
        watching("127.0.0.1", mosquitto.port, f"{root}/events", f"{root}/alerts/#") as w,
        running_hub(config, data) as hub,
    ):
        rule_obj = hub.rules.engine.rules["routine_change"]
        assert isinstance(rule_obj, RoutineChangeRule)
        assert rule_obj.usual(last) == timedelta(minutes=30)  # learnt from the store, not from waiting
        raised = await w.wait_for(
            f"{root}/events", lambda d: d and d.get("type") == "alert_changed" and d["transition"] == "raised"
        )
        assert raised["rule_kind"] == "routine_change"
        assert raised["severity"] == "info"
        alert_id = raised["alert_id"]
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(f"{root}/alerts/{alert_id}/ack", json.dumps({"by": "daughter"}), qos=1)
        acked = await w.wait_for(
            f"{root}/events",
            lambda d: d and d.get("type") == "alert_changed" and d["transition"] == "acknowledged",
        )
        assert (acked["alert_id"], acked["actor"], acked["state"]) == (alert_id, "daughter", "acknowledged")
    store = Store(f"sqlite:///{data / 'hub.db'}")
    store.open()
    try:
        with store.engine.connect() as conn:
            logged = conn.exec_driver_sql("SELECT payload FROM event WHERE type = 'alert_changed' ORDER BY id").all()
    finally:
        await store.close()
    transitions = [json.loads(p[0])["transition"] if isinstance(p[0], str) else p[0]["transition"] for p in logged]
    assert transitions[0] == "raised"
    assert "acknowledged" in transitions
