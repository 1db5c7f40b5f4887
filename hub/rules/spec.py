"""Rules as data: one pydantic model per rule kind (a union discriminated on `kind`), with RULES.md defaults.

Every model refuses unknown keys; nothing in a rule is evaluated as code or filled in as a template.
`check_rules` turns the `rules:` list of devices.yaml into models, or into located problems that
`hub check` prints as FILE:LINE:COL like every other mistake in the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import date, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hub.api import HouseMode, Language, Severity
from hub.config import Config, Role
from hub.model import Kind, Scalar, Value
from hub.rules.timeutil import Duration, TimeOfDay, Window, WindowField

Loc = tuple[str | int, ...]
# A problem in the rules: where (below the config's root), what, and whether it points at a key.
RuleProblem = tuple[Loc, str, bool]

_MIN = timedelta(minutes=1)


def _w(text: str) -> Window:
    return Window.parse(text)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)


class RuleBase(_Spec):
    """What every rule has: an id, a switch, and optional limits on which devices feed it."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] | None = Field(
        None, description="Unique id (default: the kind, or kind-room); used in topics rules/<id>."
    )
    enabled: bool = True
    room: str | None = Field(None, description="Only devices in this room feed the rule.")
    devices: tuple[str, ...] = Field((), description="Only these device ids feed the rule (default: by kind/role).")

    @property
    def rule_id(self) -> str:
        """The rule's id: given, or derived from its kind and room."""
        kind = str(getattr(self, "kind", "rule"))
        return self.id or (f"{kind}-{self.room}" if self.room else kind)


class Inactivity(RuleBase):
    """No activity in the home for too long in the daytime, while the house is in `home` mode."""

    kind: Literal["inactivity"]
    window: WindowField = _w("07:00-22:00")
    after: Duration = timedelta(minutes=240)
    after_with_presence: Duration = Field(
        timedelta(minutes=120), description="Used where presence or chair sensors exist."
    )
    away_after: Duration = Field(
        timedelta(minutes=10), description="Exit door cycle then no indoor motion this long: away."
    )
    resident_first: Duration = 2 * _MIN


class NoExitUse(RuleBase):
    """The exit door has not been used for a long time."""

    kind: Literal["no_exit_use"]
    after: Duration = timedelta(hours=48)


class MorningCheck(RuleBase):
    """No sign of getting up by the morning deadline."""

    kind: Literal["morning_check"]
    start: TimeOfDay = time(5)
    deadline: TimeOfDay = time(10)
    resident_first: Duration = 2 * _MIN


class BathroomTooLong(RuleBase):
    """Someone has been in the bathroom too long."""

    kind: Literal["bathroom_too_long"]
    night: WindowField = _w("22:00-07:00")
    night_limit: Duration = 20 * _MIN
    day_limit: Duration = 45 * _MIN
    critical_after: Duration = Field(10 * _MIN, description="Critical this long after the limit.")
    resident_first: Duration = 1 * _MIN


class NightOutOfBed(RuleBase):
    """Out of bed too long at night."""

    kind: Literal["night_out_of_bed"]
    window: WindowField = _w("22:00-06:30")
    after: Duration = 45 * _MIN
    resident_first: Duration = 1 * _MIN


class NightExit(RuleBase):
    """The exit door opened at night; critical if no one is back inside soon after it closes."""

    kind: Literal["night_exit"]
    window: WindowField = _w("22:00-06:00")
    no_return: Duration = 5 * _MIN
    hallway_light: bool = True


class DoorLeftOpen(RuleBase):
    """The exit door is left open."""

    kind: Literal["door_left_open"]
    after: Duration = 5 * _MIN
    night_after: Duration = 2 * _MIN
    night: WindowField = _w("22:00-07:00")
    warning_after: Duration = Field(10 * _MIN, description="Warning this long after the first info.")


class NightPathLight(RuleBase):
    """Light the way to the bathroom at night; never touch a light a person switched."""

    kind: Literal["night_path_light"]
    window: WindowField = _w("22:00-06:30")
    lux_below: float = 10
    brightness: int = Field(20, ge=1, le=100)
    bathroom_brightness: int = Field(40, ge=1, le=100)
    color_temp: int = Field(2700, ge=1000, le=10000)
    off_after: Duration = 2 * _MIN


class ApplianceLeftOn(RuleBase):
    """A cooktop, kettle, heater or iron left on."""

    kind: Literal["appliance_left_on"]
    roles: tuple[Role, ...] = (Role.COOKTOP, Role.KETTLE, Role.HEATER, Role.IRON)
    watts: float = 100
    after: Duration = 60 * _MIN
    empty_after: Duration = Field(30 * _MIN, description="Used when the room has been empty empty_for.")
    empty_for: Duration = 15 * _MIN
    remind_every: Duration = 15 * _MIN
    cut_off: bool = Field(False, description="Switch the plug off cut_off_after the alert (electric only).")
    cut_off_after: Duration = 15 * _MIN
    never_cut: tuple[str, ...] = Field((), description="Device ids never to switch off (gas appliances).")


