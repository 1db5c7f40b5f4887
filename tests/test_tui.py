"""The caregiver TUI: pure parts, every view and key with Pilot against a real broker, a real hub, snapshots."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from hub.api import AlertView, Topics
from hub.clock import Clock, RealClock
from hub.signs import night_visits
from hub.tui.app import CaregiverApp
from hub.tui.client import Target, client_settings
from hub.tui.i18n import HELP_KEYS
from hub.tui.render import strip
from hub.tui.state import Home, Problems, apply_message
from hub.tui.themes import PALETTES, contrast
from tests import tuikit
from tests.brokers import Mosquitto
from tests.hubctl import WAIT, config_text, make_config, running_hub, watching
from tests.test_hub import SWITCH, WINDOW, bridge_devices, publish, z2m_home

pytestmark = pytest.mark.timeout(60)


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_every_colour_pair_of_both_themes_has_contrast_of_7_or_more(theme: str) -> None:
    for name, (fg, bg) in PALETTES[theme].pairs().items():
        assert contrast(fg, bg) >= 7.0, (theme, name, fg, bg, contrast(fg, bg))


def test_contrast_formula_matches_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic just-fails grey


def test_alerts_sort_most_severe_then_oldest_and_bad_payloads_are_counted() -> None:
    home, problems = Home("h"), Problems()
    for topic, payload in tuikit.recorded("h"):
        apply_message(home, topic.split("/", 2)[2], payload, tuikit.TZ, problems)
    assert [a.id for a in home.sorted_alerts()] == ["al-bath-1", "al-cold-1", "al-bed-1", "al-door-1"]
    assert [a.id for a in home.critical_unacknowledged()] == ["al-bath-1"]
    assert apply_message(home, "alerts/x", b"{not json", tuikit.TZ, problems) is None
    assert apply_message(home, "alerts/x", b'{"id": "x"}', tuikit.TZ, problems) is None
    assert problems.counts["invalid_payload"] == 2
    assert apply_message(home, "alerts/al-door-1", b"", tuikit.TZ, problems) == "alerts"  # closed
    assert "al-door-1" not in home.alerts
    assert apply_message(home, "alerts/al-bath-1/ack", b"{}", tuikit.TZ, problems) is None  # a request, not state


def test_hour_strip_and_night_bathroom_visits() -> None:
    assert strip([0] * 23 + [9]) == "." * 23 + "#"
    assert strip([0, 1, 2, 3, 6]) == ".::*#"
    home = Home("h")
    for topic, payload in tuikit.recorded("h"):
        apply_message(home, topic.split("/", 2)[2], payload, tuikit.TZ)
    today = tuikit.NOW.astimezone(tuikit.TZ).date()
    visits = night_visits(list(home.bathroom), today)
    # 23:50, then 01:10 and 01:14 (one visit), then 02:05.
    assert [v.strftime("%H:%M") for v in visits] == ["23:50", "01:10", "02:05"]
    assert home.first_activity[today - timedelta(days=1)].strftime("%H:%M") == "07:40"


# -- Pilot against a real broker --------------------------------------------------------------


async def until(pilot: object, cond: Callable[[], bool], timeout: float = WAIT) -> None:  # noqa: ASYNC109
    """Let the app run until cond() holds (bounded)."""
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.01)


async def publish_home(broker: Mosquitto, home_id: str, *, events: bool = True) -> None:
    """Publish the recorded API messages: retained ones retained, events not."""
    events_topic = Topics.for_home(home_id).events
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for topic, payload in tuikit.recorded(home_id):
            if topic == events_topic and not events:
                continue
            await client.publish(topic, payload, qos=1, retain=topic != events_topic)


def tui(broker: Mosquitto, home_id: str | None, clock: Clock | None = None, **kw: object) -> CaregiverApp:
    return CaregiverApp(
        Target(client_settings(broker.url), "hub", home_id), tuikit.settings(**kw), clock=clock or tuikit.clock()
    )


def shown(app: CaregiverApp) -> str:
    return tuikit.screen_text(app)


async def test_an_alert_appears_and_enter_acknowledges_it_with_who_and_note(mosquitto: Mosquitto) -> None:
    home = f"t{uuid.uuid4().hex[:8]}"
    root = f"hub/{home}"
    async with watching("127.0.0.1", mosquitto.port, f"{root}/alerts/+/ack") as w:
        app = tui(mosquitto, home)
        async with app.run_test(size=(80, 24)) as pilot:
            await publish_home(mosquitto, home, events=False)
            await until(pilot, lambda: "CRITICAL" in shown(app) and "al-door-1" in app.home.alerts)
            assert "Bathroom occupied for 25 min" in shown(app)
            assert app.query_one("#banner").has_class("-shown")
            # The critical alert is first and highlighted: Enter, a note, Enter.
            await pilot.press("enter")
            await pilot.press(*"called her", "enter")
            ack = await w.wait_for(f"{root}/alerts/al-bath-1/ack")
            assert ack == {"by": "li-mei", "note": "called her", "channel": "tui"}
            assert "Acknowledgement sent" in shown(app)


async def test_two_tuis_see_each_others_acknowledgement_within_a_second(mosquitto: Mosquitto) -> None:
    """TUI A acknowledges; the hub's republish (simulated here: the rules engine has not landed) reaches B."""
    home = f"t{uuid.uuid4().hex[:8]}"
    root = f"hub/{home}"
    await publish_home(mosquitto, home, events=False)
    a, b = tui(mosquitto, home), tui(mosquitto, home, who="zhang-wei")
    async with (
        watching("127.0.0.1", mosquitto.port, f"{root}/alerts/+/ack") as w,
        a.run_test(size=(80, 24)) as pa,
        b.run_test(size=(80, 24)) as pb,
    ):
        await until(pa, lambda: "al-bath-1" in a.home.alerts)
        await until(pb, lambda: "al-bath-1" in b.home.alerts)
        await pb.press("enter", "enter")  # B acknowledges without a note
        ack = await w.wait_for(f"{root}/alerts/al-bath-1/ack")
        assert ack["by"] == "zhang-wei"
        # What the hub does with an accepted ack: republish the alert as acknowledged.
        alert = next(x for x in tuikit.alerts() if x.id == "al-bath-1")
        acked = alert.model_copy(
            update={"state": "acknowledged", "acknowledged_by": ack["by"], "acknowledged_at": tuikit.NOW}
        )
        started = time.monotonic()
        await publish(mosquitto, f"{root}/alerts/al-bath-1", acked.model_dump_json(), retain=True)
        await until(pa, lambda: "acknowledged by Zhang Wei" in shown(a), timeout=1.0)
        await until(pb, lambda: "acknowledged by Zhang Wei" in shown(b), timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert not a.query_one("#banner").has_class("-shown")  # no critical left unacknowledged


async def test_updates_never_move_the_highlight_and_pause_freezes_the_list(mosquitto: Mosquitto) -> None:
    from textual.widgets import OptionList

    home = f"t{uuid.uuid4().hex[:8]}"
    await publish_home(mosquitto, home, events=False)
    app = tui(mosquitto, home)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: (len(app.home.alerts) == 4 and "INFO" in shown(app)) or "[i]" in shown(app))
        await pilot.press("down", "down")  # the unacknowledged warning
        ol = app.query_one("#alerts", OptionList)
        assert ol.highlighted_option is not None
        assert ol.highlighted_option.id == "a:al-bed-1"
        focused = app.focused
        # A new critical alert sorts above it: the highlight stays on the same alert, focus stays.
        new = tuikit.alerts()[0].model_copy(update={"id": "al-sos-1", "raised_at": tuikit.NOW - timedelta(hours=3)})
        await publish(mosquitto, f"hub/{home}/alerts/al-sos-1", new.model_dump_json(), retain=True)
        await until(pilot, lambda: ol.option_count == 5)
        assert ol.highlighted_option is not None
        assert ol.highlighted_option.id == "a:al-bed-1"
        assert app.focused is focused
        # Paused: state is kept, the list is not redrawn, the top line says so.
        await pilot.press("p")
        assert "PAUSED" in shown(app)
        await publish(mosquitto, f"hub/{home}/alerts/al-sos-1", b"", retain=True)
        await until(pilot, lambda: "al-sos-1" not in app.home.alerts)
        await pilot.pause()
        assert ol.option_count == 5
        await pilot.press("p")
        await until(pilot, lambda: ol.option_count == 4)
        assert ol.highlighted_option is not None
        assert ol.highlighted_option.id == "a:al-bed-1"


