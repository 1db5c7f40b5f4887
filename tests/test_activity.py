"""The hub's activity summary: the pure summary of a synthetic day, a real hub with stored history, the TUI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub.activity import ActivityBook
from hub.api import ActivitySummary, Topics
from hub.clock import RealClock, SimClock
from hub.model import Device, Kind, Point, PointEvent, Protocol, StateChanged, Status
from hub.store import Store
from hub.tui.app import CaregiverApp
from hub.tui.client import Target, client_settings
from tests import tuikit
from tests.brokers import Mosquitto
from tests.hubctl import config_text, make_config, running_hub, watching
from tests.test_tui import until

pytestmark = pytest.mark.timeout(60)

TZ = ZoneInfo("Asia/Shanghai")
DEVICES = {
    "z2m-bath": Device(
        id="z2m-bath",
        name="Bathroom motion",
        protocol=Protocol.Z2M,
        room="bathroom",
        status=Status.ADOPTED,
        points=(Point(key="occupancy", kind=Kind.OCCUPANCY), Point(key="battery", kind=Kind.BATTERY)),
    ),
    "z2m-kitchen": Device(
        id="z2m-kitchen",
        name="Kitchen motion",
        protocol=Protocol.Z2M,
        room="kitchen",
        status=Status.ADOPTED,
        points=(Point(key="occupancy", kind=Kind.OCCUPANCY),),
    ),
    "z2m-button": Device(
        id="z2m-button",
        name="Bedside button",
        protocol=Protocol.Z2M,
        room="bedroom",
        status=Status.ADOPTED,
        points=(Point(key="action", kind=Kind.BUTTON),),
    ),
}


def local(day: int, hh: int, mm: int, now: datetime) -> datetime:
    """A UTC moment at local hh:mm, `day` days from now's local date."""
    midnight = now.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(days=day, hours=hh, minutes=mm)).astimezone(UTC)


Row = tuple[datetime, str, dict[str, object]]


def history(now: datetime) -> tuple[list[Row], list[Row]]:
    """Stored rows of a day and a half: merged states (motion on, battery-only change, off) and button presses."""
    states: list[Row] = []

    def motion(device: str, day: int, hh: int, mm: int) -> None:
        on = local(day, hh, mm, now)
        states.append((on, device, {"occupancy": True, "battery": 80}))
        # A battery report while still occupied is a merged row with occupancy true: not new activity.
        states.append((on + timedelta(seconds=30), device, {"occupancy": True, "battery": 79}))
        states.append((on + timedelta(minutes=2), device, {"occupancy": False, "battery": 79}))

    motion("z2m-kitchen", -2, 20, 0)  # before yesterday: not shown
    motion("z2m-kitchen", -1, 7, 40)  # yesterday's first activity
    motion("z2m-bath", -1, 23, 50)  # night visit 1
    motion("z2m-bath", 0, 1, 10)  # night visit 2 ...
    motion("z2m-bath", 0, 1, 14)  # ... the same visit
    motion("z2m-bath", 0, 2, 5)  # night visit 3
    motion("z2m-kitchen", 0, 7, 5)  # today's first activity (after 07:00)
    motion("z2m-kitchen", 0, 7, 30)
    states.sort(key=lambda row: row[0])
    points: list[Row] = [
        (local(0, 9, 15, now), "z2m-button", {"type": "point_event", "key": "action", "value": "single"}),
    ]
    return states, points


