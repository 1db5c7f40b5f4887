"""Recorded hub API messages of one evening in a test home, and helpers to look at the TUI as text."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.api import EVENT_ADAPTER, AlertView, Delivery, DeviceState, HubStatus, ModeState, RuleView, Topics
from hub.clock import SimClock
from hub.model import Availability, AvailabilityState, Device, Kind, Point, Protocol, StateChanged, Status
from hub.tui.settings import Settings

# 02:30 in Shanghai: the night, when a bathroom visit runs long.
NOW = datetime(2025, 3, 4, 18, 30, tzinfo=UTC)
TZ = ZoneInfo("Asia/Shanghai")
SNAPSHOTS = Path(__file__).parent / "snapshots"

ROOMS = {
    "bedroom": ("Bedroom", "卧室"),
    "bathroom": ("Bathroom", "卫生间"),
    "kitchen": ("Kitchen", "厨房"),
    "hallway": ("Hallway", "走廊"),
}
PEOPLE = {"li-mei": "Li Mei (daughter)", "zhang-wei": "Zhang Wei (neighbour)"}


def settings(**kw: object) -> Settings:
    """TUI settings with the test home's names and time zone."""
    base = Settings(who="li-mei", tz=TZ, home_name="Wang Xiuying's home", rooms=dict(ROOMS), people=dict(PEOPLE))
    for k, v in kw.items():
        setattr(base, k, v)
    return base


def clock() -> SimClock:
    """A clock stopped at NOW, so that every rendering is the same."""
    return SimClock(NOW)


def _dev(ident: str, name: str, room: str | None, points: list[Point], status: Status = Status.ADOPTED) -> Device:
    return Device(
        id=ident,
        name=name,
        protocol=Protocol(ident.split("-", 1)[0]),
        room=room,
        status=status,
        manufacturer="Aqara" if ident.startswith("z2m") else None,
        model="RTCGQ11LM" if "motion" in name.lower() else None,
        availability=Availability(state=AvailabilityState.ONLINE, last_seen=NOW - timedelta(minutes=1)),
        points=tuple(points),
    )


def _p(key: str, kind: Kind, name: str | None = None) -> Point:
    return Point(key=key, kind=kind, name=name)


DEVICES = [
    _dev(
        "z2m-bath-motion", "Bathroom motion", "bathroom", [_p("occupancy", Kind.OCCUPANCY), _p("battery", Kind.BATTERY)]
    ),
    _dev("z2m-bath-door", "Bathroom door", "bathroom", [_p("contact", Kind.CONTACT), _p("battery", Kind.BATTERY)]),
    _dev(
        "ha-bedroom-climate",
        "Bedroom climate",
        "bedroom",
        [_p("temperature", Kind.TEMPERATURE), _p("humidity", Kind.HUMIDITY)],
    ),
    _dev("z2m-bed", "Bed sensor", "bedroom", [_p("presence", Kind.PRESENCE)]),
    _dev("z2m-sos", "SOS button", "bedroom", [_p("action", Kind.SOS), _p("battery", Kind.BATTERY)]),
    _dev("tasmota-cooktop", "Cooktop plug", "kitchen", [_p("switch", Kind.SWITCH), _p("power", Kind.POWER)]),
    _dev("z2m-hall-motion", "Hallway motion", "hallway", [_p("occupancy", Kind.OCCUPANCY)]),
]
STATES = {
    "z2m-bath-motion": ({"occupancy": True, "battery": 87}, AvailabilityState.ONLINE),
    "z2m-bath-door": ({"contact": False, "battery": 64}, AvailabilityState.ONLINE),
    "ha-bedroom-climate": ({"temperature": 17.4, "humidity": 58}, AvailabilityState.ONLINE),
    "z2m-bed": ({"presence": False}, AvailabilityState.ONLINE),
    "z2m-sos": ({"battery": 12}, AvailabilityState.ONLINE),
    "tasmota-cooktop": ({"switch": False, "power": 0.0}, AvailabilityState.ONLINE),
    "z2m-hall-motion": ({"occupancy": False}, AvailabilityState.OFFLINE),
}
PENDING = [
    _dev("z2m-0x00158d0001e1a85a", "livingroom/window", None, [_p("contact", Kind.CONTACT)], Status.PENDING),
    _dev(
        "shelly-plusplugs-a1b2",
        "shellyplusplugs-a1b2",
        None,
        [_p("switch", Kind.SWITCH), _p("power", Kind.POWER)],
        Status.PENDING,
    ),
]