async def test_every_view_key_and_help_lists_every_key(mosquitto: Mosquitto) -> None:
    home = f"t{uuid.uuid4().hex[:8]}"
    await publish_home(mosquitto, home, events=False)
    app = tui(mosquitto, home)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: len(app.home.rules) == 4 and len(app.home.inbox) == 2)
        await publish_home(mosquitto, home)  # now the events reach the connected TUI
        await until(pilot, lambda: bool(app.home.bathroom))
        expected = {
            "2": "Bedroom climate",
            "h": "temperature 17.4 °C",
            "3": "Night bathroom visits (22:00-07:00): 3",
            "v": "Yesterday",
            "4": "livingroom/window",
            "i": "seen via z2m",
            "5": "counting down: 6 min left",
            "r": "snoozed until 03:10",
            "6": "House mode now: home",
            "m": "lowers protection",
            "question_mark": "Keys (one key per action)",
            "1": "[!!] CRITICAL",
            "a": "Bathroom occupied",
        }
        for key, text in expected.items():
            await pilot.press(key)
            await until(pilot, lambda text=text: text in shown(app))  # type: ignore[misc]
        await pilot.press("question_mark")
        help_text = shown(app)
        for key in HELP_KEYS:
            assert key in help_text
        bound = {k for b in app.BINDINGS for k in b.key.split(",")}  # type: ignore[union-attr]
        labels = {"question_mark": "?", "escape": "Esc"}
        for key in bound:
            label = labels.get(key, key)
            assert any(label in k.split(" / ") or label == k for k in HELP_KEYS), key
        # Device detail from Home, and back with Esc.
        await pilot.press("2", "down", "enter")
        await until(pilot, lambda: "Points" in shown(app) and "Recent values" in shown(app))
        await pilot.press("escape")
        await until(pilot, lambda: "[2 Home]" in shown(app))
        # Language, theme, large layout.
        await pilot.press("l")
        await until(pilot, lambda: "[2 家中]" in shown(app))
        await pilot.press("l", "t")
        assert app.theme == "eldercare-light"
        await pilot.press("g")
        assert app.screen.has_class("-large")