class Medication(RuleBase):
    """The pillbox was not opened in a dose window, or opened too often."""

    kind: Literal["medication"]
    doses: tuple[WindowField, ...] = (_w("08:00-10:00"),)
    grace: Duration = 30 * _MIN
    remind_every: Duration = 15 * _MIN
    reminders: int = Field(4, ge=0, le=20)
    double_dose_opens: int = Field(3, ge=2, le=20)


class FridgeUnused(RuleBase):
    """The fridge (or kitchen plugs) not used."""

    kind: Literal["fridge_unused"]
    by: TimeOfDay = time(13)
    after: Duration = timedelta(hours=24)


class RoomTemperature(RuleBase):
    """Too hot or too cold in a room (heat index when humidity is known)."""

    kind: Literal["room_temperature"]
    night: WindowField = _w("22:00-07:00")
    heat_day: float = 30
    heat_night: float = 28
    heat_for: Duration = 60 * _MIN
    hot: float = 32
    hot_for: Duration = 30 * _MIN
    extreme: float = 35
    cold: float = 18
    cold_for: Duration = timedelta(hours=2)
    very_cold: float = 16
    very_cold_for: Duration = timedelta(hours=1)
    hysteresis: float = Field(1.0, ge=0, le=5)


class SmokeGasCo(RuleBase):
    """Smoke, gas or carbon monoxide alarm."""

    kind: Literal["smoke_gas_co"]
    resident_first: Duration = 2 * _MIN
    lights_on: bool = True


class WaterLeak(RuleBase):
    """Water on the floor."""

    kind: Literal["water_leak"]
    critical_after: Duration = 10 * _MIN
    close_valve: bool = True


class Sos(RuleBase):
    """The SOS button was pressed."""

    kind: Literal["sos"]
    cancel_within: Duration = timedelta(seconds=60)


class Fall(RuleBase):
    """A fall reported by a radar or a wearable."""

    kind: Literal["fall"]
    critical_after: Duration = timedelta(seconds=60)
    installed: date | None = Field(None, description="Install date: the first learning_days only log falls.")
    learning_days: int = Field(14, ge=0, le=365)


class DeviceHealth(RuleBase):
    """A device a rule needs is offline, silent past its interval, or low on battery."""

    kind: Literal["device_health"]
    safety_interval: Duration = timedelta(hours=24)
    motion_interval: Duration = timedelta(hours=6)
    motion_window: WindowField = _w("07:00-22:00")


class RoutineChange(RuleBase):
    """Today's silence is far longer than usual for this hour of the week."""

    kind: Literal["routine_change"]
    min_days: int = Field(14, ge=1, le=365)
    floor: Duration = timedelta(hours=2)
    factor: float = Field(1.5, gt=1, le=10)
    percentile: float = Field(95, gt=50, le=100)


class Match(_Spec):
    """Which points: by device id, point key, kind, room and role (all given must hold)."""

    device: str | None = None
    point: str | None = None
    kind: Kind | None = None
    room: str | None = None
    role: Role | None = None


class Condition(Match):
    """A point's value: equal to `is`, above, or below a number."""

    is_: Scalar = Field(None, alias="is")
    above: float | None = None
    below: float | None = None


class When(Condition):
    """What starts a generic rule: a matching point changes (to a value), or stays so for a while."""

    for_: Duration | None = Field(None, alias="for")


class If(_Spec):
    """Further conditions checked when a generic rule would act."""

    window: WindowField | None = None
    modes: tuple[HouseMode, ...] = ()
    points: tuple[Condition, ...] = ()


class SetPoint(Match):
    """Set a point on every matching device (adopted devices only)."""

    value: Value


class AlertAction(_Spec):
    """Raise an alert with fixed words (no templates)."""

    severity: Severity = "warning"
    message: dict[Language, str] = Field(min_length=1)
    advice: dict[Language, str] = Field(default_factory=dict)
    resident_first: Duration | None = None


class Then(_Spec):
    """What a generic rule does."""

    set: tuple[SetPoint, ...] = ()
    alert: AlertAction | None = None


class Generic(RuleBase):
    """When a point changes or stays for a while, if conditions hold, then set points or raise an alert."""

    kind: Literal["generic"]
    when: When
    if_: If = Field(default_factory=If, alias="if")
    then: Then


