"""SQLModel tables, a batched writer that keeps the event loop free, retention, and export."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import JSON, Field, SQLModel

from hub import migrations
from hub.clock import Clock, RealClock
from hub.model import Device

log = logging.getLogger(__name__)

# meta.schema_version, which hubs from before Alembic check; each migration keeps it in step.
SCHEMA_VERSION = 2

# The end states of an alert's lifecycle (RULES.md): only these are ever deleted by retention.
CLOSED_ALERT_STATES = frozenset({"resolved", "cancelled", "cancelled_by_resident", "expired"})

# Rows per DELETE: each chunk is its own short transaction, so an alert write waiting for the
# writer thread (or, on SQLite, for the write lock) never waits behind a whole day's purge.
DELETE_CHUNK = 5000

T = TypeVar("T")

# How SQLite, PostgreSQL and the OS say the disk is full; history then stops before alerts do.
DISK_FULL = ("database or disk is full", "No space left on device", "could not extend file")


class StoreError(Exception):
    """A durable write (alert, audit, device, timer, retention) failed after one retry."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Refuse naive datetimes and store UTC; naive on SQLite so the text sorts correctly."""
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store keeps timezone-aware UTC")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[datetime | None], Any] | None:
        """On SQLite, the text SQLAlchemy's own DATETIME would write, made in one step (a history row's cost)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is UTC:  # the hub's own times: its text less the "+00:00"
                return value.isoformat(" ", "microseconds")[:-6]
            if value.utcoffset() is None:
                raise ValueError(f"naive datetime {value.isoformat()}: the store keeps timezone-aware UTC")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Give back an aware UTC datetime whatever the backend returned."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Big ids for the history tables (5,000 rows/s overflows 32 bits in days), but SQLite only
# autoincrements a plain INTEGER primary key.
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class DeviceRow(SQLModel, table=True):
    """A device's full description, as the registry last saved it."""

    __tablename__ = "device"

    id: str = Field(primary_key=True)
    description: dict[str, Any] = Field(sa_type=JSON)
    status: str
    room: str | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)