def alerts() -> list[AlertView]:
    """Four open alerts: one critical, two warnings (one acknowledged) and one info."""
    told = (
        Delivery(caregiver="li-mei", tier=1, channel="ntfy", at=NOW - timedelta(minutes=15), ok=True),
        Delivery(
            caregiver="zhang-wei", tier=2, channel="ntfy", at=NOW - timedelta(minutes=5), ok=False, error="timeout"
        ),
    )
    return [
        AlertView(
            id="al-bath-1",
            rule_id="bathroom-night",
            rule_kind="bathroom_too_long",
            room="bathroom",
            severity="critical",
            state="notified",
            raised_at=NOW - timedelta(minutes=25),
            updated_at=NOW - timedelta(minutes=5),
            escalation_step=2,
            tier=2,
            deliveries=told,
            device_ids=("z2m-bath-motion", "z2m-bath-door"),
            message={
                "en": "Bathroom occupied for 25 min, over the 20 min night limit",
                "zh-CN": "卫生间有人已 25 分钟，超过夜间 20 分钟上限",
            },
            advice={"en": "Call her, or ask the neighbour to knock.", "zh-CN": "给她打电话，或请邻居敲门看看。"},
        ),
        AlertView(
            id="al-bed-1",
            rule_id="out-of-bed",
            rule_kind="night_out_of_bed",
            room="bedroom",
            severity="warning",
            state="notified",
            raised_at=NOW - timedelta(minutes=50),
            updated_at=NOW - timedelta(minutes=40),
            escalation_step=1,
            tier=1,
            deliveries=told[:1],
            message={"en": "Out of bed for 50 min at night", "zh-CN": "夜间离床已 50 分钟"},
        ),
        AlertView(
            id="al-cold-1",
            rule_id="bedroom-cold",
            rule_kind="room_temperature",
            room="bedroom",
            severity="warning",
            state="acknowledged",
            raised_at=NOW - timedelta(hours=2),
            updated_at=NOW - timedelta(hours=1),
            escalation_step=1,
            tier=1,
            deliveries=told[:1],
            acknowledged_by="li-mei",
            acknowledged_at=NOW - timedelta(hours=1),
            ack_channel="tui",
            note="Called her, she put on the heater",
            message={"en": "Bedroom at 17.4 °C, below 18 °C for 2 h", "zh-CN": "卧室 17.4 °C，低于 18 °C 已 2 小时"},
            advice={"en": "Ask her to turn the heating on.", "zh-CN": "请她打开暖气。"},
        ),
        AlertView(
            id="al-door-1",
            rule_id="door-open",
            rule_kind="door_left_open",
            room="hallway",
            severity="info",
            state="raised",
            raised_at=NOW - timedelta(minutes=8),
            updated_at=NOW - timedelta(minutes=8),
            message={"en": "Front door open for 8 min", "zh-CN": "大门已开 8 分钟"},
        ),
    ]


def rules() -> list[RuleView]:
    """Rules in each state the Rules view shows."""
    return [
        RuleView(
            id="bathroom-night",
            kind="bathroom_too_long",
            room="bathroom",
            state="counting",
            deadline=NOW + timedelta(minutes=6),
            last_fired=NOW - timedelta(minutes=25),
            title={"en": "Bathroom too long", "zh-CN": "如厕时间过长"},
        ),
        RuleView(
            id="inactivity",
            kind="inactivity",
            state="armed",
            last_fired=NOW - timedelta(days=3),
            title={"en": "No movement in the day", "zh-CN": "白天长时间无活动"},
        ),
        RuleView(
            id="door-open",
            kind="door_left_open",
            room="hallway",
            state="snoozed",
            snoozed_until=NOW + timedelta(minutes=40),
            title={"en": "Door left open", "zh-CN": "门未关"},
        ),
        RuleView(
            id="kitchen-cooktop",
            kind="appliance_left_on",
            room="kitchen",
            enabled=False,
            state="disabled",
            title={"en": "Cooktop left on", "zh-CN": "电磁炉未关"},
        ),
    ]