RuleSpec = Annotated[
    Inactivity
    | NoExitUse
    | MorningCheck
    | BathroomTooLong
    | NightOutOfBed
    | NightExit
    | DoorLeftOpen
    | NightPathLight
    | ApplianceLeftOn
    | Medication
    | FridgeUnused
    | RoomTemperature
    | SmokeGasCo
    | WaterLeak
    | Sos
    | Fall
    | DeviceHealth
    | RoutineChange
    | Generic,
    Field(discriminator="kind"),
]
RULE_ADAPTER: TypeAdapter[RuleSpec] = TypeAdapter(RuleSpec)
SPEC_CLASSES: dict[str, type[RuleBase]] = {
    cls.model_fields["kind"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in (
        Inactivity,
        NoExitUse,
        MorningCheck,
        BathroomTooLong,
        NightOutOfBed,
        NightExit,
        DoorLeftOpen,
        NightPathLight,
        ApplianceLeftOn,
        Medication,
        FridgeUnused,
        RoomTemperature,
        SmokeGasCo,
        WaterLeak,
        Sos,
        Fall,
        DeviceHealth,
        RoutineChange,
        Generic,
    )
}
KINDS: tuple[str, ...] = tuple(SPEC_CLASSES)


class RuleError(ValueError):
    """The rules of devices.yaml cannot be used; `problems` says where and why."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {m}" for loc, m, _ in problems))
        self.problems = problems


def _suggest(word: object, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _model_at(cls: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model a location inside a rule points into (for 'allowed keys' hints)."""
    current: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return None
        inner = field.annotation
        for candidate in (inner, *getattr(inner, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _keys(cls: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in cls.model_fields.items()]


def _problem(error: Any, spec_cls: type[BaseModel] | None, index: int) -> RuleProblem:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        return (
            ("rules", index, "kind"),
            f"unknown rule kind '{tag}'{_suggest(tag, KINDS) or ' —'} kinds: {', '.join(KINDS)}",
            False,
        )
    if kind == "union_tag_not_found":
        return (("rules", index), "rule without 'kind' (e.g. 'kind: inactivity')", False)
    inner = loc[1:]  # pydantic puts the union tag first
    where = ".".join(str(p) for p in inner) or "rule"
    if kind == "extra_forbidden" and spec_cls is not None:
        model = _model_at(spec_cls, inner[:-1])
        allowed = _keys(model) if model else []
        hint = _suggest(inner[-1], allowed) or " —"
        message = f"unknown key '{inner[-1]}' in the {loc[0]} rule{hint} allowed: {', '.join(allowed)}"
        return (("rules", index, *inner), message, True)
    if kind == "missing":
        return (("rules", index, *inner[:-1]), f"missing required key '{inner[-1]}' in the {loc[0]} rule", True)
    return (("rules", index, *inner), f"{where}: {error['msg'].removeprefix('Value error, ')}", False)


def check_rules(config: Config) -> tuple[list[RuleBase], list[RuleProblem]]:
    """Validate the rules of a loaded config: the models, and every problem found (located)."""
    specs: list[RuleBase] = []
    problems: list[RuleProblem] = []
    rooms = {r.id for r in config.rooms}
    seen: dict[str, int] = {}
    for index, raw in enumerate(config.rules):
        try:
            spec = RULE_ADAPTER.validate_python(raw)
        except ValidationError as err:
            spec_cls = SPEC_CLASSES.get(str(raw.get("kind")))
            problems += [_problem(e, spec_cls, index) for e in err.errors(include_url=False)]
            continue
        problems += _semantic(spec, index, rooms)
        rule_id = spec.rule_id
        if rule_id in seen:
            problems.append(
                (
                    ("rules", index),
                    f"duplicate rule id '{rule_id}' (also rules[{seen[rule_id]}]): give one of them an 'id'",
                    False,
                )
            )
        seen.setdefault(rule_id, index)
        specs.append(spec)
    return specs, problems


def _rooms_used(spec: RuleBase) -> Iterable[tuple[Loc, str | None]]:
    yield ("room",), spec.room
    if isinstance(spec, Generic):
        yield ("when", "room"), spec.when.room
        for i, c in enumerate(spec.if_.points):
            yield ("if", "points", i, "room"), c.room
        for i, s in enumerate(spec.then.set):
            yield ("then", "set", i, "room"), s.room


def _semantic(spec: RuleBase, index: int, rooms: set[str]) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    for loc, room in _rooms_used(spec):
        if room is not None and room not in rooms:
            known = ", ".join(sorted(rooms)) or "none"
            problems.append(
                (("rules", index, *loc), f"unknown room '{room}'{_suggest(room, rooms) or ' —'} rooms: {known}", False)
            )
    if isinstance(spec, Generic) and not spec.then.set and spec.then.alert is None:
        problems.append((("rules", index, "then"), "a generic rule needs 'set' or 'alert' under 'then'", False))
    if isinstance(spec, Generic):
        cond = spec.when
        if cond.above is not None and cond.below is not None and cond.above >= cond.below:
            problems.append((("rules", index, "when"), "'above' must be less than 'below'", False))
    return problems


def parse_rules(config: Config) -> list[RuleBase]:
    """The rules of a config as models; raise RuleError when any is wrong."""
    specs, problems = check_rules(config)
    if problems:
        raise RuleError(problems)
    return specs


def config_problems(config: Config) -> list[RuleProblem]:
    """The hook `hub check` gives the config loader: every problem in the rules, located."""
    return check_rules(config)[1]