class StateRow(SQLModel, table=True):
    """One recorded set of point values of a device."""

    __tablename__ = "state"
    __table_args__ = (sa.Index("ix_state_device_ts", "device_id", "ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    device_id: str
    ts: datetime = Field(sa_type=UTCDateTime)
    values: dict[str, Any] = Field(sa_type=JSON)


class EventRow(SQLModel, table=True):
    """One typed hub event (state change, availability, command, ...) as JSON."""

    __tablename__ = "event"
    __table_args__ = (sa.Index("ix_event_ts", "ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    ts: datetime = Field(sa_type=UTCDateTime)
    type: str
    device_id: str | None = None
    payload: dict[str, Any] = Field(sa_type=JSON)


class AlertRow(SQLModel, table=True):
    """An alert's current lifecycle state and full body."""

    __tablename__ = "alert"
    __table_args__ = (sa.Index("ix_alert_state", "state"),)

    id: str = Field(primary_key=True)
    rule_id: str
    room: str | None = None
    severity: str
    state: str
    raised_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    body: dict[str, Any] = Field(sa_type=JSON)


class AlertAuditRow(SQLModel, table=True):
    """One transition of an alert: who, when, through which channel, with what note."""

    __tablename__ = "alert_audit"
    __table_args__ = (sa.Index("ix_alert_audit_alert_ts", "alert_id", "ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    alert_id: str
    ts: datetime = Field(sa_type=UTCDateTime)
    transition: str
    actor: str | None = None
    channel: str | None = None
    note: str | None = None


class RuleTimerRow(SQLModel, table=True):
    """An armed rule deadline, so duration and inactivity rules survive a restart."""

    __tablename__ = "rule_timer"

    key: str = Field(primary_key=True)
    rule_id: str
    deadline: datetime = Field(sa_type=UTCDateTime)
    data: dict[str, Any] = Field(sa_type=JSON)


class MetaRow(SQLModel, table=True):
    """Store bookkeeping, such as the schema version."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


def _table(model: type[SQLModel]) -> sa.Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


DEVICE = _table(DeviceRow)
STATE = _table(StateRow)
EVENT = _table(EventRow)
ALERT = _table(AlertRow)
ALERT_AUDIT = _table(AlertAuditRow)
RULE_TIMER = _table(RuleTimerRow)
META = _table(MetaRow)
TABLES: dict[str, sa.Table] = {t.name: t for t in (DEVICE, STATE, EVENT, ALERT, ALERT_AUDIT, RULE_TIMER, META)}

# What `export` writes, in this order, each ordered (and filtered by `since`) on its time column.
EXPORT_ORDER: tuple[tuple[sa.Table, str], ...] = (
    (DEVICE, "updated_at"),
    (STATE, "ts"),
    (EVENT, "ts"),
    (ALERT, "updated_at"),
    (ALERT_AUDIT, "ts"),
    (RULE_TIMER, "deadline"),
)

# Upserts are dialect-specific in SQLAlchemy; both dialects spell them the same way.
_INSERT: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


class StoredTimer(NamedTuple):
    """A rule deadline as stored."""

    key: str
    rule_id: str
    deadline: datetime
    data: dict[str, Any]


class EventItem(NamedTuple):
    """A buffered event with the columns the log indexes it by."""

    ts: datetime
    kind: str
    device_id: str | None
    event: BaseModel
    text: str | None = None  # the event as pydantic dumps it, when the caller had it already


# Under load more than a batch waits: one transaction then takes up to this many batches,
# one commit where there would be several (a commit is a quarter of a batch's cost on SQLite).
_BATCHES_PER_WRITE = 8
_STATE_KEYS = ("device_id", "ts", "values")
_EVENT_KEYS = ("ts", "type", "device_id", "payload")
_DEVICE_KEYS = ("id", "description", "status", "room", "updated_at")


class Dumped(NamedTuple):
    """A value already written as JSON (by pydantic), for a JSON column to store as it is."""

    text: str


def _json_serializer(value: Any) -> str:
    # The engine's serializer for JSON columns, on SQLite and (through psycopg) PostgreSQL alike:
    # a model dumped by pydantic in one pass is stored as written, not dumped to a dict first
    # and then serialized again. The rest (every history row's values) goes to orjson, at a
    # tenth of json.dumps' time on the writer thread, which holds the loop's lock meanwhile.
    if type(value) is Dumped:
        return value.text
    try:
        return orjson.dumps(value, option=_AS_JSON_DUMPS).decode()
    except TypeError:  # orjson.JSONEncodeError: integers beyond 64 bits, keys that are not strings
        return json.dumps(value)


# What json.dumps refuses, orjson must refuse too (it would write datetimes and dataclasses).
_AS_JSON_DUMPS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class _RowInsert(NamedTuple):
    """A plain multi-row INSERT for one table on one database, with the columns' own bind conversions."""

    sql: str
    positional: bool
    keys: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(
        cls, table: sa.Table, keys: tuple[str, ...], dialect: sa.Dialect, statement: sa.Insert | None = None
    ) -> _RowInsert:
        """Compiled once: Core's per-row parameter handling costs more than the conversions themselves."""
        insert = sa.insert(table) if statement is None else statement
        compiled = insert.compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ()) if dialect.positional else keys
        convert = tuple(table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in order)
        return cls(compiled.string, dialect.positional, order, convert)

    def rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | list[dict[str, Any]]:
        """The rows (in the order of the keys they were made for) as the driver takes them."""
        # Column by column: map() runs each conversion over a column without a Python frame a
        # row (the writer thread holds the loop's lock while it converts: 3.0 -> 2.2 µs a row).
        if not rows:
            return []
        columns = zip(*rows, strict=True)
        converted = (c if f is None else map(f, c) for f, c in zip(self.convert, columns, strict=True))
        done = list(zip(*converted, strict=True))
        return done if self.positional else [dict(zip(self.keys, row, strict=True)) for row in done]


class _Batch(NamedTuple):
    states: list[tuple[str, datetime, Mapping[str, Any]]]
    events: list[EventItem]


class _Outcome(NamedTuple):
    rows: int
    error: str | None


# Where the device id of an event lives: hub.model events carry it directly, in their
# device description, or in their command.
_DEVICE_ID_PATHS: tuple[tuple[str, ...], ...] = (("device_id",), ("device", "id"), ("command", "device_id"))


def event_device_id(event: object) -> str | None:
    """The id of the device an event is about, if it is about one."""
    for path in _DEVICE_ID_PATHS:
        value: object = event
        for attr in path:
            value = getattr(value, attr, None)
        if isinstance(value, str):
            return value
    return None


def event_item(event: object, text: str | None = None) -> EventItem | str:
    """The parts of an event that the log indexes (with its JSON if given), or why the event cannot be logged."""
    if not isinstance(event, BaseModel):
        return f"not a pydantic model: {type(event).__name__}"
    ts, kind = getattr(event, "ts", None), getattr(event, "type", None)
    if not isinstance(kind, str):
        return f"{type(event).__name__} has no string `type`"
    if (problem := _ts_problem(ts)) is not None:
        return problem
    assert isinstance(ts, datetime)  # _ts_problem checked it; this tells mypy
    return EventItem(ts, kind, event_device_id(event), event, text)


def _ts_problem(ts: object) -> str | None:
    if not isinstance(ts, datetime):
        return f"timestamp is {type(ts).__name__}, not a datetime"
    if ts.utcoffset() is None:
        return f"naive timestamp {ts.isoformat()}: timezone-aware UTC expected"
    return None


def _aware(ts: datetime, what: str) -> datetime:
    if (problem := _ts_problem(ts)) is not None:
        raise ValueError(f"{what}: {problem}")
    return ts


def jsonable(value: object) -> object:
    """A column value as JSON: datetimes become ISO 8601 text, everything else is already JSON."""
    return value.isoformat() if isinstance(value, datetime) else value


def export_row(table: str, row: Mapping[Any, Any]) -> dict[str, Any]:
    """One exported row: its table name and its columns, ready for json.dumps."""
    return {"table": table, **{key: jsonable(value) for key, value in row.items()}}


def retention_plan(cutoffs: Mapping[str, datetime | None]) -> list[tuple[str, sa.Table, ColumnElement[bool]]]:
    """What to delete for per-kind cutoffs ("state", "event", "alert"; None keeps everything).

    Audit rows go before their alerts, or they could no longer be found by their alert.
    """
    plan: list[tuple[str, sa.Table, ColumnElement[bool]]] = []
    if (cut := cutoffs.get("state")) is not None:
        plan.append(("state", STATE, STATE.c.ts < cut))
    if (cut := cutoffs.get("event")) is not None:
        plan.append(("event", EVENT, EVENT.c.ts < cut))
    if (cut := cutoffs.get("alert")) is not None:
        old_closed = sa.and_(ALERT.c.state.in_(sorted(CLOSED_ALERT_STATES)), ALERT.c.updated_at < cut)
        plan.append(("alert_audit", ALERT_AUDIT, ALERT_AUDIT.c.alert_id.in_(sa.select(ALERT.c.id).where(old_closed))))
        plan.append(("alert", ALERT, old_closed))
    return plan


def _days_before(now: datetime, days: float | None) -> datetime | None:
    return None if days is None else _aware(now, "now") - timedelta(days=days)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (export, the TUI's status) run while the writer writes; NORMAL is
    # durable across a process kill in WAL mode (only an OS crash can lose the last commit).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_size(engine: Engine) -> int:
    database = engine.url.database
    if not database or database == ":memory:":
        return 0
    return sum(p.stat().st_size for p in (Path(database + s) for s in ("", "-wal", "-shm")) if p.exists())


def _postgres_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())


_SIZE: dict[str, Callable[[Engine], int]] = {"sqlite": _sqlite_size, "postgresql": _postgres_size}


class Store:
    """The hub's database: buffered history writes, durable alert writes, retention and export.

    Buffered writes (`record_state`, `record_event`) are called on the event loop and only
    append to a bounded buffer; one writer thread inserts them with SQLAlchemy Core in
    batches. Durable writes go through the same thread and are committed before they return.
    Readers are blocking: call them at start-up, from the CLI, or with `asyncio.to_thread`.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        batch_seconds: float = 1.0,
        max_buffer: int = 100_000,
        clock: Clock | None = None,
        before_upgrade: Callable[[str, str], object] | None = None,
    ) -> None:
        if batch_size < 1 or batch_seconds <= 0 or max_buffer < batch_size:
            raise ValueError("need batch_size >= 1, batch_seconds > 0 and max_buffer >= batch_size")
        self.url = url
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.max_buffer = max_buffer
        self.clock: Clock = clock or RealClock()
        # Called with (from revision, to revision) before a schema upgrade: the backup hook.
        self.before_upgrade = before_upgrade
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "rows_written",
                "batches",
                "failed_batches",
                "dropped_rows",
                "rejected_rows",
                "durable_writes",
                "failed_durable_writes",
                "history_paused_rows",
            ),
            0,
        )
        # Why state and event history is not being recorded (a nearly full disk), or None.
        self.history_paused: str | None = None
        self._engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._states: deque[tuple[str, datetime, Mapping[str, Any]]] = deque()
        self._events: deque[EventItem] = deque()
        self._first_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._flushing = 0
        self._overflowing = False
        self._closed = False
        self._wake = asyncio.Event()

    # ---- lifecycle ------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for maintenance and tests); `open()` first."""
        if self._engine is None:
            raise StoreError("the store is not open")
        return self._engine

    def open(self) -> None:
        """Connect and bring the schema to this hub's version (blocking, call at start-up).

        An empty database gets the current tables; an older one is backed up (before_upgrade)
        then migrated; a newer or unknown one is refused with a StoreError saying what to do.
        """
        url = sa.make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        if url.get_backend_name() not in _INSERT:
            raise StoreError(f"unsupported database {url.get_backend_name()!r}: use sqlite or postgresql")
        engine = sa.create_engine(url, pool_pre_ping=True, json_serializer=_json_serializer)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        try:
            migrations.upgrade(engine, create_current, list(TABLES), self.before_upgrade)
        except migrations.MigrationRefused as exc:
            engine.dispose()
            raise StoreError(f"the store at {url.render_as_string()}: {exc}") from exc
        except sa.exc.SQLAlchemyError as exc:  # a damaged file says "file is not a database" here
            engine.dispose()
            raise StoreError(f"cannot open the store at {url.render_as_string()}: {exc}") from exc
        self._engine = engine
        self._state_insert = _RowInsert.of(STATE, _STATE_KEYS, engine.dialect)
        self._event_insert = _RowInsert.of(EVENT, _EVENT_KEYS, engine.dialect)
        self._device_insert = _RowInsert.of(DEVICE, _DEVICE_KEYS, engine.dialect, _device_upsert(engine.dialect.name))
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-store-writer")

    async def run(self) -> None:
        """Flush buffered rows batch_seconds after the first of them arrived; flush all on cancel."""
        if self._writer is None:
            raise StoreError("run() needs an open store")
        try:
            while True:
                self._wake.clear()
                if self._first_at is None or self._inflight is not None:
                    # Nothing buffered, or a batch is being written: its end wakes us.
                    await self._wake.wait()
                    continue
                delay = self._first_at + self.batch_seconds - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                self._hand_off()
        except asyncio.CancelledError:
            await self.flush()
            raise

    async def flush(self) -> None:
        """Write every buffered row now and wait until the writer has finished."""
        if self._writer is None and self._buffered():
            raise StoreError(f"{self._buffered()} buffered rows and the store is not open")
        self._flushing += 1
        try:
            while self._inflight is not None or self._buffered():
                if self._inflight is None:
                    self._hand_off()
                if (task := self._inflight) is not None:
                    await asyncio.shield(task)
        finally:
            self._flushing -= 1

    async def close(self) -> None:
        """Flush everything pending, stop the writer thread and dispose of the engine."""
        if self._engine is None:
            return
        await self.flush()
        self._closed = True
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._engine.dispose()
        self._engine = None

    # ---- buffered history -----------------------------------------------------------

    def record_state(self, device_id: str, values: Mapping[str, Any], ts: datetime) -> None:
        """Buffer a device's point values for the state history (non-blocking, O(1)).

        The values are kept, not copied, until the writer thread writes them: the caller hands
        over a mapping it never changes again (the registry replaces a device's values whole).
        """
        if (problem := _ts_problem(ts)) is not None:
            self._reject(f"state of {device_id!r}", problem)
            return
        if self._refused():
            return
        self._states.append((device_id, ts, values))
        self._buffered_one()

    def record_event(self, event: BaseModel, text: str | None = None) -> None:
        """Buffer a typed event (a hub.model event or any model with `type` and aware `ts`).

        `text` is the event's `model_dump_json()` when the caller has it already (the hub
        publishes every event): it is stored as it is, not dumped again.
        """
        item = event_item(event, text)
        if isinstance(item, str):
            self._reject("event", item)
            return
        if self._refused():
            return
        self._events.append(item)
        self._buffered_one()

    @property
    def buffered(self) -> int:
        """Rows waiting in the buffer (not yet handed to the writer)."""
        return self._buffered()

    def _buffered(self) -> int:
        return len(self._states) + len(self._events)

    def pause_history(self, reason: str) -> None:
        """Stop recording state and event history; alerts, devices and timers are still written.

        What is buffered is dropped too (counted): on a nearly full disk every page is kept for alerts.
        """
        if self.history_paused is None:
            log.error("store: history recording paused (alerts are still written): %s", reason)
        self.history_paused = reason
        self.stats["history_paused_rows"] += self._buffered()
        self._states.clear()
        self._events.clear()
        self._first_at = None

    def resume_history(self) -> None:
        """Record state and event history again."""
        if self.history_paused is not None:
            log.warning("store: history recording resumed (was paused: %s)", self.history_paused)
        self.history_paused = None

    def _refused(self) -> bool:
        """Whether a history row is dropped now (store closed, or history paused); counted."""
        if self._closed:
            self._drop_closed()
            return True
        if self.history_paused is not None:
            self.stats["history_paused_rows"] += 1
            return True
        return False

    def _reject(self, what: str, problem: str) -> None:
        self.stats["rejected_rows"] += 1
        log.warning("store: %s not recorded: %s", what, problem)

    def _drop_closed(self) -> None:
        self.stats["dropped_rows"] += 1
        log.error("store: a row recorded after close() was dropped")

    def _buffered_one(self) -> None:
        if self._first_at is None:
            self._first_at = time.monotonic()
            self._wake.set()
        if self._buffered() > self.max_buffer:
            self._drop_oldest(f"buffer full ({self.max_buffer} rows): the database is not keeping up")
        if self._buffered() >= self.batch_size and self._inflight is None:
            self._hand_off()

    def _drop_oldest(self, reason: str) -> None:
        # State history is the most repetitive data: it goes first. Alerts never pass here.
        (self._states or self._events).popleft()
        self.stats["dropped_rows"] += 1
        if not self._overflowing:
            self._overflowing = True
            log.error("store: dropping the oldest buffered rows: %s", reason)

    def _hand_off(self) -> None:
        """Give the writer thread the next batch: events first, then the oldest states."""
        if self._writer is None or not self._buffered():
            return
        most = self.batch_size * _BATCHES_PER_WRITE
        events = [self._events.popleft() for _ in range(min(most, len(self._events)))]
        room = most - len(events)
        states = [self._states.popleft() for _ in range(min(room, len(self._states)))]
        # Rows left behind are older than now, so keeping the old mark flushes them on time.
        if not self._buffered():
            self._first_at = None
        self._inflight = asyncio.get_running_loop().create_task(self._write(_Batch(states, events)))

    async def _write(self, batch: _Batch) -> None:
        assert self._writer is not None
        rows = len(batch.states) + len(batch.events)
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(self._writer, self._insert_batch, batch)
        except RuntimeError as exc:  # the writer thread was shut down under us
            outcome = _Outcome(0, f"{type(exc).__name__}: {exc}")
        finally:
            self._inflight = None
            self._wake.set()
        if outcome.error is None:
            self.stats["rows_written"] += outcome.rows
            self.stats["batches"] += 1
            self._overflowing = False
        else:
            self.stats["failed_batches"] += 1
            self.stats["dropped_rows"] += rows
            log.error("store: a batch of %d rows was not written: %s", rows, outcome.error)
            if any(marker in outcome.error for marker in DISK_FULL):
                self.pause_history(f"the disk is full ({outcome.error})")
        if self._buffered() >= self.batch_size or self._flushing or self._due():
            self._hand_off()

    def _due(self) -> bool:
        return self._first_at is not None and time.monotonic() >= self._first_at + self.batch_seconds

    def _insert_batch(self, batch: _Batch) -> _Outcome:
        """Insert one batch with Core executemany (writer thread); one retry for a dropped connection."""
        errors: list[str] = []
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    if batch.events:
                        # Dumped here, off the loop; hub events are frozen models.
                        rows = [
                            (e.ts, e.kind, e.device_id, Dumped(e.event.model_dump_json() if e.text is None else e.text))
                            for e in batch.events
                        ]
                        conn.exec_driver_sql(self._event_insert.sql, self._event_insert.rows(rows))
                    if batch.states:
                        insert = self._state_insert
                        conn.exec_driver_sql(insert.sql, insert.rows(batch.states))
                return _Outcome(len(batch.states) + len(batch.events), None)
            except Exception as exc:  # disk full, locked, connection lost, unserializable value
                errors.append(f"{type(exc).__name__}: {exc}")
        return _Outcome(0, "; then ".join(errors))

    # ---- durable writes ---------------------------------------------------------------

    async def _durable(self, what: str, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction on the writer thread; retry once, then raise StoreError."""
        if self._writer is None:
            raise StoreError(f"{what}: the store is not open")
        loop = asyncio.get_running_loop()
        error: Exception | None = None
        for _attempt in range(2):
            try:
                result = await loop.run_in_executor(self._writer, self._transaction, work)
            except sa.exc.SQLAlchemyError as exc:
                error = exc
                log.warning("store: %s failed: %s", what, exc)
                continue
            self.stats["durable_writes"] += 1
            return result
        self.stats["failed_durable_writes"] += 1
        log.error("store: %s failed twice, giving up: %s", what, error)
        raise StoreError(f"{what}: {error}") from error

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return work(conn)

    def _upsert(self, table: sa.Table, row: dict[str, Any]) -> Callable[[Connection], None]:
        key = [c.name for c in table.primary_key.columns]
        stmt = _INSERT[self.engine.dialect.name](table).values(row)
        stmt = stmt.on_conflict_do_update(index_elements=key, set_={k: stmt.excluded[k] for k in row if k not in key})

        def work(conn: Connection) -> None:
            conn.execute(stmt)

        return work

    async def save_alert(
        self,
        alert_id: str,
        rule_id: str,
        room: str | None,
        severity: str,
        state: str,
        raised_at: datetime,
        body: Mapping[str, Any],
    ) -> None:
        """Insert or update an alert and commit it before returning; StoreError if that fails."""
        row = {
            "id": alert_id,
            "rule_id": rule_id,
            "room": room,
            "severity": severity,
            "state": state,
            "raised_at": _aware(raised_at, "raised_at"),
            "updated_at": self.clock.now(),
            "body": dict(body),
        }
        await self._durable(f"save alert {alert_id}", self._upsert(ALERT, row))

    async def audit(
        self,
        alert_id: str,
        transition: str,
        actor: str | None,
        channel: str | None,
        note: str | None,
        ts: datetime,
    ) -> None:
        """Append one transition to an alert's audit trail, committed before returning."""
        row = {
            "alert_id": alert_id,
            "ts": _aware(ts, "ts"),
            "transition": transition,
            "actor": actor,
            "channel": channel,
            "note": note,
        }

        def work(conn: Connection) -> None:
            conn.execute(sa.insert(ALERT_AUDIT).values(row))

        await self._durable(f"audit {transition} of alert {alert_id}", work)

    async def save_device(self, device: Device) -> None:
        """Insert or update a device's description, committed before returning."""
        await self.save_devices([device])

    async def delete_device(self, device_id: str) -> None:
        """Forget a device's description (its history stays until retention or purge)."""
        await self.save_devices([], [device_id])

    async def save_devices(self, devices: Sequence[Device], forget: Collection[str] = ()) -> list[str]:
        """Save these devices' descriptions and forget those ids, in one transaction committed before returning.

        A burst of discoveries (thousands of retained ones at start-up) costs one commit, not one each.
        Returns the descriptions as saved (pydantic's JSON, in the order given), which the hub
        publishes as they are rather than dumping each device a second time.
        """
        saved, gone = list(devices), sorted(forget)
        now = self.clock.now()
        upsert = self._device_insert

        def work(conn: Connection) -> list[str]:
            for i in range(0, len(gone), _IDS_PER_DELETE):
                conn.execute(sa.delete(DEVICE).where(DEVICE.c.id.in_(gone[i : i + _IDS_PER_DELETE])))
            # Dumped here, on the writer thread, rather than on the event loop.
            texts = [d.model_dump_json() for d in saved]
            if saved:
                rows = [(d.id, Dumped(text), d.status.value, d.room, now) for d, text in zip(saved, texts, strict=True)]
                conn.exec_driver_sql(upsert.sql, upsert.rows(rows))
            return texts

        names = ", ".join([d.id for d in saved[:3]] + [f"-{i}" for i in gone[:3]])
        more = len(saved) + len(gone) - min(len(saved), 3) - min(len(gone), 3)
        return await self._durable(f"save devices {names}" + (f" and {more} more" if more else ""), work)

    async def save_timer(self, key: str, rule_id: str, deadline: datetime, data: Mapping[str, Any]) -> None:
        """Insert or update an armed rule deadline, committed before returning."""
        row = {"key": key, "rule_id": rule_id, "deadline": _aware(deadline, "deadline"), "data": dict(data)}
        await self._durable(f"save timer {key}", self._upsert(RULE_TIMER, row))

    async def save_timers(self, timers: list[tuple[str, str, datetime, Mapping[str, Any]]]) -> None:
        """Insert or update several deadlines (key, rule id, deadline, data) in one transaction."""
        works = [
            self._upsert(RULE_TIMER, {"key": k, "rule_id": r, "deadline": _aware(d, "deadline"), "data": dict(data)})
            for k, r, d, data in timers
        ]

        def work(conn: Connection) -> None:
            for one in works:
                one(conn)

        await self._durable(f"save {len(works)} timers", work)

    async def delete_timer(self, key: str) -> None:
        """Forget a rule deadline (it fired or was disarmed)."""
        await self._durable(f"delete timer {key}", _delete_where(RULE_TIMER, RULE_TIMER.c.key == key))

    # ---- retention and the family's right to deletion -------------------------------

    async def apply_retention(
        self,
        now: datetime,
        *,
        state_days: float | None,
        events_days: float | None,
        alerts_days: float | None,
    ) -> dict[str, int]:
        """Delete history older than its retention (closed alerts only); rows deleted per table."""
        return await self._delete_plan(
            retention_plan(
                {
                    "state": _days_before(now, state_days),
                    "event": _days_before(now, events_days),
                    "alert": _days_before(now, alerts_days),
                }
            )
        )

    async def purge_before(self, before: datetime) -> dict[str, int]:
        """Delete state, events, and closed alerts with their audit trail, from before this moment."""
        cut = _aware(before, "before")
        return await self._delete_plan(retention_plan({"state": cut, "event": cut, "alert": cut}))

    async def _delete_plan(self, plan: list[tuple[str, sa.Table, ColumnElement[bool]]]) -> dict[str, int]:
        deleted: dict[str, int] = {}
        for name, table, where in plan:
            deleted[name] = 0
            while True:
                n = await self._durable(f"delete old {name} rows", _delete_chunk(table, where))
                deleted[name] += n
                if n < DELETE_CHUNK:
                    break
        return deleted

    # ---- readers (blocking) ---------------------------------------------------------

    def load_devices(self) -> list[Device]:
        """Every saved device; a description that no longer validates is logged, counted, skipped."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(DEVICE.c.id, DEVICE.c.description).order_by(DEVICE.c.id)).all()
        devices: list[Device] = []
        for device_id, description in rows:
            try:
                devices.append(Device.model_validate(description))
            except ValidationError as exc:
                self.stats["rejected_rows"] += 1
                log.error("store: saved device %s no longer validates, skipped: %s", device_id, exc)
        return devices

    def load_open_alerts(self) -> list[dict[str, Any]]:
        """Every alert not yet closed, oldest first, as column dicts."""
        query = (
            sa.select(ALERT)
            .where(ALERT.c.state.not_in(sorted(CLOSED_ALERT_STATES)))
            .order_by(ALERT.c.raised_at, ALERT.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def load_timers(self) -> list[StoredTimer]:
        """Every armed rule deadline, soonest first."""
        query = sa.select(RULE_TIMER).order_by(RULE_TIMER.c.deadline, RULE_TIMER.c.key)
        with self.engine.connect() as conn:
            return [StoredTimer(*row) for row in conn.execute(query)]

    def last_states(self) -> dict[str, tuple[datetime, dict[str, Any]]]:
        """The latest recorded (ts, values) row of every device."""
        rank = (
            sa.func.row_number()
            .over(partition_by=STATE.c.device_id, order_by=(STATE.c.ts.desc(), STATE.c.id.desc()))
            .label("rank")
        )
        ranked = sa.select(STATE.c.device_id, STATE.c.ts, STATE.c["values"], rank).subquery()
        query = sa.select(ranked.c.device_id, ranked.c.ts, ranked.c["values"]).where(ranked.c.rank == 1)
        with self.engine.connect() as conn:
            return {device_id: (ts, values) for device_id, ts, values in conn.execute(query)}

    def device_history_since(
        self, device_ids: Collection[str], since: datetime, limit: int = 200_000
    ) -> tuple[list[tuple[datetime, str, dict[str, Any]]], list[tuple[datetime, str, dict[str, Any]]]]:
        """State rows (ts, device, values) and point events (ts, device, payload) of some devices since a moment.

        Bounded: at most `limit` of each, the newest kept, oldest first.
        """
        cut, ids = _aware(since, "since"), sorted(device_ids)
        if not ids:
            return [], []
        states = (
            sa.select(STATE.c.ts, STATE.c.device_id, STATE.c["values"])
            .where(STATE.c.device_id.in_(ids), STATE.c.ts >= cut)
            .order_by(STATE.c.ts.desc(), STATE.c.id.desc())
            .limit(limit)
        )
        points = (
            sa.select(EVENT.c.ts, EVENT.c.device_id, EVENT.c.payload)
            .where(EVENT.c.type == "point_event", EVENT.c.device_id.in_(ids), EVENT.c.ts >= cut)
            .order_by(EVENT.c.ts.desc(), EVENT.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            state_rows = [(ts, dev, values) for ts, dev, values in conn.execute(states)]
            point_rows = [(ts, dev, payload) for ts, dev, payload in conn.execute(points)]
        return state_rows[::-1], point_rows[::-1]

    def count(self, table_name: str) -> int:
        """Rows in one of the store's tables."""
        if (table := TABLES.get(table_name)) is None:
            raise ValueError(f"no table {table_name!r}; tables: {', '.join(TABLES)}")
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def db_size_bytes(self) -> int:
        """The database's size on disk (SQLite file with its WAL, or the PostgreSQL database)."""
        return _SIZE[self.engine.dialect.name](self.engine)

    def export(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every row (since a moment, if given) as a JSON-ready dict with its "table", by table then time."""
        cut = None if since is None else _aware(since, "since")
        with self.engine.connect() as conn:
            for table, time_column in EXPORT_ORDER:
                query = sa.select(table).order_by(table.c[time_column], *table.primary_key.columns)
                if cut is not None:
                    query = query.where(table.c[time_column] >= cut)
                result = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
                for row in result.mappings():
                    yield export_row(table.name, row)


def create_current(conn: Connection) -> None:
    """Make today's tables on an empty database (Alembic then stamps it at the head revision)."""
    SQLModel.metadata.create_all(conn, tables=list(TABLES.values()))
    conn.execute(sa.insert(META).values(key="schema_version", value=str(SCHEMA_VERSION)))


_IDS_PER_DELETE = 500  # well under SQLite's limit on bound parameters


def _device_upsert(dialect: str) -> sa.Insert:
    """Insert or update device rows (their description comes dumped by pydantic, see _device_row)."""
    stmt = _INSERT[dialect](DEVICE)
    updated = {k: stmt.excluded[k] for k in _DEVICE_KEYS[1:]}
    return cast("sa.Insert", stmt.on_conflict_do_update(index_elements=[DEVICE.c.id], set_=updated))


def _delete_where(table: sa.Table, where: ColumnElement[bool]) -> Callable[[Connection], None]:
    def work(conn: Connection) -> None:
        conn.execute(sa.delete(table).where(where))

    return work


def _delete_chunk(table: sa.Table, where: ColumnElement[bool]) -> Callable[[Connection], int]:
    key = next(iter(table.primary_key.columns))
    chunk = sa.select(key).where(where).limit(DELETE_CHUNK)

    def work(conn: Connection) -> int:
        return conn.execute(sa.delete(table).where(key.in_(chunk))).rowcount

    return work