def test_summary_of_a_synthetic_day_counts_rising_edges_night_visits_and_first_activity() -> None:
    now = local(0, 12, 0, datetime(2025, 3, 4, 4, 0, tzinfo=UTC))
    book = ActivityBook("Asia/Shanghai", DEVICES.get, SimClock(now))
    book.load(*history(now))
    s = book.summary()
    today, yesterday = now.astimezone(TZ).date(), now.astimezone(TZ).date() - timedelta(days=1)
    assert set(s.days) == {today, yesterday}
    assert s.days[today].rooms["kitchen"][7] == 2  # two rises, the battery-only rows not counted
    assert s.days[today].rooms["bathroom"][1] == 2
    assert s.days[today].rooms["bathroom"][2] == 1
    assert s.days[today].rooms["bedroom"][9] == 1  # the button press
    assert s.days[yesterday].rooms["kitchen"] == [0] * 7 + [1] + [0] * 16  # the day before is not in it
    visits = [v.astimezone(TZ).strftime("%H:%M") for v in s.days[today].night_bathroom_visits]
    assert visits == ["23:50", "01:10", "02:05"]
    first = s.days[today].first_activity
    assert first is not None
    assert first.astimezone(TZ).strftime("%H:%M") == "07:05"
    first = s.days[yesterday].first_activity
    assert first is not None
    assert first.astimezone(TZ).strftime("%H:%M") == "07:40"
    # A live event counts on top, and a payload round-trips through the API model.
    book.listener(StateChanged(ts=local(0, 11, 0, now), device_id="z2m-bath", values={"occupancy": True}))
    book.listener(PointEvent(ts=local(0, 11, 5, now), device_id="z2m-kitchen", key="battery", value=1))
    again = ActivitySummary.model_validate_json(book.summary().model_dump_json())
    assert again.days[today].rooms["bathroom"][11] == 1
    assert again.days[today].rooms["kitchen"][11] == 0


async def seeded_hub_dir(tmp_path: Path, now: datetime) -> Path:
    """A data folder whose store holds the devices and a day and a half of history."""
    data = tmp_path / "data"
    data.mkdir()
    store = Store(f"sqlite:///{data / 'hub.db'}", batch_size=1000, batch_seconds=3600)
    store.open()
    for d in DEVICES.values():
        await store.save_device(d)
    states, _ = history(now)
    for ts, device_id, values in states:
        if ts <= now:
            store.record_state(device_id, values, ts)
    await store.close()
    return data


def expected_marks(now: datetime) -> int:
    """Rising edges of the history that fall today or yesterday and before now."""
    states, _ = history(now)
    return sum(1 for ts, _d, v in states if v["battery"] == 80 and ts <= now and ts >= local(-1, 0, 0, now))


async def test_a_hub_with_stored_history_publishes_the_summary_retained(mosquitto: Mosquitto, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    data = await seeded_hub_dir(tmp_path, now)
    config = make_config(config_text(mosquitto.url), tmp_path)
    topic = Topics.for_home(config.home.id).activity
    async with running_hub(config, data) as hub, watching("127.0.0.1", mosquitto.port, topic) as w:
        raw = await w.wait_raw(topic)
        summary = ActivitySummary.model_validate_json(raw)
        assert summary.timezone == "Asia/Shanghai"
        total = sum(sum(c) for d in summary.days.values() for c in d.rooms.values())
        assert total == expected_marks(now) > 0
        assert hub.activity.published >= 1


async def test_the_activity_view_shows_activity_from_before_the_tui_started(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    data = await seeded_hub_dir(tmp_path, now)
    home = f"t{uuid.uuid4().hex[:10]}"
    config = make_config(config_text(mosquitto.url, home=home), tmp_path)
    async with running_hub(config, data) as hub:
        settings = tuikit.settings(tz=TZ, rooms={"kitchen": ("Kitchen", "厨房"), "bathroom": ("Bathroom", "卫生间")})
        app = CaregiverApp(Target(client_settings(mosquitto.url), "hub", home), settings, clock=RealClock())
        async with app.run_test(size=(80, 40)) as pilot:
            await until(pilot, lambda: hub.activity.published >= 1 and app.home.activity_as_of is not None)
            await pilot.press("3")
            await pilot.pause()
            text = tuikit.screen_text(app)
    assert "history of today and yesterday" in text
    kitchen = [line for line in text.splitlines() if line.strip().startswith("Kitchen")]
    # Marks (not `.`) in the kitchen's strip: activity the TUI never saw as a live event.
    assert kitchen, text
    assert any(ch in ":*#" for line in kitchen for ch in line.split("Kitchen", 1)[1]), text
    assert sum(app.home.activity.values()) == expected_marks(now)
