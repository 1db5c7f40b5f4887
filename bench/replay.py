"""Replay speed: a month of a home's events (~60,000) through every rule on the simulated clock.

Measured in one run, each a median of --runs: reading the recording alone (the baseline), the
replay with no configured rule (registry and device health only), and the replay with the whole
rule library. Target: a 60,000-event month in under 10 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Report, args_parser, median, workdir
from hub.config import Config, load_config_text
from hub.replay import Recording, Result, read, run
from tests import synthetic_week

DAYS = 30
REPORTS_PER_HOUR = 80  # extra sensor reports: ~60,000 events in a month with the routine


def main() -> None:
    """Run the benchmark and print JSON and a table."""
    args = args_parser(__doc__ or "").parse_args()
    days = 3 if args.quick else DAYS
    runs = 1 if args.quick else max(5, args.runs)
    full = load_config_text(synthetic_week.config_text())
    bare = load_config_text(synthetic_week.config_text().split("rules:")[0])
    report = Report(f"replay ({days} days)", ["stage", "events", "seconds", "events_per_s", "alerts"])
    with workdir() as tmp:
        path = Path(tmp) / "month.jsonl"
        path.write_text("\n".join(synthetic_week.lines(days, reports_per_hour=REPORTS_PER_HOUR)) + "\n")
        stages: dict[str, Callable[[], tuple[Recording, Result | None]]] = {
            "read the recording (baseline)": lambda: (read(path, full), None),
            "replay, no rules (registry + device health)": lambda: _replay(path, bare),
            "replay, whole rule library": lambda: _replay(path, full),
        }
        for stage, work in stages.items():
            times: list[float] = []
            events = alerts = 0
            for _ in range(runs):
                start = time.perf_counter()
                recording, result = work()
                times.append(time.perf_counter() - start)
                events = len(recording.items)
                alerts = len(result.alerts) if result is not None else 0
            seconds = median(times) or 0.0
            report.add(
                stage=stage,
                events=events,
                seconds=round(seconds, 3),
                events_per_s=round(events / seconds),
                alerts=alerts,
            )
    report.notes.append(f"medians of {runs} runs; target: a 60,000-event month in under 10 s")
    report.emit()


def _replay(path: Path, config: Config) -> tuple[Recording, Result]:
    recording = read(path, config)
    return recording, asyncio.run(run(config, recording))


if __name__ == "__main__":
    main()