async def test_rule_snooze_and_disable_and_ignore_take_two_steps(mosquitto: Mosquitto) -> None:
    home = f"t{uuid.uuid4().hex[:8]}"
    root = f"hub/{home}"
    await publish_home(mosquitto, home, events=False)
    app = tui(mosquitto, home)
    async with (
        watching("127.0.0.1", mosquitto.port, f"{root}/rules/+/set", f"{root}/inbox/+/ignore") as w,
        app.run_test(size=(80, 24)) as pilot,
    ):
        await until(pilot, lambda: len(app.home.rules) == 4 and len(app.home.inbox) == 2)
        await pilot.press("5")  # rules sorted by id: bathroom-night first
        await pilot.press("s", "backspace", "backspace", *"45", "enter")
        await until(pilot, lambda: "Snooze the rule 'Bathroom too long' for 45 min?" in shown(app))
        await pilot.press("n")  # the second step says no: nothing is sent
        await pilot.press("s", "enter", "y")
        assert await w.wait_for(f"{root}/rules/bathroom-night/set") == {"snooze_minutes": 30}
        await pilot.press("d")
        await until(pilot, lambda: "This lowers protection" in shown(app))
        await pilot.press("y")
        assert await w.wait_for(f"{root}/rules/bathroom-night/set", lambda d: "enabled" in d) == {"enabled": False}
        await pilot.press("4", "x")
        await until(pilot, lambda: "Ignore the device" in shown(app))
        await pilot.press("y")
        assert await w.wait_for(f"{root}/inbox/{tuikit.PENDING[0].id}/ignore") == {}
        assert not [m for m in w.seen if m.payload and b"45" in m.payload]


# -- against a real hub ----------------------------------------------------------------------


