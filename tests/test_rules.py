"""Every rule kind of RULES.md on the simulated clock: fires, not, once, resolves, modes, midnight, offline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from hub.api import HouseMode
from hub.config import ConfigError
from hub.model import AvailabilityState, DeviceDiscovered, DeviceRemoved, Kind
from hub.rules.spec import RuleError, check_rules
from tests.rules_home import DEVICES, MONDAY, Dev, Home, device, home_config

Step = tuple[Any, ...]
Fired = tuple[str, str, str | None, str]


@dataclass(frozen=True)
class Case:
    """One scenario: rules, start, steps, the alerts of `kind` expected (HH:MM, kind, room, severity)."""

    name: str
    kind: str
    rules: str
    steps: tuple[Step, ...]
    expect: tuple[Fired, ...]
    start: str = "08:00"
    state: str | None = None  # the last lifecycle state of the kind's alert
    acts: tuple[tuple[str, dict[str, Any]], ...] | None = None  # the commands sent, in order
    no_presence: bool = False


def rule(kind: str, extra: str = "") -> str:
    return f"  - kind: {kind}\n" + "".join(f"    {line}\n" for line in extra.splitlines() if line)


async def play(case: Case, mode: HouseMode | None = None) -> Home:
    hour, minute = map(int, case.start.split(":"))
    devices = tuple(d for d in DEVICES if not (case.no_presence and d.id == "homie-radar"))
    home = Home.build(case.rules, start=MONDAY.replace(hour=hour, minute=minute), devices=devices)
    if mode is not None:
        home.mode(mode, until=home.clock.now() + timedelta(days=30))
    for step in case.steps:
        await STEPS[step[0]](home, *step[1:])
    return home


async def _at(home: Home, when: str, day: int = 0) -> None:
    await home.at(when, day)


async def _set(home: Home, dev: str, values: dict[str, Any]) -> None:
    home.set(dev, **values)


async def _press(home: Home, dev: str, key: str, value: Any) -> None:
    home.press(dev, key, value)


async def _wait(home: Home, seconds: float) -> None:
    await home.wait(seconds)


async def _mode(home: Home, mode: HouseMode) -> None:
    home.mode(mode)


async def _move(home: Home, dev: str) -> None:
    # A PIR sensor reports motion, then clear after its own timeout.
    home.set(dev, motion=True)
    home.set(dev, motion=False)


async def _down(home: Home, dev: str) -> None:
    home.availability(dev, AvailabilityState.OFFLINE)


async def _up(home: Home, dev: str) -> None:
    home.availability(dev, AvailabilityState.ONLINE)


async def _ack(home: Home, kind: str, channel: str = "mqtt") -> None:
    alert = next(a for a in reversed(home.raised) if a.rule_kind == kind)
    home.ack(alert.id, "resident" if channel == "resident" else "daughter", channel)


STEPS = {
    "at": _at,
    "set": _set,
    "press": _press,
    "wait": _wait,
    "mode": _mode,
    "move": _move,
    "down": _down,
    "up": _up,
    "ack": _ack,
}

M = 60  # seconds per minute, for readable waits


def motion(dev: str = "z2m-kitchen-motion") -> Step:
    return ("move", dev)


def door(value: bool, dev: str = "z2m-front-door") -> Step:
    return ("set", dev, {"contact": value})


def bath_enter() -> tuple[Step, ...]:
    return (
        ("set", "z2m-bath-door", {"contact": True}),
        motion("z2m-bath-motion"),
        ("set", "z2m-bath-door", {"contact": False}),
    )


CASES: list[Case] = [
    # -- inactivity: 2 h here (a presence radar exists), 4 h without one; 07:00-22:00; home mode only
    Case(
        "fires after 2 h with presence sensors",
        "inactivity",
        rule("inactivity"),
        (motion(), ("at", "18:00")),
        (("10:00", "inactivity", None, "warning"),),
    ),
    Case(
        "fires after 4 h without, exactly once",
        "inactivity",
        rule("inactivity"),
        (motion(), ("at", "21:59")),
        (("12:00", "inactivity", None, "warning"),),
        no_presence=True,
    ),
    Case(
        "activity every 90 min: never",
        "inactivity",
        rule("inactivity"),
        tuple(s for h in range(8, 21) for s in (("at", f"{h}:30"), motion())),
        (),
    ),
    Case(
        "resolves when someone moves after the resident stage",
        "inactivity",
        rule("inactivity"),
        (motion(), ("at", "10:30"), motion(), ("at", "11:00")),
        (("10:00", "inactivity", None, "warning"),),
        state="resolved",
    ),
    Case(
        "moving within the resident stage cancels",
        "inactivity",
        rule("inactivity"),
        (motion(), ("at", "10:01"), motion()),
        (("10:00", "inactivity", None, "warning"),),
        state="cancelled_by_resident",
    ),
    Case(
        "counting starts again at 07:00 after the night",
        "inactivity",
        rule("inactivity"),
        (("at", "21:00"), motion(), ("at", "12:00", 1)),
        (("09:00", "inactivity", None, "warning"),),
        start="20:00",
    ),
    Case(
        "away inferred after an exit door cycle",
        "inactivity",
        rule("inactivity"),
        (motion(), ("at", "09:00"), door(True), door(False), ("at", "15:00")),
        (),
    ),
    Case(
        "a sensor offline mid-window is not silence: still fires",
        "inactivity",
        rule("inactivity"),
        (motion(), ("at", "09:00"), ("down", "z2m-kitchen-motion"), ("at", "12:00")),
        (("10:00", "inactivity", None, "warning"),),
    ),
    Case(
        "the visitor countdown ends: counting from then",
        "inactivity",
        rule("inactivity"),
        (motion(), ("mode", "visitor"), ("at", "15:00")),
        (("14:00", "inactivity", None, "warning"),),
    ),
    # -- no_exit_use: 48 h, info
    Case(
        "door unused 48 h",
        "no_exit_use",
        rule("no_exit_use"),
        (door(True), door(False), ("at", "09:00", 2)),
        (("08:00", "no_exit_use", "hallway", "info"),),
    ),
    Case(
        "door used every day: never",
        "no_exit_use",
        rule("no_exit_use"),
        tuple(s for d in range(4) for s in (("at", "09:00", min(d, 1)), door(True), door(False))),
        (),
    ),
    # -- morning_check: 05:00-10:00
    Case(
        "no one up by 10:00",
        "morning_check",
        rule("morning_check"),
        (("at", "11:00"),),
        (("10:00", "morning_check", None, "warning"),),
        start="04:00",
    ),
    Case(
        "kitchen at 06:30: fine, and again the next day",
        "morning_check",
        rule("morning_check"),
        (("at", "06:30"), motion(), ("at", "06:40", 1), motion(), ("at", "11:00")),
        (),
        start="04:00",
    ),
    Case(
        "only bedroom motion does not count",
        "morning_check",
        rule("morning_check"),
        (("at", "07:00"), motion("z2m-bedroom-motion"), ("at", "11:00")),
        (("10:00", "morning_check", None, "warning"),),
        start="04:00",
    ),
    Case(
        "activity before 05:00 does not count; later activity resolves",
        "morning_check",
        rule("morning_check"),
        (("at", "04:30"), motion(), ("at", "10:30"), motion()),
        (("10:00", "morning_check", None, "warning"),),
        start="04:00",
        state="resolved",
    ),
    # -- bathroom_too_long: 20 min at night, 45 by day, critical +10
    Case(
        "night: warning at 20 min, critical at 30",
        "bathroom_too_long",
        rule("bathroom_too_long"),
        (("at", "23:00"), *bath_enter(), ("at", "23:40")),
        (("23:20", "bathroom_too_long", "bathroom", "warning"), ("23:30", "bathroom_too_long", "bathroom", "critical")),
    ),
    Case(
        "across midnight",
        "bathroom_too_long",
        rule("bathroom_too_long"),
        (("at", "23:50"), *bath_enter(), ("at", "00:15", 1)),
        (("00:10", "bathroom_too_long", "bathroom", "warning"),),
    ),
    Case(
        "by day: 45 min",
        "bathroom_too_long",
        rule("bathroom_too_long"),
        (("at", "14:00"), *bath_enter(), ("at", "14:50")),
        (("14:45", "bathroom_too_long", "bathroom", "warning"),),
    ),
    Case(
        "out after 10 min: never",
        "bathroom_too_long",
        rule("bathroom_too_long"),
        (("at", "23:00"), *bath_enter(), ("wait", 10 * M), door(True, "z2m-bath-door"), ("at", "23:59")),
        (),
    ),
    Case(
        "door opens after the warning: resolved",
        "bathroom_too_long",
        rule("bathroom_too_long"),
        (("at", "23:00"), *bath_enter(), ("at", "23:25"), door(True, "z2m-bath-door"), ("at", "23:59")),
        (("23:20", "bathroom_too_long", "bathroom", "warning"),),
        state="resolved",
    ),
    # -- night_out_of_bed: 22:00-06:30, 45 min
    Case(
        "up at 01:00, not back",
        "night_out_of_bed",
        rule("night_out_of_bed"),
        (
            ("at", "22:30"),
            ("set", "z2m-bed", {"occupancy": True}),
            ("at", "01:00", 1),
            ("set", "z2m-bed", {"occupancy": False}),
            ("at", "03:00", 1),
        ),
        (("01:45", "night_out_of_bed", "bedroom", "warning"),),
    ),
    Case(
        "back in bed after 20 min: never",
        "night_out_of_bed",
        rule("night_out_of_bed"),
        (
            ("at", "22:30"),
            ("set", "z2m-bed", {"occupancy": True}),
            ("at", "01:00", 1),
            ("set", "z2m-bed", {"occupancy": False}),
            ("wait", 20 * M),
            ("set", "z2m-bed", {"occupancy": True}),
            ("at", "05:00", 1),
        ),
        (),
    ),
    Case(
        "getting up at 06:00 is morning: never",
        "night_out_of_bed",
        rule("night_out_of_bed"),
        (
            ("at", "22:30"),
            ("set", "z2m-bed", {"occupancy": True}),
            ("at", "06:00", 1),
            ("set", "z2m-bed", {"occupancy": False}),
            ("at", "09:00", 1),
        ),
        (),
    ),
    # -- night_exit: 22:00-06:00
    Case(
        "door at 02:00, nobody back: warning then critical; hallway light on",
        "night_exit",
        rule("night_exit"),
        (("at", "02:00", 1), door(True), ("wait", 30), door(False), ("wait", 10 * M)),
        (("02:00", "night_exit", "hallway", "warning"), ("02:05", "night_exit", "hallway", "critical")),
        acts=(("shelly-hall-light", {"switch": True}),),
    ),
    Case(
        "door at 23:30 and back inside: resolved",
        "night_exit",
        rule("night_exit"),
        (
            ("at", "23:30"),
            door(True),
            ("wait", 30),
            door(False),
            ("wait", 2 * M),
            motion("z2m-hall-motion"),
            ("wait", 10 * M),
        ),
        (("23:30", "night_exit", "hallway", "warning"),),
        state="resolved",
    ),
    Case(
        "door at 21:00 or 06:30: never",
        "night_exit",
        rule("night_exit"),
        (("at", "21:00"), door(True), door(False), ("at", "06:30", 1), door(True), door(False), ("at", "08:00", 1)),
        (),
    ),
    # -- door_left_open: 5 min (2 at night) info, warning 10 min later
    Case(
        "open 20 min by day: info then warning",
        "door_left_open",
        rule("door_left_open"),
        (("at", "10:00"), door(True), ("at", "10:20")),
        (("10:05", "door_left_open", "hallway", "info"), ("10:15", "door_left_open", "hallway", "warning")),
    ),
    Case(
        "open 3 min at night: info at 2",
        "door_left_open",
        rule("door_left_open"),
        (("at", "23:00"), door(True), ("wait", 3 * M), door(False), ("at", "23:30")),
        (("23:02", "door_left_open", "hallway", "info"),),
        state="resolved",
    ),
    Case(
        "closed within 4 min by day: never",
        "door_left_open",
        rule("door_left_open"),
        (("at", "10:00"), door(True), ("wait", 4 * M), door(False), ("at", "11:00")),
        (),
    ),
    # -- night_path_light: actions only
    Case(
        "bedroom motion in the dark at 02:00: path lights on, off 2 min after",
        "night_path_light",
        rule("night_path_light"),
        (
            ("set", "z2m-bedroom-motion", {"illuminance": 3}),
            ("at", "02:00", 1),
            motion("z2m-bedroom-motion"),
            ("wait", 5 * M),
        ),
        (),
        acts=(
            ("z2m-bath-light", {"light": {"on": True, "brightness": 40, "color_temp": 2700}}),
            ("z2m-path-light", {"light": {"on": True, "brightness": 20, "color_temp": 2700}}),
            ("z2m-bath-light", {"light": {"on": False}}),
            ("z2m-path-light", {"light": {"on": False}}),
        ),
    ),
    Case(
        "bright bedroom or daytime: no light",
        "night_path_light",
        rule("night_path_light"),
        (
            ("set", "z2m-bedroom-motion", {"illuminance": 80}),
            ("at", "02:00", 1),
            motion("z2m-bedroom-motion"),
            ("set", "z2m-bedroom-motion", {"illuminance": 3}),
            ("at", "14:00", 1),
            motion("z2m-bedroom-motion"),
        ),
        (),
        acts=(),
    ),
    Case(
        "a light a person switched on is never touched",
        "night_path_light",
        rule("night_path_light"),
        (
            ("set", "z2m-path-light", {"light": {"on": True, "brightness": 100}}),
            ("at", "02:00", 1),
            motion("z2m-bedroom-motion"),
            ("wait", 5 * M),
        ),
        (),
        acts=(
            ("z2m-bath-light", {"light": {"on": True, "brightness": 40, "color_temp": 2700}}),
            ("z2m-bath-light", {"light": {"on": False}}),
        ),
    ),
    Case(
        "never dark while the bathroom is in use",
        "night_path_light",
        rule("night_path_light"),
        (
            ("at", "02:00", 1),
            motion("z2m-bedroom-motion"),
            ("wait", 90),
            motion("z2m-bath-motion"),
            ("wait", 90),
            motion("z2m-bath-motion"),
            ("wait", 100),
        ),
        (),
        acts=(
            ("z2m-bath-light", {"light": {"on": True, "brightness": 40, "color_temp": 2700}}),
            ("z2m-path-light", {"light": {"on": True, "brightness": 20, "color_temp": 2700}}),
        ),
    ),
    # -- appliance_left_on: > 100 W 60 min, 30 min when the kitchen is empty 15 min
    Case(
        "cooktop on, kitchen empty: 30 min",
        "appliance_left_on",
        rule("appliance_left_on"),
        (("at", "12:00"), motion(), ("set", "tasmota-cooktop", {"power": 1500}), ("at", "12:40")),
        (("12:30", "appliance_left_on", "kitchen", "warning"),),
    ),
    Case(
        "cooktop on, someone cooking: 60 min",
        "appliance_left_on",
        rule("appliance_left_on"),
        (
            ("at", "12:00"),
            ("set", "tasmota-cooktop", {"power": 1500}),
            *(s for m in range(0, 60, 10) for s in (("at", f"12:{m:02d}"), motion())),
            ("at", "13:05"),
        ),
        (("13:00", "appliance_left_on", "kitchen", "warning"),),
    ),
    Case(
        "switched off after 20 min: never",
        "appliance_left_on",
        rule("appliance_left_on"),
        (
            ("at", "12:00"),
            ("set", "tasmota-cooktop", {"power": 1500}),
            ("wait", 20 * M),
            ("set", "tasmota-cooktop", {"power": 0}),
            ("at", "14:00"),
        ),
        (),
    ),
    Case(
        "cut-off 15 min after the alert, then off resolves",
        "appliance_left_on",
        rule("appliance_left_on", "cut_off: true"),
        (
            ("at", "12:00"),
            ("set", "tasmota-cooktop", {"power": 1500}),
            ("at", "13:16"),
            ("set", "tasmota-cooktop", {"power": 0}),
        ),
        (("12:30", "appliance_left_on", "kitchen", "warning"),),
        state="resolved",
        acts=(("tasmota-cooktop", {"switch": False}),),
    ),
    # -- medication: 08:00-10:00 window + 30 min
    Case(
        "pillbox not opened: warning at 10:30",
        "medication",
        rule("medication"),
        (("at", "11:00"),),
        (("10:30", "medication", "living-room", "warning"),),
        start="07:00",
    ),
    Case(
        "opened at 08:40: never",
        "medication",
        rule("medication"),
        (("at", "08:40"), door(True, "z2m-pillbox"), door(False, "z2m-pillbox"), ("at", "12:00")),
        (),
        start="07:00",
    ),
    Case(
        "opened three times: double-dose info",
        "medication",
        rule("medication"),
        tuple(
            s
            for m in ("08:10", "08:20", "08:30")
            for s in (("at", m), door(True, "z2m-pillbox"), door(False, "z2m-pillbox"))
        ),
        (("08:30", "medication", "living-room", "info"),),
        start="07:00",
    ),
    Case(
        "an evening dose across midnight",
        "medication",
        rule("medication", 'doses: ["22:00-01:00"]'),
        (("at", "02:00", 1),),
        (("01:30", "medication", "living-room", "warning"),),
        start="07:00",
    ),
    # -- fridge_unused: none by 13:00 (info), none for 24 h (warning)
    Case(
        "fridge unused: info at 13:00, warning after 24 h",
        "fridge_unused",
        rule("fridge_unused"),
        (("at", "09:00", 1),),
        (("13:00", "fridge_unused", "kitchen", "info"), ("08:00", "fridge_unused", "kitchen", "warning")),
    ),
    Case(
        "fridge opened each morning: never",
        "fridge_unused",
        rule("fridge_unused"),
        tuple(
            s
            for d in range(3)
            for s in (
                ("at", ("08:30", "07:30", "07:00")[d], min(d, 1)),
                door(True, "z2m-fridge"),
                door(False, "z2m-fridge"),
            )
        ),
        (),
    ),
    # -- room_temperature
    Case(
        "31 °C for an hour by day",
        "room_temperature",
        rule("room_temperature"),
        (
            ("set", "ha-kitchen-climate", {"humidity": 40}),
            ("at", "12:00"),
            ("set", "ha-kitchen-climate", {"temperature": 31.0}),
            ("at", "13:30"),
        ),
        (("13:00", "room_temperature", "kitchen", "warning"),),
    ),
    Case(
        "29 °C at night, across midnight",
        "room_temperature",
        rule("room_temperature"),
        (("at", "23:30"), ("set", "ha-kitchen-climate", {"temperature": 29.0}), ("at", "01:00", 1)),
        (("00:30", "room_temperature", "kitchen", "warning"),),
    ),
    Case(
        "36 °C: critical at once",
        "room_temperature",
        rule("room_temperature"),
        (("at", "12:00"), ("set", "ha-kitchen-climate", {"temperature": 36.0}), ("wait", M)),
        (("12:00", "room_temperature", "kitchen", "critical"),),
    ),
    Case(
        "hysteresis: 30.5 then 29.5 still counts; 28.9 resolves",
        "room_temperature",
        rule("room_temperature"),
        (
            ("at", "12:00"),
            ("set", "ha-kitchen-climate", {"temperature": 30.5}),
            ("wait", 20 * M),
            ("set", "ha-kitchen-climate", {"temperature": 29.5}),
            ("at", "13:10"),
            ("set", "ha-kitchen-climate", {"temperature": 28.9}),
            ("at", "15:00"),
        ),
        (("13:00", "room_temperature", "kitchen", "warning"),),
        state="resolved",
    ),
    Case(
        "17 °C for 2 h: cold warning",
        "room_temperature",
        rule("room_temperature"),
        (("at", "12:00"), ("set", "ha-kitchen-climate", {"temperature": 17.0}), ("at", "14:30")),
        (("14:00", "room_temperature", "kitchen", "warning"),),
    ),
    Case(
        "29.9 °C by day: never",
        "room_temperature",
        rule("room_temperature"),
        (("at", "12:00"), ("set", "ha-kitchen-climate", {"temperature": 29.9}), ("at", "21:00")),
        (),
    ),
    # -- smoke_gas_co: critical, "I'm OK" window, all lights on
    Case(
        "smoke: critical, every light on",
        "smoke_gas_co",
        rule("smoke_gas_co"),
        (
            ("at", "03:00", 1),
            ("set", "ha-smoke", {"smoke": True}),
            ("wait", 5 * M),
            ("set", "ha-smoke", {"smoke": False}),
        ),
        (("03:00", "smoke_gas_co", "kitchen", "critical"),),
        state="raised",
        acts=(
            ("z2m-bath-light", {"light": {"on": True, "brightness": 100}}),
            ("shelly-hall-light", {"switch": True}),
            ("z2m-path-light", {"light": {"on": True, "brightness": 100}}),
        ),
    ),
    Case(
        "smoke cleared, acknowledged: resolved",
        "smoke_gas_co",
        rule("smoke_gas_co"),
        (
            ("set", "ha-smoke", {"smoke": True}),
            ("wait", 5 * M),
            ("set", "ha-smoke", {"smoke": False}),
            ("ack", "smoke_gas_co"),
        ),
        (("08:00", "smoke_gas_co", "kitchen", "critical"),),
        state="resolved",
    ),
    # -- water_leak: warning, critical after 10 min, valve closed
    Case(
        "leak: warning, valve closed, critical after 10 min",
        "water_leak",
        rule("water_leak"),
        (("at", "10:00"), ("set", "z2m-leak", {"water_leak": True}), ("at", "10:30")),
        (("10:00", "water_leak", "bathroom", "warning"), ("10:10", "water_leak", "bathroom", "critical")),
        acts=(("z2m-valve", {"valve": False}),),
    ),
    Case(
        "dry within 5 min: resolved",
        "water_leak",
        rule("water_leak"),
        (
            ("at", "10:00"),
            ("set", "z2m-leak", {"water_leak": True}),
            ("wait", 5 * M),
            ("set", "z2m-leak", {"water_leak": False}),
            ("at", "11:00"),
        ),
        (("10:00", "water_leak", "bathroom", "warning"),),
        state="resolved",
    ),
    # -- sos: critical at once; a long press within 60 s cancels
    Case(
        "SOS pressed: critical at once",
        "sos",
        rule("sos"),
        (("at", "03:00", 1), ("press", "z2m-sos", "action", "single")),
        (("03:00", "sos", "bedroom", "critical"),),
        state="raised",
    ),
    Case(
        "long press within 60 s cancels",
        "sos",
        rule("sos"),
        (("press", "z2m-sos", "action", "single"), ("wait", 30), ("press", "z2m-sos", "action", "long")),
        (("08:00", "sos", "bedroom", "critical"),),
        state="cancelled_by_resident",
    ),
    Case(
        "long press after 60 s does not cancel",
        "sos",
        rule("sos"),
        (("press", "z2m-sos", "action", "single"), ("wait", 90), ("press", "z2m-sos", "action", "long")),
        (("08:00", "sos", "bedroom", "critical"),),
        state="raised",
    ),
    # -- fall: suspected, critical after 60 s unless the resident answers; learning period
    Case(
        "fall: suspected, then critical",
        "fall",
        rule("fall"),
        (("at", "15:00"), ("set", "homie-radar", {"fall": True}), ("wait", 5 * M)),
        (("15:00", "fall", "living-room", "warning"), ("15:01", "fall", "living-room", "critical")),
    ),
    Case(
        "the resident answers within 60 s: cancelled",
        "fall",
        rule("fall"),
        (
            ("at", "15:00"),
            ("set", "homie-radar", {"fall": True}),
            ("wait", 30),
            ("ack", "fall", "resident"),
            ("wait", 5 * M),
        ),
        (("15:00", "fall", "living-room", "warning"),),
        state="cancelled_by_resident",
    ),
    Case(
        "learning period: logged only",
        "fall",
        rule("fall", "installed: 2026-02-25"),
        (("set", "homie-radar", {"fall": True}), ("wait", 5 * M)),
        (("08:00", "fall", "living-room", "info"),),
    ),
    # -- device_health
    Case(
        "a rule's sensor offline, back online: resolved",
        "device_health",
        rule("sos") + rule("device_health"),
        (("at", "10:00"), ("down", "z2m-sos"), ("at", "11:00"), ("up", "z2m-sos")),
        (("10:00", "device_health", "bedroom", "warning"),),
        state="resolved",
    ),
    Case(
        "an SOS button silent 24 h: stale",
        "device_health",
        rule("sos") + rule("device_health"),
        (("press", "z2m-sos", "action", "single"), ("at", "09:00", 1)),
        (("08:00", "device_health", "bedroom", "warning"),),
    ),
    Case(
        "a motion sensor silent 6 daytime hours (counted from 07:00)",
        "device_health",
        rule("inactivity") + rule("device_health"),
        (("at", "20:00"), motion(), ("at", "14:00", 1)),
        (("13:00", "device_health", "kitchen", "warning"),),
    ),
    Case("a device no rule reads: never", "device_health", rule("sos"), (("down", "z2m-fridge"), ("at", "12:00")), ()),
]


def ids(cases: list[Case]) -> list[str]:
    return [f"{c.kind}: {c.name}" for c in cases]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
async def test_rule_scenario(case: Case) -> None:
    home = await play(case)
    assert home.fired(case.kind) == list(case.expect)
    if case.state is not None:
        assert home.state(case.kind) == case.state
    if case.acts is not None:
        assert home.actions() == list(case.acts)
    assert not any(k.startswith("rule_error") for k in home.engine.counters), home.engine.counters


# Which modes silence each kind (RULES.md "House modes"): safety rules never; temperature becomes info while away.
MUTED: dict[str, set[str]] = {
    "inactivity": {"away", "visitor", "sleep", "vacation"},
    "no_exit_use": {"away", "visitor", "vacation"},
    "morning_check": {"away", "vacation"},
    "bathroom_too_long": {"away", "vacation"},
    "night_out_of_bed": {"away", "vacation"},
    "night_exit": {"vacation"},
    "door_left_open": set(),
    "night_path_light": {"away", "vacation"},
    "appliance_left_on": set(),
    "medication": {"away", "vacation"},
    "fridge_unused": {"away", "visitor", "vacation"},
    "room_temperature": set(),
    "smoke_gas_co": set(),
    "water_leak": set(),
    "sos": set(),
    "fall": set(),
    "device_health": set(),
}
INFO_IN: dict[str, set[str]] = {"room_temperature": {"away", "vacation"}}
FIRST = {c.kind: c for c in reversed(CASES)}  # the first case of each kind fires (or acts)
MODES: tuple[HouseMode, ...] = ("home", "away", "visitor", "sleep", "vacation")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(MUTED))
async def test_modes_mute_the_right_rules_and_never_safety(kind: str, mode: HouseMode) -> None:
    case = FIRST[kind]
    home = await play(case, mode)
    fired = home.fired(kind) or home.actions()
    if mode in MUTED[kind]:
        assert not fired, f"{kind} should be muted in {mode}"
    else:
        assert fired, f"{kind} must not be muted in {mode}"
        if mode in INFO_IN.get(kind, set()):
            assert {f[3] for f in home.fired(kind)} == {"info"}


async def test_routine_change_learns_two_weeks_then_flags_a_long_silence() -> None:
    home = Home.build(rule("routine_change"), start=MONDAY.replace(hour=7))
    slots = [f"{7 + n // 2:02d}:{30 * (n % 2):02d}" for n in range(31)]  # 07:00 … 22:00, every 30 min
    for _day in range(15):  # two weeks and a day of a steady routine
        for hhmm in slots:
            await home.at(hhmm)  # rolls over to the next morning by itself
            home.set("z2m-kitchen-motion", motion=True)
            home.set("z2m-kitchen-motion", motion=False)
    for hhmm in slots[:7]:  # the 16th day starts as usual, until 10:00
        await home.at(hhmm)
        home.set("z2m-kitchen-motion", motion=True)
        home.set("z2m-kitchen-motion", motion=False)
    assert home.fired("routine_change") == []  # nothing while learning, nothing for the routine itself
    await home.at("13:30")  # then silence: 30 min is usual here, the floor is 2 h
    assert home.fired("routine_change") == [("12:00", "routine_change", None, "info")]


async def test_generic_rule_when_for_if_then_alert_and_set() -> None:
    rules = (
        "  - kind: generic\n    id: kitchen-hot\n"
        "    when: {room: kitchen, kind: temperature, above: 40, for: 5m}\n"
        "    then: {alert: {severity: warning, message: {en: Kitchen over 40, zh-CN: 厨房超过 40 度}}}\n"
        "  - kind: generic\n    id: night-door-light\n"
        "    when: {role: exit_door, is: true}\n"
        "    if: {window: '22:00-06:00', modes: [home, sleep]}\n"
        "    then: {set: [{role: hallway_light, kind: switch, value: true}]}\n"
    )
    home = Home.build(rules)
    home.set("ha-kitchen-climate", temperature=41.0)
    await home.wait(4 * M)
    home.set("ha-kitchen-climate", temperature=39.0)  # dropped before 5 min: nothing
    await home.wait(10 * M)
    home.set("ha-kitchen-climate", temperature=42.0)
    await home.wait(6 * M)
    assert home.fired("generic") == [("08:19", "generic", "kitchen", "warning")]
    assert home.raised[-1].message == {"en": "Kitchen over 40", "zh-CN": "厨房超过 40 度"}
    home.set("ha-kitchen-climate", temperature=30.0)
    assert home.state("generic") != "raised" or home.engine.book.find("kitchen-hot", "kitchen") is None
    home.set("z2m-front-door", contact=True)  # by day: the light stays as it is
    home.set("z2m-front-door", contact=False)
    await home.at("23:00")
    home.set("z2m-front-door", contact=True)
    assert home.actions() == [("shelly-hall-light", {"switch": True})]


def test_rules_are_data_unknown_keys_and_kinds_rejected() -> None:
    config = home_config(
        "  - kind: inactivity\n    after: 3h\n    aftr: 2h\n  - kind: telepathy\n"
        "  - kind: generic\n    when: {kind: motion}\n    then: {}\n  - kind: bathroom_too_long\n    room: bathrom\n"
    )
    _, problems = check_rules(config)
    messages = [m for _, m, _ in problems]
    assert any("unknown key 'aftr'" in m and "did you mean 'after'" in m for m in messages)
    assert any("unknown rule kind 'telepathy'" in m for m in messages)
    assert any("needs 'set' or 'alert'" in m for m in messages)
    assert any("unknown room 'bathrom'" in m and "did you mean 'bathroom'" in m for m in messages)
    with pytest.raises(RuleError):
        Home.build("  - kind: inactivity\n    window: 25:00-07:00\n")


def test_hub_check_locates_rule_mistakes(tmp_path: Any) -> None:
    from hub.config import load_config
    from hub.rules.spec import config_problems

    path = tmp_path / "devices.yaml"
    path.write_text(
        "home: {id: h, name: H}\nrooms: [{id: bathroom, name: B}]\nrules:\n"
        "  - kind: inactivity\n  - kind: bathroom_too_long\n    night_limit: 20x\n    nite: 22:00-07:00\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, checks=[config_problems])
    where = [(p.line, p.column) for p in err.value.problems]
    assert where == [(6, 18), (7, 5)]
    assert "night_limit" in err.value.problems[0].message
    assert "'nite'" in err.value.problems[1].message


async def test_snooze_and_disable_but_never_for_safety_rules() -> None:
    from hub.rules.engine import RuleRefused

    home = Home.build(rule("inactivity") + rule("sos"))
    home.engine.set_rule("inactivity", None, 60)
    with pytest.raises(RuleRefused):
        home.engine.set_rule("sos", False, None)
    with pytest.raises(RuleRefused):
        home.engine.set_rule("sos", None, 30)
    home.set("z2m-kitchen-motion", motion=True)
    await home.at("08:59")
    home.set("z2m-kitchen-motion", motion=False)  # not activity: the countdown runs from 08:00
    await home.at("12:00")
    # Snoozed until 09:00 does not silence a 10:00 countdown; disabled does.
    assert home.fired("inactivity") == [("10:00", "inactivity", None, "warning")]
    home.engine.set_rule("inactivity", False, None)
    home.set("z2m-kitchen-motion", motion=True)
    await home.at("18:00")
    assert home.fired("inactivity") == [("10:00", "inactivity", None, "warning")]
    assert home.engine.rule_view(home.engine.rules["inactivity"]).state == "disabled"


async def test_one_alert_per_rule_and_room_and_the_rate_limit() -> None:
    home = Home.build(rule("door_left_open", "after: 1m\nnight_after: 1m\nwarning_after: 60m"))
    for _ in range(3):
        home.set("z2m-front-door", contact=True)
        await home.wait(2 * M)
        home.set("z2m-front-door", contact=False)
        await home.wait(2 * M)
    # Three openings within 30 min: one alert, later ones rate-limited.
    assert home.fired("door_left_open") == [("08:01", "door_left_open", "hallway", "info")]
    assert home.engine.book.counters["rate_limited"] == 2
    await home.at("09:00")
    home.set("z2m-front-door", contact=True)
    await home.wait(2 * M)
    assert len(home.fired("door_left_open")) == 2


def test_rules_follow_each_device_change_without_recomputing_for_devices_they_cannot_see() -> None:
    home = Home.build("  - kind: morning_check\n")
    home.registry.auto_adopt = True
    rule = home.engine.rules["morning_check"]

    def discover(d: Dev) -> None:
        home.registry.apply(DeviceDiscovered(ts=home.clock.now(), device=device(d)))

    def watched() -> set[str]:
        # What the rule derives (its cached inputs) and where the engine routes values (used devices) agree.
        mine = {i.device_id for _, i in rule.my_inputs()}
        assert mine == home.engine.used_devices()
        return mine

    version = home.engine.version
    # A thermometer feeds no rule and has no role: the rules' views stay as they are, inputs grow.
    discover(Dev("z2m-thermo", "hallway", {"temperature": Kind.TEMPERATURE}))
    assert home.engine.version == version
    assert "z2m-thermo" in {i.device_id for i in home.engine.inputs()}
    # Motion in the living room is activity outside the bedroom: morning_check takes it.
    discover(Dev("z2m-sofa-motion", "living-room", {"motion": Kind.MOTION}))
    assert "z2m-sofa-motion" in watched()
    # A bed makes the living room a bedroom: its motion no longer counts, though that device did not change.
    discover(Dev("z2m-sofa-bed", "living-room", {"occupancy": Kind.OCCUPANCY}, "bed"))
    assert "z2m-sofa-motion" not in watched()
    home.registry.apply(DeviceRemoved(ts=home.clock.now(), device_id="z2m-sofa-bed", reason="gone"))
    assert "z2m-sofa-motion" in watched()
