"""The store on real SQLite files and a real PostgreSQL: batching, durability, retention, export."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from hub.clock import SimClock
from hub.model import Device, DeviceDiscovered, PointEvent, Protocol, StateChanged, Status
from hub.store import ALERT, EVENT, STATE, Store, StoreError, UTCDateTime, _json_serializer
from tests.hubctl import until

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, or a private PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        # A folder that does not exist yet: the store creates it.
        yield f"sqlite:///{tmp_path}/data/hub.sqlite"
        return
    base = sa.make_url(request.getfixturevalue("pg_url"))
    schema = f"store_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # search_path puts this test's tables in its own schema, so that other tests using
        # the same database at the same time never see them.
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """An open store with a large batch and a long interval: tests flush when they choose."""
    s = Store(db_url, batch_size=1000, batch_seconds=3600)
    s.open()
    yield s
    await s.close()


async def test_batch_by_size_flushes_without_waiting(db_url: str) -> None:
    s = Store(db_url, batch_size=50, batch_seconds=3600)
    s.open()
    try:
        for i in range(49):
            s.record_state("z2m-a", {"temperature": 20 + i / 10}, T0 + timedelta(seconds=i))
        assert s.buffered == 49
        s.record_state("z2m-a", {"temperature": 30.0}, T0 + timedelta(seconds=49))
        # The 50th row handed the batch to the writer at once; nobody runs run() or flush().
        assert s.buffered == 0
        # Rows that arrive while that batch is written follow as soon as the writer is free,
        # all of them in one transaction (up to eight batches' worth): one commit, not two.
        for i in range(70):
            s.record_state("z2m-b", {"n": i}, T0 + timedelta(seconds=i))
        await until(lambda: s.stats["batches"] == 2)
        assert s.count("state") == 120
        assert s.stats["rows_written"] == 120
        assert s.buffered == 0
        # Fewer than a batch wait for their time.
        for i in range(20):
            s.record_state("z2m-c", {"n": i}, T0 + timedelta(seconds=i))
        assert s.buffered == 20
    finally:
        await s.close()


async def test_batch_by_time(db_url: str) -> None:
    s = Store(db_url, batch_size=1000, batch_seconds=0.2)
    s.open()
    runner = asyncio.create_task(s.run())
    try:
        started = time.monotonic()
        s.record_state("z2m-a", {"motion": True}, T0)
        s.record_event(PointEvent(ts=T0, device_id="z2m-b", key="action", value="single"))
        assert s.count("state") == 0
        await until(lambda: s.stats["batches"] == 1)
        assert time.monotonic() - started >= 0.2
        assert (s.count("state"), s.count("event")) == (1, 1)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        await s.close()


async def test_events_are_stored_as_json_objects_with_their_columns(db_url: str) -> None:
    # Events reach the database as pydantic wrote them, past the JSON column's own dumping:
    # they must still read back as objects (not as a string of JSON), on both databases.
    s = Store(db_url, batch_size=1000, batch_seconds=3600)
    s.open()
    found = Device(id="z2m-0x1", name="Hall sensor", protocol=Protocol.Z2M, identifiers={"ieee": "0x1"})
    events = [
        DeviceDiscovered(ts=T0, device=found),
        StateChanged(ts=T0 + timedelta(seconds=1), device_id="z2m-0x1", values={"temperature": 21.5, "on": True}),
        PointEvent(ts=T0 + timedelta(seconds=2), device_id="z2m-b", key="action", value="single"),
    ]
    s.record_event(events[0], events[0].model_dump_json())  # as the hub logs what it published
    for event in events[1:]:
        s.record_event(event)
    try:
        await s.flush()
        with s.engine.connect() as conn:
            rows = conn.execute(
                sa.select(EVENT.c.ts, EVENT.c.type, EVENT.c.device_id, EVENT.c.payload).order_by(EVENT.c.ts)
            ).all()
        assert [(r.ts, r.type, r.device_id, r.payload) for r in rows] == [
            (e.ts, e.type, i, e.model_dump(mode="json"))
            for e, i in zip(events, ["z2m-0x1", "z2m-0x1", "z2m-b"], strict=True)
        ]
    finally:
        await s.close()


async def test_run_flushes_on_cancellation(db_url: str) -> None:
    s = Store(db_url, batch_size=1000, batch_seconds=3600)
    s.open()
    runner = asyncio.create_task(s.run())
    await asyncio.sleep(0)
    for i in range(7):
        s.record_state("z2m-a", {"n": i}, T0 + timedelta(seconds=i))
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert s.count("state") == 7
    await s.close()


async def test_close_flushes_every_pending_row(db_url: str) -> None:
    s = Store(db_url, batch_size=100, batch_seconds=3600)
    s.open()
    for i in range(250):
        s.record_state(f"z2m-{i % 7}", {"n": i}, T0 + timedelta(seconds=i))
    for i in range(30):
        s.record_event(StateChanged(ts=T0 + timedelta(seconds=i), device_id="z2m-1", values={"n": i}))
    await s.close()

    again = Store(db_url)
    again.open()
    try:
        assert again.count("state") == 250
        assert again.count("event") == 30
        latest = again.last_states()
        assert latest["z2m-4"] == (T0 + timedelta(seconds=249), {"n": 249})
        assert len(latest) == 7
    finally:
        await again.close()


async def test_durable_alert_visible_from_a_second_store(store: Store, db_url: str) -> None:
    await store.save_alert("a-1", "smoke", "kitchen", "critical", "raised", T0, {"count": 1})
    await store.save_alert("a-1", "smoke", "kitchen", "critical", "acknowledged", T0, {"count": 2})
    await store.audit("a-1", "acknowledged", "Li Wei", "tui", "on my way", T0 + timedelta(minutes=1))
    await store.save_timer("inactivity:bedroom", "inactivity", T0 + timedelta(hours=4), {"room": "bedroom"})
    device = Device(id="z2m-0x1", name="Smoke alarm", protocol=Protocol.Z2M, room="kitchen")
    await store.save_device(device.model_copy(update={"status": Status.ADOPTED}))

    other = Store(db_url)
    other.open()
    try:
        alerts = other.load_open_alerts()
        assert [(a["id"], a["state"], a["body"], a["raised_at"]) for a in alerts] == [
            ("a-1", "acknowledged", {"count": 2}, T0)
        ]
        assert other.count("alert_audit") == 1
        [timer] = other.load_timers()
        assert (timer.key, timer.deadline, timer.data) == (
            "inactivity:bedroom",
            T0 + timedelta(hours=4),
            {"room": "bedroom"},
        )
        assert timer.deadline.tzinfo is not None
        [loaded] = other.load_devices()
        assert loaded.status is Status.ADOPTED
        assert loaded.room == "kitchen"
        await store.delete_timer("inactivity:bedroom")
        await store.delete_device("z2m-0x1")
        assert other.load_timers() == []
        assert other.load_devices() == []
    finally:
        await other.close()


async def test_a_burst_of_devices_is_saved_and_forgotten_in_one_commit(store: Store) -> None:
    devices = [
        Device(
            id=f"z2m-0x{n}", name=f"Sensor {n}", protocol=Protocol.Z2M, room="kitchen", identifiers={"ieee": f"0x{n}"}
        )
        for n in range(1200)  # more ids than one DELETE takes
    ]
    await store.save_devices(devices)
    writes = store.stats["durable_writes"]
    renamed = devices[0].model_copy(update={"name": "Stove sensor", "status": Status.ADOPTED})
    await store.save_devices([renamed], [d.id for d in devices[1:]])
    assert store.stats["durable_writes"] == writes + 1
    assert store.load_devices() == [renamed]
    assert store.count("device") == 1


_KILLED_WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from hub.store import Store

async def main():
    s = Store(sys.argv[1])
    s.open()
    await s.save_alert("a-kill", "fall", "bathroom", "critical", "raised", datetime.now(UTC), {"n": 1})
    print("saved", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_alert_survives_sigkill(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, str(script), db_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "saved"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    s = Store(db_url)
    s.open()
    try:
        assert [a["id"] for a in s.load_open_alerts()] == ["a-kill"]
    finally:
        s.engine.dispose()


async def _seed_history(store: Store, clock: SimClock, days: int) -> None:
    """One open alert from day 0, then per day a state row, an event and a closed alert with two audit rows."""
    await store.save_alert("open-0", "door", "hall", "critical", "notified", T0, {})
    await store.audit("open-0", "raised", "hub", "rules", None, T0)
    for day in range(days):
        ts = T0 + timedelta(days=day)
        await clock.advance_to(ts)
        store.record_state("z2m-a", {"day": day}, ts)
        store.record_event(StateChanged(ts=ts, device_id="z2m-a", values={"day": day}))
        await store.save_alert(f"closed-{day}", "inactivity", "hall", "warning", "raised", ts, {"day": day})
        await store.audit(f"closed-{day}", "raised", "hub", "rules", None, ts)
        await store.save_alert(f"closed-{day}", "inactivity", "hall", "warning", "resolved", ts, {"day": day})
        await store.audit(f"closed-{day}", "resolved", "hub", "rules", "activity seen", ts)
    await store.flush()


async def test_retention_deletes_exactly_the_old_rows(db_url: str) -> None:
    clock = SimClock(T0)
    s = Store(db_url, clock=clock)
    s.open()
    try:
        await _seed_history(s, clock, days=10)
        now = T0 + timedelta(days=9, hours=12)
        deleted = await s.apply_retention(now, state_days=3, events_days=5, alerts_days=7)
        # state keeps days 7,8,9 (cut at day 6.5); events keep days 5..9 (cut 4.5); closed
        # alerts keep days 3..9 (cut 2.5); the open alert from day 0 is never deleted.
        assert deleted == {"state": 7, "event": 5, "alert_audit": 6, "alert": 3}
        assert s.count("state") == 3
        assert s.count("event") == 5
        assert s.count("alert") == 7 + 1
        assert s.count("alert_audit") == 14 + 1
        assert "open-0" in {a["id"] for a in s.load_open_alerts()}
        with s.engine.connect() as conn:
            oldest_state = conn.execute(sa.select(sa.func.min(STATE.c.ts))).scalar_one()
            oldest_closed = conn.execute(
                sa.select(sa.func.min(ALERT.c.raised_at)).where(ALERT.c.state == "resolved")
            ).scalar_one()
        assert oldest_state == T0 + timedelta(days=7)
        assert oldest_closed == T0 + timedelta(days=3)
        # Nothing more is old enough; None keeps a kind forever.
        again = await s.apply_retention(now, state_days=3, events_days=None, alerts_days=7)
        assert again == {"state": 0, "alert_audit": 0, "alert": 0}
    finally:
        await s.close()


async def test_export_purge_round_trip(db_url: str) -> None:
    clock = SimClock(T0)
    s = Store(db_url, clock=clock)
    s.open()
    try:
        await _seed_history(s, clock, days=4)
        await s.save_timer("t1", "inactivity", T0 + timedelta(days=5), {"room": "hall"})
        before = list(s.export())
        assert [r["table"] for r in before] == sorted(
            (r["table"] for r in before), key=["device", "state", "event", "alert", "alert_audit", "rule_timer"].index
        )
        state_ts = [r["ts"] for r in before if r["table"] == "state"]
        assert state_ts == sorted(state_ts)
        assert state_ts[0] == T0.isoformat()

        cut = T0 + timedelta(days=2)
        deleted = await s.purge_before(cut)
        assert deleted == {"state": 2, "event": 2, "alert_audit": 4, "alert": 2}
        after = list(s.export())

        def key(row: dict[str, Any]) -> tuple[str, object]:
            return (row["table"], row.get("id", row.get("key")))

        gone = {key(r) for r in before} - {key(r) for r in after}
        expected = {("state", r["id"]) for r in before if r["table"] == "state" and r["ts"] < cut.isoformat()}
        expected |= {("event", r["id"]) for r in before if r["table"] == "event" and r["ts"] < cut.isoformat()}
        expected |= {("alert", f"closed-{d}") for d in (0, 1)}
        expected |= {
            ("alert_audit", r["id"])
            for r in before
            if r["table"] == "alert_audit" and r["alert_id"] in {"closed-0", "closed-1"}
        }
        assert gone == expected
        assert {key(r) for r in after} <= {key(r) for r in before}
        # The open alert from before the cut, its audit row and the timer stay.
        assert ("alert", "open-0") in {key(r) for r in after}
        assert ("rule_timer", "t1") in {key(r) for r in after}
        # `since` exports only the recent part.
        recent = list(s.export(since=T0 + timedelta(days=3)))
        assert {r["ts"] for r in recent if r["table"] == "state"} == {(T0 + timedelta(days=3)).isoformat()}
    finally:
        await s.close()


async def test_failed_batch_is_counted_and_the_loop_survives(store: Store, db_url: str) -> None:
    runner = asyncio.create_task(store.run())
    admin = sa.create_engine(db_url)
    try:
        STATE.drop(admin)
        for i in range(5):
            store.record_state("z2m-a", {"n": i}, T0 + timedelta(seconds=i))
        await store.flush()
        assert store.stats["failed_batches"] == 1
        assert store.stats["dropped_rows"] == 5
        assert not runner.done()

        ALERT.drop(admin)
        with pytest.raises(StoreError, match="save alert a-1"):
            await store.save_alert("a-1", "smoke", "kitchen", "critical", "raised", T0, {})
        assert store.stats["failed_durable_writes"] == 1

        # Once the database is usable again, the same store writes again.
        STATE.create(admin)
        for i in range(3):
            store.record_state("z2m-a", {"n": i}, T0 + timedelta(seconds=i))
        await store.flush()
        assert store.count("state") == 3
        assert store.stats["rows_written"] == 3
        assert not runner.done()
    finally:
        admin.dispose()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_bad_rows_are_rejected_and_counted(store: Store) -> None:
    store.record_state("z2m-a", {"n": 1}, datetime(2026, 3, 1, 8, 0))  # naive: no timezone
    store.record_event(StateChanged(ts=datetime(2026, 3, 1), device_id="z2m-a", values={}))
    assert store.stats["rejected_rows"] == 2
    assert store.buffered == 0
    with pytest.raises(ValueError, match="naive"):
        await store.save_alert("a", "r", None, "info", "raised", datetime(2026, 3, 1), {})
    with pytest.raises(ValueError, match="no table"):
        store.count("users")


async def test_buffer_is_bounded_and_drops_states_first(db_url: str) -> None:
    # Not opened yet: nothing can be written, as when the database is unreachable.
    s = Store(db_url, batch_size=10, batch_seconds=3600, max_buffer=20)
    for i in range(5):
        s.record_event(PointEvent(ts=T0 + timedelta(seconds=i), device_id="z2m-b", key="action", value=i))
    for i in range(30):
        s.record_state("z2m-a", {"n": i}, T0 + timedelta(seconds=i))
    assert s.buffered == 20
    assert s.stats["dropped_rows"] == 15
    with pytest.raises(StoreError, match="not open"):
        await s.flush()
    s.open()
    try:
        await s.flush()
        assert s.count("event") == 5
        assert s.count("state") == 15
        assert s.last_states()["z2m-a"] == (T0 + timedelta(seconds=29), {"n": 29})
    finally:
        await s.close()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal" / "hub.sqlite"
    s = Store(f"sqlite:///{path}")
    s.open()
    try:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        raw = sqlite3.connect(path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            raw.close()
        assert s.db_size_bytes() > 0
    finally:
        await s.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_json_values_round_trip(db_url: str) -> None:
    s = Store(db_url)
    seen = 0

    async def round_trip(values: dict[str, Any]) -> list[dict[str, Any]]:
        nonlocal seen
        seen += 1
        device = f"dev-{seen}"
        s.record_state(device, values, T0)
        await s.flush()
        return [r for r in s.export(since=T0) if r["table"] == "state" and r["device_id"] == device]

    with asyncio.Runner() as runner:

        @settings(max_examples=40, deadline=None)
        @given(values=st.dictionaries(st.text(), _json, max_size=5))
        def check(values: dict[str, Any]) -> None:
            [row] = runner.run(round_trip(values))
            assert row["values"] == values
            assert row["ts"] == T0.isoformat()

        s.open()
        try:
            check()
        finally:
            runner.run(s.close())


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))])
    )
)
def test_sqlite_times_are_written_as_sqlalchemys_own_datetime_writes_them(ts: datetime) -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None
    assert theirs is not None
    assert ours(ts) == theirs(ts.astimezone(UTC).replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        ours(ts.replace(tzinfo=None))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_json_columns_hold_what_json_dumps_would_have_written(value: Any) -> None:
    assert json.loads(_json_serializer(value)) == json.loads(json.dumps(value))


def test_json_columns_refuse_what_json_dumps_refuses_and_take_what_it_takes() -> None:
    with pytest.raises(TypeError):
        _json_serializer({"at": T0})
    assert json.loads(_json_serializer({1: "int key"})) == {"1": "int key"}
