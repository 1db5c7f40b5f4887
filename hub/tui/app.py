"""The caregiver TUI: alerts first, then home, activity, inbox, rules, mode and help (Textual)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar, cast

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.css.styles import RulesMap
from textual.screen import ModalScreen
from textual.theme import Theme
from textual.visual import RichVisual, VisualType
from textual.widgets import ContentSwitcher, Input, OptionList, Static
from textual.widgets.option_list import Option

from hub.api import AlertView, HouseMode, Language
from hub.clock import Clock, RealClock
from hub.model import Device
from hub.mqtt import LinkStatus
from hub.tui import render
from hub.tui.client import ApiClient, Target
from hub.tui.i18n import LANGUAGES, tr
from hub.tui.render import LOWERS_PROTECTION, MODES, Ctx
from hub.tui.settings import Settings
from hub.tui.state import Fleet, Home, Problems, apply_message
from hub.tui.themes import PALETTES, Palette

log = logging.getLogger(__name__)

BELL_EVERY = 30.0  # seconds between bells while a critical alert is unacknowledged (RULES.md 5)
TICK_EVERY = 30.0  # relative times ("25 min ago") and countdowns are redrawn this often
TEXT_CACHE_MAX = 20_000  # remembered item texts; cleared when a long run has seen more
NARROW = 60  # below this many columns the single-column layout is used

# View id -> (text key of its name, key that opens it, API sections it shows).
VIEWS: dict[str, tuple[str, str, frozenset[str]]] = {
    "alerts": ("view.alerts", "1", frozenset({"alerts"})),
    "home": ("view.home", "2", frozenset({"devices"})),
    "activity": ("view.activity", "3", frozenset({"events", "devices"})),
    "inbox": ("view.inbox", "4", frozenset({"inbox"})),
    "rules": ("view.rules", "5", frozenset({"rules"})),
    "mode": ("view.mode", "6", frozenset({"mode"})),
    "help": ("view.help", "?", frozenset()),
    "device": ("view.device", "", frozenset({"devices", "events"})),
}
FLEET_VIEWS: dict[str, tuple[str, str, frozenset[str]]] = {
    "fleet": ("view.fleet", "1", frozenset({"alerts", "status", "mode"})),
    "help": ("view.help", "?", frozenset()),
}
# View -> the keys it offers, shown as hints under it: (key label, English, Chinese).
HINTS: dict[str, list[tuple[str, str, str]]] = {
    "alerts": [("Enter", "acknowledge", "确认")],
    "home": [("Enter", "device details", "设备详情")],
    "activity": [],
    "inbox": [("Enter", "adopt", "接入"), ("x", "ignore", "忽略")],
    "rules": [("s", "snooze", "暂停"), ("d", "disable/enable", "停用/启用")],
    "mode": [("Enter", "choose mode", "选择模式")],
    "help": [],
    "device": [("Esc", "back", "返回")],
    "fleet": [("Enter", "acknowledge", "确认")],
}
COMMON_HINTS = [("m", "mode", "模式"), ("p", "pause", "暂停"), ("?", "help", "帮助"), ("q", "quit", "退出")]


# Plain mode (`-plain` on the app) draws no box or block characters at all, for screen readers.
CSS = """
Screen { background: $background; color: $foreground; }
#top, #tabs, #hints, #said { height: auto; padding: 0 1; }
#tabs { text-style: bold; }
#banner { height: auto; padding: 0 1; background: $error; color: $text-error; text-style: bold; display: none; }
#banner.-shown { display: block; }
#views { height: 1fr; }
OptionList { border: none; padding: 0 1; height: 1fr; max-height: 100%; background: $background; }
OptionList:focus { border: none; background-tint: $foreground 0%; }
OptionList > .option-list--option-disabled { color: $foreground; text-style: bold; }
OptionList:focus > .option-list--option-highlighted, OptionList > .option-list--option-highlighted {
    background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
VerticalScroll { padding: 0 1; }
#mode OptionList { height: auto; }
AskScreen, ConfirmScreen, ChooseScreen { align: center middle; }
#dialog { width: 90%; max-width: 72; height: auto; max-height: 90%; border: round $foreground;
          background: $background; padding: 1 2; }
