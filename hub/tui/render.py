"""Plain-language lines for every view, as Rich text styled from a palette (pure, no Textual)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from hub.api import AlertView, DeviceState, HouseMode, Language, ModeState, RuleView
from hub.model import KINDS, AvailabilityState, Device, Kind, Point, Value
from hub.signs import night_visits
from hub.tui.i18n import HELP_KEYS, pick, tr
from hub.tui.state import Home, activity_rooms, hour_counts
from hub.tui.themes import Palette

MODES: tuple[HouseMode, ...] = ("home", "away", "visitor", "sleep", "vacation")
# Modes that mute activity rules ask twice (RULES.md: away and vacation; a visitor mutes them too).
LOWERS_PROTECTION: frozenset[HouseMode] = frozenset({"away", "vacation", "visitor"})
SEVERITY_KEYS = {"critical": "sev.critical", "warning": "sev.warning", "info": "sev.info"}
AVAILABILITY_KEYS = {
    AvailabilityState.ONLINE: "avail.online",
    AvailabilityState.STALE: "avail.stale",
    AvailabilityState.OFFLINE: "avail.offline",
    AvailabilityState.UNKNOWN: "avail.unknown",
}
# Hour-strip marks by activity level; ASCII so that every terminal and screen reader has them.
LEVELS = ".:*#"


@dataclass(frozen=True)
class Ctx:
    """Everything a line needs besides its data: language, colours, time, names, layout."""

    lang: Language
    palette: Palette
    now: datetime
    tz: tzinfo
    large: bool = False
    rooms: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> (name, name_zh)
    people: dict[str, str] = field(default_factory=dict)  # caregiver id -> name
    device_names_zh: dict[str, str] = field(default_factory=dict)

    def t(self, key: str, **fields: object) -> str:
        """A text in this context's language."""
        return tr(self.lang, key, **fields)

    def style(self, colour_name: str, *, bold: bool = False) -> Style:
        """A text style in one of the palette's colours."""
        return Style(color=getattr(self.palette, colour_name), bold=bold)

    def room(self, room: str | None) -> str:
        """A room's name in this language (its id when unknown)."""
        if room is None:
            return self.t("no.room")
        name, zh = self.rooms.get(room, (room, None))
        return (zh or name) if self.lang == "zh-CN" else name

    def device_name(self, device: Device) -> str:
        """A device's name in this language."""
        return self.device_names_zh.get(device.id, device.name) if self.lang == "zh-CN" else device.name

    def clock(self, moment: datetime) -> str:
        """A moment as local HH:MM, with the day when it is not today."""
        local = moment.astimezone(self.tz)
        today = self.now.astimezone(self.tz).date()
        hm = local.strftime("%H:%M")
        if local.date() == today:
            return hm
        if local.date() == today - timedelta(days=1):
            return self.t("yesterday.at", time=hm)
        return local.strftime("%m-%d ") + hm

    def span(self, seconds: float) -> str:
        """A duration in words: 40 s, 25 min, 2 h 5 min, 3 d 4 h."""
        s = max(0, int(seconds))
        if s < 60:
            return self.t("sec", n=s)
        if s < 3600:
            return self.t("min", n=s // 60)
        if s < 86400:
            return self.t("hour", h=s // 3600, m=s % 3600 // 60)
        return self.t("day", d=s // 86400, h=s % 86400 // 3600)

    def ago(self, moment: datetime) -> str:
        """How long ago a moment was, in words."""
        return self.span((self.now - moment).total_seconds())


def severity_label(ctx: Ctx, alert: AlertView) -> Text:
    """`[!!] CRITICAL` etc.: words and a symbol, coloured only as an extra."""
    if alert.acknowledged_at is not None:
        return Text(ctx.t("sev.acknowledged"), style=ctx.style("ok", bold=True))
    colour = {"critical": "critical", "warning": "warning"}.get(alert.severity, "info")
    return Text(ctx.t(SEVERITY_KEYS[alert.severity]), style=ctx.style(colour, bold=True))


def told(ctx: Ctx, alert: AlertView) -> str:
    """Who was notified, over which channel, and whether it was delivered."""
    if not alert.deliveries:
        return ctx.t("told.none")
    names = [
        f"{ctx.people.get(d.caregiver, d.caregiver)} ({d.channel}, {ctx.t('delivered' if d.ok else 'failed')})"
        for d in alert.deliveries
    ]
    return ctx.t("told", who=", ".join(names))


def alert_text(ctx: Ctx, alert: AlertView) -> Text:
    """One alert: severity, room, what happened, since when, escalation step and who was told."""
    sep = "\n" if ctx.large else "  "
    out = Text()
    out.append_text(severity_label(ctx, alert))
    out.append(sep)
    out.append(ctx.room(alert.room), style=ctx.style("foreground", bold=True))
    out.append(sep if ctx.large else " · ")
    out.append(ctx.t("since", time=ctx.clock(alert.raised_at), ago=ctx.ago(alert.raised_at)), style=ctx.style("muted"))
    if alert.count > 1:
        out.append(" · " + ctx.t("repeats", n=alert.count), style=ctx.style("muted"))
    out.append("\n")
    out.append(pick(alert.message, ctx.lang) or alert.rule_kind, style=ctx.style("foreground"))
    advice = pick(alert.advice, ctx.lang)
    if advice:
        out.append("\n" + ctx.t("todo", advice=advice), style=ctx.style("foreground"))
    step = ctx.t("step", step=alert.escalation_step) if alert.escalation_step else ctx.t("step.0")
    if alert.tier is not None and alert.escalation_step:
        step += f" ({ctx.t('tier', tier=alert.tier)})"
    out.append("\n" + step + " · " + told(ctx, alert), style=ctx.style("muted"))
    if alert.acknowledged_at is not None:
        who = ctx.people.get(alert.acknowledged_by or "", alert.acknowledged_by or "?")
        out.append("\n" + ctx.t("acked", who=who, time=ctx.clock(alert.acknowledged_at)), style=ctx.style("ok"))
        if alert.note:
            out.append(" · " + ctx.t("note", note=alert.note), style=ctx.style("ok"))
    return out


def banner_text(ctx: Ctx, critical: list[AlertView], home: str | None = None) -> Text:
    """The banner every view shows while a critical alert is unacknowledged (with the home in a fleet)."""
    first = critical[0]
    text = (f"{home}: " if home else "") + ctx.t(
        "banner",
        sev=ctx.t("sev.critical"),
        room=ctx.room(first.room),
        what=pick(first.message, ctx.lang) or first.rule_kind,
    )
    if len(critical) > 1:
        text += " " + ctx.t("banner.more", n=len(critical) - 1)
    return Text(text, style=Style(bold=True))


def format_value(point: Point | None, value: Value, lang: Language = "en") -> str:
    """A value with its unit: `21.5 °C`, `on`, `open` (words in the language)."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(None, v, lang)}" for k, v in value.items())
    if isinstance(value, bool):
        words = (
            ("value.open", "value.closed")
            if point is not None and point.kind is Kind.CONTACT
            else ("value.on", "value.off")
        )
        return tr(lang, words[0] if value else words[1])
    if value is None:
        return "-"
    unit = (point.unit or KINDS[point.kind].unit) if point is not None else None
    shown = round(value, 1) if isinstance(value, float) else value
    return f"{shown} {unit}" if unit else str(shown)


def device_text(ctx: Ctx, device: Device, state: DeviceState | None) -> Text:
    """A device line: name, availability with last seen, battery, live values with units."""
    availability = state.availability if state is not None else device.availability
    out = Text()
    out.append(ctx.device_name(device), style=ctx.style("foreground", bold=True))
    colour = "ok" if availability.state is AvailabilityState.ONLINE else "warning"
    out.append("\n  " if ctx.large else "  ")
    out.append(ctx.t(AVAILABILITY_KEYS[availability.state]), style=ctx.style(colour))
    if availability.state is not AvailabilityState.ONLINE and availability.last_seen is not None:
        out.append(" · " + ctx.t("last.seen", time=ctx.clock(availability.last_seen)), style=ctx.style("muted"))
    values = dict(state.values) if state is not None else {}
    battery = values.pop("battery", None)
    if isinstance(battery, int | float) and not isinstance(battery, bool):
        low = battery < 20
        out.append(
            " · " + ("[!] " if low else "") + ctx.t("battery", pct=round(battery)),
            style=ctx.style("warning" if low else "muted"),
        )
    shown = [
        f"{p.name or p.key} {format_value(p, values[p.key], ctx.lang)}"
        for p in device.points
        if p.key in values and not p.diagnostic
    ]
    if shown:
        out.append("\n  " + " · ".join(shown), style=ctx.style("foreground"))
    return out


def room_header(ctx: Ctx, room: str | None, count: int) -> Text:
    """The heading of a room in the Home view."""
    return Text(f"{ctx.room(room)} ({count})", style=ctx.style("info", bold=True))


def detail_lines(ctx: Ctx, home: Home, device: Device) -> Text:
    """A device's detail: its points with current values, then recent values from `events`."""
    state = home.states.get(device.id)
    out = Text()
    out.append_text(device_text(ctx, device, state))
    out.append(f"\n{device.id} · {device.protocol.value} · {device.manufacturer or ''} {device.model or ''}".rstrip())
    out.append(f"\n\n{ctx.t('points')}\n", style=ctx.style("info", bold=True))
    values = state.values if state is not None else {}
    for p in device.points:
        shown = format_value(p, values[p.key], ctx.lang) if p.key in values else "-"
        rw = " (settable)" if p.writable else ""
        out.append(f"  {p.name or p.key}: {shown}  ({p.kind.value}){rw}\n")
    out.append(f"\n{ctx.t('recent')}\n", style=ctx.style("info", bold=True))
    recent = list(home.history.get(device.id, ()))
    if not recent:
        out.append("  " + ctx.t("no.recent") + "\n", style=ctx.style("muted"))
    for ts, key, value in reversed(recent):
        out.append(f"  {ctx.clock(ts)}  {key} {format_value(device.point(key), value, ctx.lang)}\n")
    return out


def strip(counts: list[int]) -> str:
    """24 hour marks from activity counts: `.` none, `:` some, `*` more, `#` a lot."""
    top = max(counts) or 1
    return "".join(LEVELS[0] if c == 0 else LEVELS[min(3, 1 + (c * 3 - 1) // top)] for c in counts)


def activity_text(ctx: Ctx, home: Home) -> Text:
    """Today's and yesterday's hour strips per room, night bathroom visits and the first activity."""
    today = ctx.now.astimezone(ctx.tz).date()
    out = Text()
    first = home.first_activity.get(today)
    out.append(
        (ctx.t("activity.first", time=first.strftime("%H:%M")) if first else ctx.t("activity.first.none")) + "\n",
        style=ctx.style("foreground", bold=True),
    )
    visits = night_visits(list(home.bathroom), today)
    times = (": " + ", ".join(v.strftime("%H:%M") for v in visits)) if visits else ""
    out.append(ctx.t("activity.night", n=len(visits), times=times) + "\n\n", style=ctx.style("foreground", bold=True))
    ruler = "0h    6h    12h   18h"
    for label, day in (("activity.today", today), ("activity.yesterday", today - timedelta(days=1))):
        out.append(f"{ctx.t(label)} ({day.isoformat()})\n", style=ctx.style("info", bold=True))
        rooms = activity_rooms(home)
        width = max((cell_len(ctx.room(r)) for r in rooms), default=0)
        single = ctx.large or width + 26 > 60
        out.append((ruler if single else " " * (width + 2) + ruler) + "\n", style=ctx.style("muted"))
        for room in rooms:
            marks = strip(hour_counts(home, room, day))
            name = ctx.room(room)
            if single:
                out.append(name + "\n", style=ctx.style("foreground"))
                out.append(marks + "\n", style=ctx.style("foreground", bold=True))
            else:
                out.append(name + " " * (width - cell_len(name) + 2), style=ctx.style("foreground"))
                out.append(marks + "\n", style=ctx.style("foreground", bold=True))
        out.append("\n")
    as_of = home.activity_as_of
    source = ctx.t("activity.source.hub", time=ctx.clock(as_of)) if as_of else ctx.t("activity.source")
    out.append(ctx.t("activity.legend") + "\n" + source, style=ctx.style("muted"))
    return out


def pending_text(ctx: Ctx, device: Device) -> Text:
    """A device waiting in the inbox, with where and when it was seen."""
    out = Text()
    out.append(device.name, style=ctx.style("foreground", bold=True))
    maker = " ".join(x for x in (device.manufacturer, device.model) if x)
    if maker:
        out.append("  " + maker, style=ctx.style("muted"))
    seen = device.availability.last_seen
    via = device.via or device.protocol.value
    out.append(
        "\n  " + device.id + " · " + ctx.t("pending.seen", via=via, time=ctx.clock(seen) if seen else "?"),
        style=ctx.style("muted"),
    )
    kinds = sorted({p.kind.value for p in device.points if not p.diagnostic})
    if kinds:
        out.append("\n  " + ", ".join(kinds), style=ctx.style("foreground"))
    return out


def rule_title(ctx: Ctx, rule: RuleView) -> str:
    """A rule's name in this language, else its kind and room."""
    return pick(rule.title, ctx.lang) or f"{rule.kind} ({ctx.room(rule.room)})"


def rule_state(ctx: Ctx, rule: RuleView) -> tuple[str, str]:
    """A rule's state in words and the palette colour it is drawn in."""
    if not rule.enabled or rule.state == "disabled":
        return ctx.t("rule.disabled"), "warning"
    if rule.snoozed_until is not None and rule.snoozed_until > ctx.now:
        return ctx.t("rule.snoozed", time=ctx.clock(rule.snoozed_until)), "info"
    if rule.state == "muted":
        if rule.muted_until is not None:
            return ctx.t("rule.muted", time=ctx.clock(rule.muted_until)), "info"
        return ctx.t("rule.muted.mode"), "info"
    if rule.state == "counting" and rule.deadline is not None:
        return ctx.t("rule.counting", left=ctx.span((rule.deadline - ctx.now).total_seconds())), "warning"
    return ctx.t("rule.idle" if rule.state == "idle" else "rule.armed"), "ok"


def rule_text(ctx: Ctx, rule: RuleView) -> Text:
    """A rule: title, state (armed, counting down with time left, muted, snoozed, disabled), last fired."""
    words, colour = rule_state(ctx, rule)
    out = Text()
    out.append(rule_title(ctx, rule), style=ctx.style("foreground", bold=True))
    out.append("\n  " if ctx.large else "  ")
    out.append(words, style=ctx.style(colour, bold=True))
    last = ctx.t("rule.last", time=ctx.clock(rule.last_fired)) if rule.last_fired else ctx.t("rule.never")
    out.append("\n  " + last, style=ctx.style("muted"))
    return out


def mode_header(ctx: Ctx, mode: ModeState | None) -> Text:
    """The current house mode, with its countdown when it has an end."""
    if mode is None:
        return Text(ctx.t("mode.now", mode=ctx.t("mode.unknown"), until=""), style=ctx.style("warning", bold=True))
    until = ""
    if mode.until is not None:
        until = ctx.t("mode.until", time=ctx.clock(mode.until), left=ctx.span((mode.until - ctx.now).total_seconds()))
    return Text(
        ctx.t("mode.now", mode=ctx.t(f"mode.name.{mode.mode}"), until=until), style=ctx.style("info", bold=True)
    )


def mode_text(ctx: Ctx, mode: HouseMode, current: ModeState | None) -> Text:
    """One choosable mode, marked when current and when it lowers protection."""
    out = Text()
    out.append(ctx.t(f"mode.{mode}"), style=ctx.style("foreground", bold=True))
    if current is not None and current.mode == mode:
        out.append("  " + ctx.t("mode.current"), style=ctx.style("ok", bold=True))
    if mode in LOWERS_PROTECTION:
        out.append("\n  [!] " + ctx.t("lowers"), style=ctx.style("warning"))
    return out


def help_text(ctx: Ctx) -> Text:
    """Every key and what it does."""
    out = Text(ctx.t("help.title") + "\n\n", style=ctx.style("info", bold=True))
    width = max(cell_len(k) for k in HELP_KEYS)
    for key, (en, zh) in HELP_KEYS.items():
        what = zh if ctx.lang == "zh-CN" else en
        if ctx.large:
            out.append(key + "\n", style=ctx.style("foreground", bold=True))
            out.append("  " + what + "\n")
        else:
            out.append(key.ljust(width + 2), style=ctx.style("foreground", bold=True))
            out.append(what + "\n")
    return out


def fleet_home_text(ctx: Ctx, home: Home) -> Text:
    """A home's heading in the fleet list: id, hub status, mode and count of open alerts."""
    out = Text()
    out.append(home.home_id, style=ctx.style("info", bold=True))
    state = home.status.state if home.status else None
    key = {"online": "hub.online", "offline": "hub.offline"}.get(state or "", "hub.unknown")
    out.append("  " + ctx.t(key), style=ctx.style("ok" if state == "online" else "critical", bold=True))
    out.append("  " + ctx.t("fleet.alerts", n=len(home.alerts)), style=ctx.style("foreground"))
    return out