async def test_adopt_from_the_inbox_makes_the_device_active(mosquitto: Mosquitto, tmp_path: Path) -> None:
    base = f"z2m{uuid.uuid4().hex[:8]}"
    config = make_config(z2m_home(mosquitto.url, base), tmp_path)
    await publish(mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
    async with running_hub(config, tmp_path / "data") as hub:
        app = tui(mosquitto, config.home.id, rooms={"kitchen": ("Kitchen", None), "bedroom": ("Bedroom", None)})
        async with app.run_test(size=(80, 30)) as pilot:
            await until(pilot, lambda: WINDOW in app.home.inbox)
            await pilot.press("4")
            ol_ids = [o.id for o in app.query_one("#inbox").options]  # type: ignore[attr-defined]
            for _ in range(ol_ids.index(f"p:{WINDOW}")):
                await pilot.press("down")
            await pilot.press("enter", "ctrl+u", *"Window", "enter")  # name
            await until(pilot, lambda: "Which room?" in shown(app))
            await pilot.press("down", "enter")  # bedroom
            await until(pilot, lambda: hub.registry.active(WINDOW))
            await until(pilot, lambda: WINDOW in app.home.devices and WINDOW not in app.home.inbox)
            device = app.home.devices[WINDOW]
            assert (device.name, device.room) == ("Window", "bedroom")
            await pilot.press("2")
            await until(pilot, lambda: "Window" in shown(app))
            assert hub.registry.active(SWITCH)


async def test_a_mode_change_round_trips_through_the_hub(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = make_config(config_text(mosquitto.url), tmp_path)
    async with running_hub(config, tmp_path / "data") as hub:
        app = tui(mosquitto, config.home.id, RealClock())  # the hub's clock: a visitor's end is real time
        async with app.run_test(size=(80, 30)) as pilot:
            await until(pilot, lambda: app.home.mode is not None and app.home.status is not None)
            await pilot.press("m", "down", "enter")  # away lowers protection: asks
            await until(pilot, lambda: "Switch the house to 'away'?" in shown(app))
            await pilot.press("y")
            await until(pilot, lambda: hub.mode.mode == "away")
            await until(pilot, lambda: "House mode now: away" in shown(app))
            # Visitor asks for hours; its countdown is shown.
            await pilot.press("down", "enter", "ctrl+u", "2", "enter", "y")
            await until(pilot, lambda: hub.mode.mode == "visitor")
            assert hub.mode.until is not None
            assert abs((hub.mode.until - datetime.now(UTC)) - timedelta(hours=2)) < timedelta(minutes=1)
            await until(pilot, lambda: "until" in shown(app) and "1 h 59 min left" in shown(app))
            # Sleep does not lower protection: one step.
            await pilot.press("down", "enter")
            await until(pilot, lambda: hub.mode.mode == "sleep")


# -- snapshots -------------------------------------------------------------------------------

# name -> (size, view key, settings, NO_COLOR)
SNAPSHOT_CASES: dict[str, tuple[tuple[int, int], str, dict[str, object], bool]] = {
    "alerts-80x24-dark-en": ((80, 24), "1", {}, False),
    "alerts-80x24-light-en": ((80, 24), "1", {"theme": "light"}, False),
    "alerts-80x24-dark-zh": ((80, 24), "1", {"lang": "zh-CN"}, False),
    "alerts-80x24-nocolor-en": ((80, 24), "1", {}, True),
    "alerts-40x30-dark-zh": ((40, 30), "1", {"lang": "zh-CN"}, False),
    "alerts-40x30-light-en-plain": ((40, 30), "1", {"theme": "light", "plain": True}, False),
    "home-80x24-dark-en": ((80, 24), "2", {}, False),
    "home-40x30-light-zh": ((40, 30), "2", {"lang": "zh-CN", "theme": "light"}, False),
    "activity-80x24-dark-en": ((80, 24), "3", {}, False),
    "activity-40x30-dark-zh": ((40, 30), "3", {"lang": "zh-CN"}, False),
    "inbox-80x24-dark-en": ((80, 24), "4", {}, False),
    "rules-80x24-light-zh": ((80, 24), "5", {"lang": "zh-CN", "theme": "light"}, False),
    "mode-80x24-dark-en": ((80, 24), "6", {}, False),
    "help-80x24-dark-zh": ((80, 24), "question_mark", {"lang": "zh-CN"}, False),
}


@pytest.mark.parametrize("name", list(SNAPSHOT_CASES))
async def test_snapshot(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    size, key, kw, no_color = SNAPSHOT_CASES[name]
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    app = CaregiverApp(
        Target(client_settings("mqtt://127.0.0.1:1"), "hub", "snap"),
        tuikit.settings(**kw),
        clock=tuikit.clock(),
        connect=False,
    )
    async with app.run_test(size=size) as pilot:
        for topic, payload in tuikit.recorded("snap"):
            app.receive("snap", topic.split("/", 2)[2], payload)
        await pilot.press(key)
        await pilot.pause()
        text = shown(app)
        svg = app.export_screenshot()
    width = size[0]
    from rich.cells import cell_len

    assert all(cell_len(line) <= width for line in text.splitlines()), "a line is wider than the terminal"
    if kw.get("plain"):
        assert not any("\u2500" <= ch <= "\u259f" for ch in text), "box drawing or block characters in plain mode"
    if no_color:
        colours = {c.lower() for c in _svg_colours(svg)}
        assert colours <= {"#000000", "#ffffff"}, colours
    problems = [*tuikit.compare(f"{name}.txt", text), *tuikit.compare(f"{name}.svg", svg)]
    assert not problems, problems


def _svg_colours(svg: str) -> set[str]:
    import re

    # Text colours (CSS classes; r1 is the window title) and cell backgrounds (#292929 is the window).
    text = set(re.findall(r"-r(?!1 )\d+ \{ fill: (#[0-9a-fA-F]{6})", svg))
    cells = set(re.findall(r'<rect fill="(#[0-9a-fA-F]{6})"', svg)) - {"#292929"}
    return text | cells


def test_alert_payloads_in_the_recording_follow_the_api_contract() -> None:
    for a in tuikit.alerts():
        assert AlertView.model_validate_json(a.model_dump_json()) == a
    assert json.loads(tuikit.alerts()[0].model_dump_json())["severity"] == "critical"


async def test_a_stopped_broker_is_said_on_screen(tmp_path: Path) -> None:
    from tests.brokers import free_port

    app = CaregiverApp(
        Target(client_settings(f"mqtt://127.0.0.1:{free_port()}"), "hub", "x"), tuikit.settings(), clock=tuikit.clock()
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "not connected to the broker" in shown(app))
        assert "Connection refused" in shown(app) or "connect" in shown(app)
    await asyncio.sleep(0)


async def test_an_alert_raised_by_the_hub_is_acknowledged_from_the_tui_and_the_hub_records_who(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The whole path: a button press, the hub's sos rule raises a critical alert, Enter acknowledges it."""
    base = f"z2m{uuid.uuid4().hex[:8]}"
    button = "z2m-0x00158d000224154d"  # WXKG01LM, friendly name = its ieee address
    extra = f"devices:\n  - {{id: {button}, name: SOS button, room: bedroom, role: sos}}\nrules:\n  - kind: sos\n"
    text = config_text(mosquitto.url, extra=extra).replace(
        "discovery:\n", f"discovery:\n  zigbee2mqtt: {{base_topic: {base}}}\n"
    )
    config = make_config(text, tmp_path)
    await publish(mosquitto, f"{base}/bridge/devices", bridge_devices(), retain=True)
    async with running_hub(config, tmp_path / "data") as hub:
        app = tui(mosquitto, config.home.id, RealClock())
        async with app.run_test(size=(80, 30)) as pilot:
            await until(pilot, lambda: button in app.home.devices)
            await publish(mosquitto, f"{base}/0x00158d000224154d", b'{"action":"single"}')
            await until(pilot, lambda: any(a.severity == "critical" for a in app.home.alerts.values()))
            alert_id = next(iter(app.home.alerts))
            assert app.query_one("#banner").has_class("-shown")
            await pilot.press("1", "enter", *"on my way", "enter")
            # The hub republishes the open alert as acknowledged, saying who, how and the note.
            await until(pilot, lambda: app.home.alerts[alert_id].acknowledged_at is not None)
            view = app.home.alerts[alert_id]
            assert (view.acknowledged_by, view.note, view.ack_channel) == ("li-mei", "on my way", "tui")
            assert "acknowledged by Li Mei (daughter)" in shown(app)
            await until(pilot, lambda: not app.query_one("#banner").has_class("-shown"))
    assert hub.counters.get("request_rejected.refused", 0) == 0
