"""Store: state rows written per second with the hub's batching, on SQLite and PostgreSQL.

The hub's Store (batched inserts in its writer thread, default batch size) is fed as
fast as the loop allows and timed until every row is flushed. Beside it, the naive baseline
on the same table: one INSERT and one commit per row.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

if __package__ in (None, ""):  # run as a script (make bench): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Report, args_parser, median, workdir
from hub.store import STATE, Store, StoreError

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


async def batched(url: str, rows: int) -> float:
    """Rows per second through the hub's Store."""
    store = Store(url, batch_size=500, batch_seconds=0.05, max_buffer=max(rows, 500))
    await asyncio.to_thread(store.open)
    writer = asyncio.create_task(store.run())
    base = datetime.now(UTC)
    prefix = uuid.uuid4().hex[:8]
    began = time.perf_counter()
    for i in range(rows):
        store.record_state(
            f"bench-{prefix}-{i % 1000}", {"temperature": 20.0 + i % 10}, base + timedelta(microseconds=i)
        )
        if i % 500 == 499:
            await asyncio.sleep(0)  # the loop stays free, as in the hub
    await store.flush()
    elapsed = time.perf_counter() - began
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    await store.close()
    if store.stats["rows_written"] < rows:
        raise StoreError(f"only {store.stats['rows_written']} of {rows} rows written")
    return rows / elapsed


def naive(url: str, rows: int) -> float:
    """Rows per second with a commit per row (the same table, through SQLAlchemy Core)."""
    engine = sa.create_engine(url)
    table = STATE
    base = datetime.now(UTC)
    prefix = uuid.uuid4().hex[:8]
    began = time.perf_counter()
    for i in range(rows):
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                {
                    "device_id": f"naive-{prefix}-{i % 1000}",
                    "ts": base + timedelta(microseconds=i),
                    "values": {"temperature": 20.0},
                },
            )
    elapsed = time.perf_counter() - began
    engine.dispose()
    return rows / elapsed


def reachable(url: str) -> bool:
    """Whether the database answers."""
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception:  # any driver error means "not here"
        return False
    return True


def main() -> None:
    a = args_parser(__doc__ or "").parse_args()
    runs, rows, naive_rows = (1, 2000, 200) if a.quick else (a.runs, 50_000, 2000)
    report = Report("store", ["database", "writer", "rows/s (median)", "runs"])
    with workdir() as work:
        targets = [("SQLite (WAL)", f"sqlite:///{work / 'bench.db'}")]
        if reachable(PG_URL):
            targets.append(("PostgreSQL", PG_URL))
        else:
            report.notes.append(f"PostgreSQL not reachable at {PG_URL}: skipped")
        for label, url in targets:
            fast, slow = [], []
            for _ in range(runs):
                fast.append(asyncio.run(batched(url, rows)))
                slow.append(naive(url, naive_rows))
            report.add(
                database=label,
                writer="hub Store (batched inserts)",
                **{"rows/s (median)": median(fast), "runs": runs},
            )
            report.add(
                database=label,
                writer="one commit per row (baseline)",
                **{"rows/s (median)": median(slow), "runs": runs},
            )
    report.notes.append(f"{rows} rows per batched run, {naive_rows} per baseline run")
    report.emit()


if __name__ == "__main__":
    main()