def activity_events() -> list[StateChanged]:
    """A day and a half of motion: up at 07:40, meals, two night bathroom visits."""
    out: list[StateChanged] = []
    local_now = NOW.astimezone(TZ)
    today = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    plan = [
        (-1, 7, 40, "z2m-bed", "presence"),
        (-1, 7, 45, "z2m-bath-motion", "occupancy"),
        (-1, 8, 10, "z2m-hall-motion", "occupancy"),
        (-1, 11, 30, "z2m-hall-motion", "occupancy"),
        (-1, 12, 0, "z2m-hall-motion", "occupancy"),
        (-1, 15, 20, "z2m-bath-motion", "occupancy"),
        (-1, 18, 0, "z2m-hall-motion", "occupancy"),
        (-1, 18, 5, "z2m-hall-motion", "occupancy"),
        (-1, 18, 9, "z2m-hall-motion", "occupancy"),
        (-1, 21, 30, "z2m-bed", "presence"),
        (-1, 23, 50, "z2m-bath-motion", "occupancy"),
        (0, 1, 10, "z2m-bath-motion", "occupancy"),
        (0, 1, 14, "z2m-bath-motion", "occupancy"),
        (0, 2, 5, "z2m-bath-motion", "occupancy"),
    ]
    for day, hour, minute, device, key in plan:
        ts = (today + timedelta(days=day, hours=hour, minutes=minute)).astimezone(UTC)
        out.append(StateChanged(ts=ts, device_id=device, values={key: True}))
    return out


def recorded(home_id: str) -> list[tuple[str, bytes]]:
    """Every retained API message of the test home, then the events, in the order a hub sends them."""
    t = Topics.for_home(home_id)
    msgs: list[tuple[str, bytes]] = [
        (
            t.status,
            HubStatus(state="online", version="0.1.0", started_at=NOW - timedelta(days=1)).model_dump_json().encode(),
        ),
        (t.mode, ModeState(mode="home", since=NOW - timedelta(hours=10)).model_dump_json().encode()),
    ]
    for d in DEVICES:
        msgs.append((t.device(d.id), d.model_dump_json().encode()))
        values, avail = STATES[d.id]
        seen = NOW - (timedelta(hours=5) if avail is AvailabilityState.OFFLINE else timedelta(minutes=1))
        state = DeviceState(ts=seen, values=values, availability=Availability(state=avail, last_seen=seen))
        msgs.append((t.device_state(d.id), state.model_dump_json().encode()))
    msgs += [(t.inbox(d.id), d.model_dump_json().encode()) for d in PENDING]
    msgs += [(t.alert(a.id), a.model_dump_json().encode()) for a in alerts()]
    msgs += [(t.rule(r.id), r.model_dump_json().encode()) for r in rules()]
    msgs += [(t.events, EVENT_ADAPTER.dump_json(e)) for e in activity_events()]
    return msgs


def write_recorded(path: Path, home_id: str) -> None:
    """The recorded messages as JSON lines {"topic", "payload"} (null payload = cleared)."""
    with path.open("w", encoding="utf-8") as f:
        for topic, payload in recorded(home_id):
            f.write(json.dumps({"topic": topic, "payload": json.loads(payload) if payload else None}) + "\n")


def screen_text(app: object) -> str:
    """What the screen shows, as plain text lines (trailing spaces trimmed)."""
    from textual.app import App

    assert isinstance(app, App)
    strips = app.screen._compositor.render_strips()
    return "\n".join(s.text.rstrip() for s in strips) + "\n"


def updating() -> bool:
    """Whether snapshot files are (re)written instead of compared: UPDATE_SNAPSHOTS=1."""
    return os.environ.get("UPDATE_SNAPSHOTS") == "1"


def compare(name: str, actual: str) -> Iterator[str]:
    """Differences between a snapshot file and what was rendered (none when they match or on update)."""
    path = SNAPSHOTS / name
    if updating() or not path.exists():
        if not updating():
            yield f"{path} did not exist: written now, run again (or set UPDATE_SNAPSHOTS=1)"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if expected != actual:
        yield f"{name} differs from the snapshot (UPDATE_SNAPSHOTS=1 rewrites it after review)"