#dialog Input { border: round $foreground; margin: 1 0 0 0; }
#dialog OptionList { height: auto; max-height: 12; }
.-plain #dialog, .-plain #dialog Input { border: none; }
.-plain OptionList, .-plain VerticalScroll { scrollbar-size: 0 0; }
"""


def make_theme(p: Palette) -> Theme:
    """A Textual theme from a palette, with the cursor and banner colours it checks."""
    return Theme(
        name=p.name,
        primary=p.info,
        secondary=p.muted,
        accent=p.info,
        foreground=p.foreground,
        background=p.background,
        surface=p.background,
        panel=p.background,
        boost=p.background,
        warning=p.warning,
        error=p.banner_bg,
        success=p.ok,
        dark=p.dark,
        variables={
            "block-cursor-background": p.cursor_bg,
            "block-cursor-foreground": p.cursor_fg,
            "block-cursor-text-style": "bold",
            "block-cursor-blurred-background": p.cursor_bg,
            "block-cursor-blurred-foreground": p.cursor_fg,
            "block-cursor-blurred-text-style": "bold",
            "text-error": p.banner_fg,
            "input-cursor-background": p.foreground,
            "input-cursor-foreground": p.background,
            "border": p.foreground,
            "border-blurred": p.muted,
            "scrollbar": p.muted,
            "scrollbar-background": p.background,
        },
    )


class _Item(RichVisual):
    """An item's text that remembers its height per width.

    OptionList re-measures every item after any change; wrapping 500 alerts' texts each time
    would cost most of the 100 ms an update may take.
    """

    def __init__(self, widget: OptionList, text: Text) -> None:
        super().__init__(widget, text)
        self._heights: dict[int, int] = {}

    def get_height(self, rules: Any, width: int) -> int:
        """The height at this width, measured once."""
        height = self._heights.get(width)
        if height is None:
            height = self._heights[width] = super().get_height(rules, width)
        return height


class ItemList(OptionList):
    """An OptionList that can change one item's text while keeping every other item's rendering."""

    def replace_in_place(self, index: int, prompt: VisualType) -> None:
        """Replace one item's text; only its own lines are redrawn when its height stays the same.

        OptionList's own replace clears the rendering of every item and redraws the whole list:
        with 500 alerts, one acknowledgement cost a frame of full redraw (textual 8.2 internals).
        """
        option = self.get_option_at_index(index)
        before = self._heights.get(index)
        option._set_prompt(prompt)
        cache = self._option_render_cache
        for key in [k for k in cache.keys() if k[0] is option]:  # noqa: SIM118 (an LRUCache, not a dict)
            cache.discard(key)
        padding = self.get_component_styles("option-list--option").padding
        width = self.scrollable_content_region.width - self._get_left_gutter_width() - padding.width
        if width <= 0:
            self._clear_caches()  # not shown (another view is current): measured when it is
            return
        after = self._get_visual(option).get_height(cast("RulesMap", self.styles), width) + option._divider
        if after != before:
            self._clear_caches()  # the lines below move: the layout of the list changes
            return
        self.refresh_lines(self._index_to_line[index], after)


# ---------------------------------------------------------------------------------------------
# Questions: one at a time, never timed out (RULES.md 3)


class AskScreen(ModalScreen[str | None]):
    """Ask for one line of text; Enter answers, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, prompt: str, value: str = "", check: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self.prompt, self.value, self.check = prompt, value, check

    def compose(self) -> ComposeResult:
        """The question, the input line and a line for what is wrong with the answer."""
        with Vertical(id="dialog"):
            yield Static(self.prompt)
            yield Input(value=self.value, id="answer")
            yield Static("", id="problem")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        problem = self.check(event.value) if self.check else None
        if problem:
            self.query_one("#problem", Static).update("[!] " + problem)
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """The second step for anything that lowers protection: y confirms, n or Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n", "answer(False)", "no"),
        Binding("escape", "answer(False)", "cancel"),
    ]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        """The question in words."""
        with Vertical(id="dialog"):
            yield Static(self.text, id="question")

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)


class ChooseScreen(ModalScreen[str | None]):
    """Choose one of a few options; Enter chooses, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, prompt: str, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.prompt, self.options = prompt, options

    def compose(self) -> ComposeResult:
        """The question and the options."""
        with Vertical(id="dialog"):
            yield Static(self.prompt)
            yield OptionList(*[Option(label, id=ident) for ident, label in self.options], id="choices")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without a choice."""
        self.dismiss(None)


def _whole_number(lang: Language, lo: int, hi: int) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        ok = text.strip().isdigit() and lo <= int(text) <= hi
        return None if ok else tr(lang, "bad.number", lo=lo, hi=hi)

    return check


# ---------------------------------------------------------------------------------------------
# The app


class CaregiverApp(App[None]):
    """One caregiver's view of a home (or, with a fleet target, of every home on a broker)."""

    TITLE = "Eldercare hub"
    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1,a", "view('alerts')", "alerts", show=False),
        Binding("2,h", "view('home')", "home", show=False),
        Binding("3,v", "view('activity')", "activity", show=False),
        Binding("4,i", "view('inbox')", "inbox", show=False),
        Binding("5,r", "view('rules')", "rules", show=False),
        Binding("6,m", "view('mode')", "mode", show=False),
        Binding("question_mark", "view('help')", "help", show=False),
        Binding("escape", "go_back", "back", show=False),
        Binding("p", "pause", "pause", show=False),
        Binding("l", "language", "language", show=False),
        Binding("t", "theme", "theme", show=False),
        Binding("g", "large", "large layout", show=False),
        Binding("b", "toggle_bell", "bell", show=False),
        Binding("x", "ignore", "ignore", show=False),
        Binding("s", "snooze", "snooze", show=False),
        Binding("d", "disable", "disable", show=False),
        Binding("q", "quit", "quit", show=False),
    ]

    def __init__(self, target: Target, settings: Settings, *, clock: Clock | None = None, connect: bool = True) -> None:
        self.settings = settings
        self.target = target
        self.fleet_mode = target.home_id is None
        self.views = FLEET_VIEWS if self.fleet_mode else VIEWS
        self.clock: Clock = clock or RealClock()
        self.fleet = Fleet()
        self.problems = Problems()
        self.link_status: LinkStatus | None = None
        self.paused = False
        self.said = ""  # the last action's result, shown until the next one
        self.device_id: str | None = None  # the device whose detail is shown
        self._dirty: set[str] = set()
        self._shown: dict[str, Text] = {}  # Static selector -> the text it shows
        self._flush_scheduled = False
        self._rang_for: set[str] = set()
        self._prompts: dict[str, dict[str, Text]] = {}  # list id -> item id -> its text (undecorated)
        self._lit: dict[str, str | None] = {}  # list id -> the highlighted item's id
        self._options: dict[str, dict[str, Option]] = {}  # list id -> item id -> its Option (keeps its layout)
        self._texts: dict[str, tuple[object, tuple[Any, ...], Text]] = {}  # item -> (context, payloads, text)
        self._connect = connect
        self.client: ApiClient | None = None
        self._client_task: asyncio.Task[None] | None = None
        # Perf hooks for the benchmark: called after each flush with the arrival time it covered.
        self.on_flushed: Callable[[float], None] | None = None
        self._oldest_arrival: float | None = None
        super().__init__()
        self.current = "fleet" if self.fleet_mode else "alerts"

    # -- set-up ---------------------------------------------------------------------------

    @property
    def home(self) -> Home:
        """The one home watched (fleet mode: the first seen)."""
        if self.target.home_id is not None:
            return self.fleet.home(self.target.home_id)
        return next(iter(self.fleet.homes.values()), Home("-"))

    @property
    def palette(self) -> Palette:
        """The palette in use: mono under NO_COLOR, else the chosen theme."""
        return PALETTES["mono" if self.no_color else self.settings.theme]

    def compose(self) -> ComposeResult:
        """The top line, the critical banner, view tabs, the views, key hints and the last result."""
        yield Static(id="top")
        yield Static(id="banner")
        yield Static(id="tabs")
        with ContentSwitcher(id="views", initial=self.current):
            if self.fleet_mode:
                yield ItemList(id="fleet")
            else:
                yield ItemList(id="alerts")
                yield ItemList(id="home")
                with VerticalScroll(id="activity"):
                    yield Static(id="activity-body")
                yield ItemList(id="inbox")
                yield ItemList(id="rules")
                with VerticalScroll(id="mode"):
                    yield Static(id="mode-head")
                    yield ItemList(id="modes")
                with VerticalScroll(id="device"):
                    yield Static(id="device-body")
            with VerticalScroll(id="help"):
                yield Static(id="help-body")
        yield Static(id="hints")
        yield Static(id="said")

    def on_mount(self) -> None:
        """Register the themes, draw everything once, start the MQTT client and the timers."""
        for p in PALETTES.values():
            self.register_theme(make_theme(p))
        self.theme = self.palette.name
        self.set_class(self.settings.plain, "-plain")
        self._apply_layout()
        self._dirty.update({"alerts", "devices", "events", "inbox", "rules", "mode", "status"})
        self._redraw()
        self._focus_view()
        if self._connect:
            self.client = ApiClient(self.target, self.receive, self._on_link_status)
            self._client_task = asyncio.create_task(self.client.run(), name="tui-mqtt")
        self.set_interval(TICK_EVERY, self._tick)
        self.set_interval(BELL_EVERY, self._bell_tick)

    async def on_unmount(self) -> None:
        """Stop the MQTT client."""
        if self._client_task is not None:
            self._client_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._client_task

    def on_resize(self) -> None:
        """Switch to the single-column layout below 60 columns, and back."""
        if self._apply_layout():
            self._redraw_all()

    def _apply_layout(self) -> bool:
        large = self.settings.large or self.size.width < NARROW
        changed = self.screen.has_class("-large") != large
        self.screen.set_class(large, "-large")
        return changed

    # -- messages from the broker ----------------------------------------------------------

    def receive(self, home_id: str, rel: str, payload: bytes) -> None:
        """Apply one API message; redraw what it changed soon (never moving focus)."""
        section = apply_message(self.fleet.home(home_id), rel, payload, self._tz(), self.problems)
        if section is None:
            return
        if self._oldest_arrival is None:
            self._oldest_arrival = time.perf_counter()
        self._dirty.add(section)
        if section in ("alerts", "status") and self.settings.bell:
            self._ring_for_new_critical()
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Coalesce a burst: one redraw after the messages already queued.
            self.call_later(self._redraw)

    def _on_link_status(self, status: LinkStatus) -> None:
        self.link_status = status
        self._dirty.add("status")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.call_later(self._redraw)

    # -- drawing --------------------------------------------------------------------------

    def _tz(self) -> tzinfo:
        return self.settings.tz or datetime.now().astimezone().tzinfo or self.clock.now().tzinfo  # type: ignore[return-value]

    def ctx(self) -> Ctx:
        """The drawing context now."""
        s = self.settings
        return Ctx(
            lang=s.lang,
            palette=self.palette,
            now=self.clock.now(),
            tz=self._tz(),
            large=self.screen.has_class("-large"),
            rooms=s.rooms,
            people=s.people,
            device_names_zh=s.device_names_zh,
        )

    def _redraw(self) -> None:
        self._flush_scheduled = False
        arrival, self._oldest_arrival = self._oldest_arrival, None
        ctx = self.ctx()
        self._draw_top(ctx)
        self._draw_banner(ctx)
        if not self.paused:
            dirty, self._dirty = self._dirty, set()
            if dirty & self.views[self.current][2] or self.current == "help":
                self._draw_view(self.current, ctx)
            self._draw_tabs(ctx)
        if arrival is not None and self.on_flushed is not None:
            hook = self.on_flushed
            self.call_after_refresh(lambda: hook(arrival))

    def _redraw_all(self) -> None:
        self._dirty.update({"alerts", "devices", "events", "inbox", "rules", "mode", "status"})
        self._redraw()

    def _draw_top(self, ctx: Ctx) -> None:
        parts = [ctx.t("title")]
        if self.fleet_mode:
            parts.append(ctx.t("fleet.alerts", n=sum(len(h.alerts) for h in self.fleet.homes.values())))
        else:
            home = self.home
            if self.settings.home_name:
                parts.append(self.settings.home_name)
            state = home.status.state if home.status else None
            parts.append(ctx.t({"online": "hub.online", "offline": "hub.offline"}.get(state or "", "hub.unknown")))
            if home.mode is not None:
                parts.append(ctx.t("view.mode") + ": " + ctx.t(f"mode.name.{home.mode.mode}"))
        parts.append(ctx.now.astimezone(ctx.tz).strftime("%H:%M"))
        text = Text(" · ".join(parts), style=ctx.style("foreground", bold=True))
        if self.link_status is not None and not self.link_status.connected and self.link_status.last_error:
            text.append("\n" + ctx.t("link.down", why=self.link_status.last_error), style=ctx.style("critical"))
        if self.paused:
            text.append("\n" + ctx.t("paused"), style=ctx.style("warning", bold=True))
        self._show("#top", text)

    def _critical(self) -> list[tuple[str, AlertView]]:
        return [(h.home_id, a) for h in self.fleet.homes.values() for a in h.critical_unacknowledged()]

    def _draw_banner(self, ctx: Ctx) -> None:
        banner = self.query_one("#banner", Static)
        found = self._critical()
        critical = [a for _, a in found]
        banner.set_class(bool(critical), "-shown")
        home = found[0][0] if found and self.fleet_mode else None
        self._show("#banner", render.banner_text(ctx, critical, home) if critical else Text(""))

    def _show(self, selector: str, content: Text) -> None:
        """Update a Static only when what it shows changed.

        Every update of a Static of automatic height refreshes the screen's layout and so repaints
        every widget, the 500-alert list included: skipping equal texts keeps updates local.
        """
        if self._shown.get(selector) == content:
            return
        self._shown[selector] = content
        self.query_one(selector, Static).update(content)

    def _draw_tabs(self, ctx: Ctx) -> None:
        items = []
        for view, (name, key, _) in self.views.items():
            if not key:
                continue
            label = f"{key} {ctx.t(name)}"
            if view == "alerts":
                label += f" ({len(self.home.alerts)})"
            elif view == "inbox":
                label += f" ({len(self.home.inbox)})"
            # The current view is marked by brackets, not by colour alone.
            items.append(f"[{label}]" if view == self.current else f" {label} ")
        self._show("#tabs", Text("".join(items), style=ctx.style("info", bold=True)))
        hints = HINTS.get(self.current, []) + [h for h in COMMON_HINTS if h[0] != "m" or not self.fleet_mode]
        i = 1 if ctx.lang == "en" else 2
        text = "  ".join(f"{h[0]} {h[i]}" for h in hints)
        self._show("#hints", Text(text, style=ctx.style("muted")))
        self._show("#said", Text(self.said, style=ctx.style("foreground")))

    def _draw_view(self, view: str, ctx: Ctx) -> None:
        home = self.home
        match view:
            case "alerts":
                options = [
                    (f"a:{a.id}", self._text(ctx, f"a:{a.id}", (a,), render.alert_text), False)
                    for a in home.sorted_alerts()
                ]
                self._fill("alerts", options, ctx.t("no.alerts"))
            case "home":
                self._fill("home", self._home_options(ctx, home), ctx.t("no.devices"))
            case "activity":
                self._show("#activity-body", render.activity_text(ctx, home))
            case "inbox":
                options = [
                    (f"p:{d.id}", render.pending_text(ctx, d), False) for d in sorted(home.inbox.values(), key=_by_name)
                ]
                self._fill("inbox", options, ctx.t("no.inbox"))
            case "rules":
                options = [
                    (f"r:{r.id}", render.rule_text(ctx, r), False)
                    for r in sorted(home.rules.values(), key=lambda r: r.id)
                ]
                self._fill("rules", options, ctx.t("no.rules"))
            case "mode":
                self._show("#mode-head", render.mode_header(ctx, home.mode))
                self._fill("modes", [(f"m:{m}", render.mode_text(ctx, m, home.mode), False) for m in MODES], "")
            case "help":
                self._show("#help-body", render.help_text(ctx))
            case "device":
                device = home.devices.get(self.device_id or "")
                body = render.detail_lines(ctx, home, device) if device else Text(ctx.t("no.devices"))
                self._show("#device-body", body)
            case "fleet":
                self._fill("fleet", self._fleet_options(ctx), ctx.t("fleet.none"))

    def _home_options(self, ctx: Ctx, home: Home) -> list[tuple[str, Text, bool]]:
        order = list(self.settings.rooms)
        by_room: dict[str | None, list[Device]] = {}
        for d in home.devices.values():
            by_room.setdefault(d.room, []).append(d)
        rooms = sorted(by_room, key=lambda r: (r is None, order.index(r) if r in order else len(order), r or ""))
        options: list[tuple[str, Text, bool]] = []
        for room in rooms:
            devices = sorted(by_room[room], key=_by_name)
            options.append((f"room:{room}", render.room_header(ctx, room, len(devices)), True))
            options += [
                (f"d:{d.id}", self._text(ctx, f"d:{d.id}", (d, home.states.get(d.id)), render.device_text), False)
                for d in devices
            ]
        return options

    def _fleet_options(self, ctx: Ctx) -> list[tuple[str, Text, bool]]:
        options: list[tuple[str, Text, bool]] = []
        for home_id in sorted(self.fleet.homes):
            home = self.fleet.homes[home_id]
            options.append((f"h:{home_id}", render.fleet_home_text(ctx, home), True))
            options += [
                (f"f:{home_id}:{a.id}", self._text(ctx, f"f:{home_id}:{a.id}", (a,), render.alert_text), False)
                for a in home.sorted_alerts()
            ]
        return options

    def _text(self, ctx: Ctx, item: str, parts: tuple[Any, ...], make: Callable[..., Text]) -> Text:
        """`make(ctx, *parts)`, remembered while the payload objects and the drawing context stay the same.

        Payloads are immutable and replaced on every change, so identity means "unchanged": a
        500-alert list redraws only what changed (the benchmark's 100 ms budget needs it).
        """
        key = (ctx.lang, ctx.palette.name, ctx.large, ctx.now.replace(second=0, microsecond=0))
        hit = self._texts.get(item)
        if (
            hit is not None
            and hit[0] == key
            and len(hit[1]) == len(parts)
            and all(a is b for a, b in zip(hit[1], parts, strict=False))
        ):
            return hit[2]
        if len(self._texts) > TEXT_CACHE_MAX:
            self._texts.clear()
        text = make(ctx, *parts)
        self._texts[item] = (key, parts, text)
        return text

    def _fill(self, list_id: str, options: list[tuple[str, Text, bool]], empty: str) -> None:
        """Show these options, keeping the highlighted item and the scroll position."""
        ol = self.query_one(f"#{list_id}", ItemList)
        if not options:
            options = [("empty", Text(empty), True)]
        ids = [o[0] for o in options]
        shown = self._prompts.setdefault(list_id, {})
        if list(shown) == ids:
            # Same items in the same order: replace only the prompts that changed.
            for index, (ident, prompt, disabled) in enumerate(options):
                if shown[ident] is not prompt:
                    shown[ident] = prompt
                    ol.replace_in_place(index, _Item(ol, self._look(list_id, ident, prompt, disabled)))
            return
        kept = ol.highlighted_option.id if ol.highlighted_option is not None else None
        old_index, scroll = ol.highlighted, ol.scroll_y
        old, kept_options = self._prompts.get(list_id, {}), self._options.get(list_id, {})
        self._prompts[list_id] = {i: p for i, p, _ in options}
        # The highlight is set again below; until then every item is drawn plain.
        lit, self._lit[list_id] = self._lit.get(list_id), None
        made: dict[str, Option] = {}
        for i, p, d in options:
            # An unchanged item keeps its Option, and with it its measured layout (cheap with 500 alerts).
            same = i in kept_options and old.get(i) is p and i != lit
            made[i] = kept_options[i] if same else Option(_Item(ol, self._look(list_id, i, p, d)), id=i, disabled=d)
        self._options[list_id] = made
        ol.set_options(list(made.values()))
        target = ids.index(kept) if kept in ids else old_index
        selectable = [i for i, (_, _, d) in enumerate(options) if not d]
        if selectable:
            wanted = target if target is not None else selectable[0]
            ol.highlighted = min(selectable, key=lambda i: (abs(i - wanted), i))
        ol.scroll_to(y=scroll, animate=False, immediate=True)

    def _look(self, list_id: str, ident: str, prompt: Text, disabled: bool) -> Text:
        """An item as drawn: a two-column gutter, `> ` and the cursor's own colours when highlighted."""
        if disabled:
            return prompt
        lit = self._lit.get(list_id) == ident
        # Colours of the text would fight the cursor's; words and the marker carry the meaning.
        body = Text(prompt.plain, style="bold") if lit else prompt
        lines = body.split("\n", include_separator=True)
        out = Text("> " if lit else "  ", style="bold")
        for n, line in enumerate(lines):
            out.append_text(line if n == 0 or not line.plain.strip() else Text("  ") + line)
        out.append("\n")  # a blank line after each item (OptionList draws no vertical option padding)
        return out

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        ol = event.option_list
        list_id = ol.id or ""
        prompts = self._prompts.get(list_id)
        if prompts is None or not isinstance(ol, ItemList):
            return
        before, now = self._lit.get(list_id), event.option.id
        self._lit[list_id] = now
        for ident in (before, now):
            if ident is not None and ident in prompts:
                index = ol.get_option_index(ident)
                ol.replace_in_place(index, _Item(ol, self._look(list_id, ident, prompts[ident], False)))

    # -- timers ---------------------------------------------------------------------------

    def _tick(self) -> None:
        # Relative times and countdowns age; redraw the view in place (focus stays).
        if not self.paused:
            self._dirty.update(self.views[self.current][2])
        self._redraw()

    def _bell_tick(self) -> None:
        if self.settings.bell and self._critical():
            self.bell()

    def _ring_for_new_critical(self) -> None:
        ids = {f"{h}/{a.id}" for h, a in self._critical()}
        if ids - self._rang_for:
            self.bell()
        self._rang_for = ids

    # -- keys -----------------------------------------------------------------------------

    def action_view(self, view: str) -> None:
        """Show a view (keys 1-6, a h v i r m, ?)."""
        if view not in self.views:
            return
        self.current = view
        self.query_one("#views", ContentSwitcher).current = view
        self._dirty.update(self.views[view][2])
        if not self.paused:
            self._draw_view(view, self.ctx())
        self._redraw()
        self._focus_view()

    def _focus_view(self) -> None:
        lists = {"alerts": "#alerts", "home": "#home", "inbox": "#inbox", "rules": "#rules", "mode": "#modes"}
        lists["fleet"] = "#fleet"
        if self.current in lists:
            self.query_one(lists[self.current], OptionList).focus()
        else:
            self.query_one(f"#{self.current}", VerticalScroll).focus()

    def action_go_back(self) -> None:
        """Esc: from a device's detail back to Home, else to Alerts."""
        self.action_view("home" if self.current == "device" else ("fleet" if self.fleet_mode else "alerts"))

    def action_pause(self) -> None:
        """p: pause or resume live updates of the lists (the critical banner stays live)."""
        self.paused = not self.paused
        if not self.paused:
            self._dirty.update(self.views[self.current][2])
        self._redraw()

    def action_language(self) -> None:
        """l: switch between the languages."""
        self.settings.lang = LANGUAGES[(LANGUAGES.index(self.settings.lang) + 1) % len(LANGUAGES)]
        self._prompts.clear()
        self._lit.clear()
        self._options.clear()
        self._texts.clear()
        self._redraw_all()

    def action_theme(self) -> None:
        """t: switch dark and light (NO_COLOR stays black and white)."""
        self.settings.theme = "light" if self.settings.theme == "dark" else "dark"
        self.theme = self.palette.name
        self._prompts.clear()
        self._lit.clear()
        self._options.clear()
        self._texts.clear()
        self._redraw_all()

    def action_large(self) -> None:
        """g: switch the single-column large layout."""
        self.settings.large = not self.settings.large
        self._apply_layout()
        self._prompts.clear()
        self._lit.clear()
        self._options.clear()
        self._texts.clear()
        self._redraw_all()

    def action_toggle_bell(self) -> None:
        """b: the bell for critical alerts on or off."""
        self.settings.bell = not self.settings.bell
        self._say("Bell on" if self.settings.bell else "Bell off")

    def _say(self, text: str) -> None:
        self.said = text
        self._draw_tabs(self.ctx())

    def _selected(self, list_id: str) -> str | None:
        ol = self.query_one(f"#{list_id}", OptionList)
        option = ol.highlighted_option
        return option.id if option is not None and not option.disabled else None

    @on(OptionList.OptionSelected)
    def _enter(self, event: OptionList.OptionSelected) -> None:
        ident = event.option.id or ""
        kind, _, rest = ident.partition(":")
        match kind:
            case "a":
                self._ack(self.target.home_id or "", rest)
            case "f":
                home_id, _, alert_id = rest.partition(":")
                self._ack(home_id, alert_id)
            case "d":
                self.device_id = rest
                self.action_view("device")
            case "p":
                self._adopt(rest)
            case "m":
                self._choose_mode(cast("HouseMode", rest))

    def _send(self, request: Callable[[ApiClient], Coroutine[Any, Any, None]], said: str) -> None:
        client = self.client
        if client is None:
            return
        task = asyncio.create_task(request(client))
        task.add_done_callback(_log_failure)
        self._say(said)

    def _ack(self, home_id: str, alert_id: str) -> None:
        home = self.fleet.homes.get(home_id)
        alert = home.alerts.get(alert_id) if home else None
        if alert is None:
            return
        ctx = self.ctx()
        if alert.acknowledged_at is not None:
            self._say(ctx.t("already.acked", who=alert.acknowledged_by or "?"))
            return
        what = f"{ctx.room(alert.room)} {ctx.t(render.SEVERITY_KEYS[alert.severity])}"

        def answered(note: str | None) -> None:
            if note is None:
                return
            s = self.settings
            self._send(lambda c: c.ack(home_id, alert_id, s.who, note, s.channel), ctx.t("sent.ack", what=what))

        self.push_screen(AskScreen(ctx.t("ask.note")), answered)

    def _adopt(self, device_id: str) -> None:
        device = self.home.inbox.get(device_id)
        if device is None:
            return
        ctx = self.ctx()
        home_id = self.target.home_id or ""

        def named(name: str | None) -> None:
            if name is None:
                return
            rooms = [(r, ctx.room(r)) for r in self.settings.rooms]

            def placed(room: str | None) -> None:
                if room is None:
                    return
                self._send(
                    lambda c: c.adopt(home_id, device_id, name or None, room or None),
                    ctx.t("sent.adopt", name=name or device.name),
                )

            if rooms:
                self.push_screen(ChooseScreen(ctx.t("ask.room"), rooms), placed)
            else:
                self.push_screen(AskScreen(ctx.t("ask.room")), placed)

        self.push_screen(AskScreen(ctx.t("ask.name"), device.name), named)

    def action_ignore(self) -> None:
        """x: ignore the selected new device, after a confirmation."""
        if self.current != "inbox" or not (ident := self._selected("inbox")):
            return
        device_id = ident.partition(":")[2]
        ctx = self.ctx()
        home_id = self.target.home_id or ""
        name = self.home.inbox[device_id].name if device_id in self.home.inbox else device_id

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send(lambda c: c.ignore(home_id, device_id), ctx.t("sent.ignore", name=name))

        self.push_screen(ConfirmScreen(ctx.t("confirm", what=ctx.t("confirm.ignore", name=name))), confirmed)

    def _rule(self) -> tuple[str, str] | None:
        if self.current != "rules" or not (ident := self._selected("rules")):
            return None
        rule = self.home.rules.get(ident.partition(":")[2])
        return (rule.id, render.rule_title(self.ctx(), rule)) if rule else None

    def action_snooze(self) -> None:
        """s: snooze the selected rule for some minutes, after a confirmation."""
        picked = self._rule()
        if picked is None:
            return
        rule_id, title = picked
        ctx = self.ctx()
        home_id = self.target.home_id or ""

        def minutes(text: str | None) -> None:
            if text is None:
                return
            n = int(text)

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self._send(
                        lambda c: c.rule_set(home_id, rule_id, enabled=None, snooze_minutes=n),
                        ctx.t("sent.rule", rule=title),
                    )

            question = ctx.t("confirm", what=ctx.t("confirm.snooze", rule=title, minutes=n))
            self.push_screen(ConfirmScreen(question), confirmed)

        self.push_screen(AskScreen(ctx.t("ask.minutes"), "30", _whole_number(ctx.lang, 1, 7 * 24 * 60)), minutes)

    def action_disable(self) -> None:
        """d: disable the selected rule after a confirmation (enabling needs one step)."""
        picked = self._rule()
        if picked is None:
            return
        rule_id, title = picked
        rule = self.home.rules[rule_id]
        ctx = self.ctx()
        home_id = self.target.home_id or ""
        enable = not rule.enabled or rule.state == "disabled"
        if enable:
            self._send(
                lambda c: c.rule_set(home_id, rule_id, enabled=True, snooze_minutes=None),
                ctx.t("sent.rule", rule=title),
            )
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send(
                    lambda c: c.rule_set(home_id, rule_id, enabled=False, snooze_minutes=None),
                    ctx.t("sent.rule", rule=title),
                )

        self.push_screen(ConfirmScreen(ctx.t("confirm", what=ctx.t("confirm.disable", rule=title))), confirmed)

    def _choose_mode(self, mode: HouseMode) -> None:
        ctx = self.ctx()
        home_id = self.target.home_id or ""
        name = ctx.t(f"mode.name.{mode}")

        def send(until: datetime | None) -> None:
            self._send(lambda c: c.mode_set(home_id, mode, until, self.settings.who), ctx.t("sent.mode", mode=name))

        def confirm_then_send(until: datetime | None) -> None:
            if mode not in LOWERS_PROTECTION:
                send(until)
                return
            question = ctx.t("confirm", what=ctx.t("confirm.mode", mode=name))
            self.push_screen(ConfirmScreen(question), lambda yes: send(until) if yes else None)

        if mode == "visitor":

            def hours(text: str | None) -> None:
                if text is not None:
                    confirm_then_send(self.clock.now() + timedelta(hours=int(text)))

            self.push_screen(AskScreen(ctx.t("ask.hours"), "3", _whole_number(ctx.lang, 1, 48)), hours)
        else:
            confirm_then_send(None)


def _by_name(device: Device) -> tuple[str, str]:
    return (device.name.lower(), device.id)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("TUI: a request to the hub failed: %s", task.exception())
