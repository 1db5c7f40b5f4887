"""The rules engine inside a running hub: restore on start, run deadlines, store, publish, notify, act.

The engine and alert book are pure; this shell carries out their effects in order, in one task:
an alert is stored (committed) before it is published and before the deadline that raised it is
forgotten, so a hub killed at any moment neither loses nor repeats an alert. Timer writes are
coalesced per key, so a busy home costs one write per countdown, not one per motion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from hub.api import EVENT_ADAPTER, AckRequest, AlertView, HouseMode, ModeState, RuleSetRequest, RuleView, Topics
from hub.clock import Clock
from hub.config import Config
from hub.health import RULE_PREFIX as HEALTH_RULE_PREFIX
from hub.health import Problem
from hub.model import AlertTransition, Event, Value
from hub.mqtt import Link
from hub.notify import Notifier
from hub.registry import CommandRefused, Registry
from hub.rules.alerts import AlertError, AlertRequest
from hub.rules.effects import (
    Act,
    AlertChanged,
    Effect,
    ModeChanged,
    Notify,
    RuleChanged,
    TimerDeleted,
    TimerSaved,
)
from hub.rules.engine import Engine, RuleRefused
from hub.rules.library import RoutineChangeRule
from hub.rules.routine import changes, point_changes
from hub.rules.spec import parse_rules
from hub.store import Store, StoreError

log = logging.getLogger(__name__)

SendCommand = Callable[[str, dict[str, Value], str], Awaitable[None]]

# Device health re-arms a deadline with every report: at thousands of reports a second, one
# transaction each would bury the store. A deadline moved later by at most MOVE_SLACK than
# the stored one is written with the other such moves, once every MOVES_EVERY seconds, in
# one transaction; a crash then restores a deadline at most MOVE_SLACK early, never a lost
# one. New, earlier, further moved and disarmed deadlines are stored at once, as before.
MOVES_EVERY = 1.0
MOVE_SLACK = timedelta(seconds=5)
ModeListener = Callable[[ModeState], Awaitable[None]]


class RulesRuntime:
    """Runs one home's rules in the hub: a listener for events, and tasks for deadlines and effects."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        store: Store,
        clock: Clock,
        topics: Topics,
        *,
        link: Callable[[], Link],
        command: SendCommand,
        on_mode: ModeListener,
    ) -> None:
        self.store = store
        self.clock = clock
        self.topics = topics
        self._link = link
        self._command = command
        self._on_mode = on_mode
        self.engine = Engine(config, parse_rules(config), registry, now=clock.now())
        self.notifier = Notifier(config.people.caregivers, config.home.language, clock)
        self.counters: Counter[str] = Counter()
        self._work = asyncio.Event()
        self._rearm = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._sleeping_until: datetime | None = None
        self._stored: dict[str, datetime] = {}  # every deadline as the store holds it
        self._moves: dict[str, TimerSaved] = {}  # later deadlines of stored timers, not yet written

    # -- start -------------------------------------------------------------------------

    async def restore(self) -> ModeState:
        """Put back stored alerts, deadlines, mode and switches (the store must be open); the mode."""
        timers = await asyncio.to_thread(self.store.load_timers)
        alerts = await asyncio.to_thread(self.store.load_open_alerts)
        self.engine.now = self.clock.now()
        self.engine.restore(timers, alerts)
        self._stored = {key: deadline for key, (deadline, _, _) in self.engine.timers.entries.items()}
        await self._relearn()
        log.info(
            "rules: %d rules, %d open alerts, %d deadlines restored", len(self.engine.rules), len(alerts), len(timers)
        )
        self._kick()
        return self.engine.mode

    async def _relearn(self) -> None:
        # routine_change knows the usual silences only from history: read it back, off the loop.
        for rule in self.engine.rules.values():
            if not isinstance(rule, RoutineChangeRule):
                continue
            ids = {inp.device_id for _, inp in rule.my_inputs()}
            since = self.engine.now - rule.HISTORY
            try:
                states, points = await asyncio.to_thread(self.store.device_history_since, ids, since)
            except StoreError as exc:
                self.counters["history_failed"] += 1
                log.error("rules: could not read %s's history, learning from now on: %s", rule.id, exc)
                continue
            history = changes(states, point_changes(points))
            learnt = rule.learn(history)
            log.info("rules: %s learnt %d activities from %d stored changes", rule.id, learnt, len(history))

    async def run(self) -> None:
        """Fire deadlines on time and carry out effects, until cancelled."""
        for alert in self.engine.book.open.values():
            await self._link().set_retained(self.topics.alert(alert.id), alert.view().model_dump_json().encode())
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._deadlines(), name="rules-deadlines")
            tg.create_task(self._effects(tg), name="rules-effects")
            tg.create_task(self._store_moves(), name="rules-deadline-moves")

    # -- what the hub calls ------------------------------------------------------------

    def listener(self, event: Event) -> None:
        """Called by the hub with every forwarded event."""
        self.engine.feed(event)
        # Most events change nothing to carry out and no deadline to wait for: wake nobody then.
        if self.engine.out:
            self._work.set()
        if self.engine.next_deadline() != self._sleeping_until:
            self._rearm.set()

    async def ack(self, alert_id: str, request: AckRequest) -> AlertView:
        """Acknowledge an alert (refused with a reason when it is not open)."""
        self.engine.now = max(self.engine.now, self.clock.now())
        try:
            view = self.engine.ack(alert_id, request.by, request.channel, request.note)
        except AlertError as exc:
            raise CommandRefused(str(exc).strip("'\"")) from None
        self._kick()
        return view

    async def set_rule(self, rule_id: str, request: RuleSetRequest) -> RuleView:
        """Enable, disable or snooze a rule (refused for safety rules)."""
        self.engine.now = max(self.engine.now, self.clock.now())
        try:
            view = self.engine.set_rule(rule_id, request.enabled, request.snooze_minutes)
        except RuleRefused as exc:
            raise CommandRefused(str(exc)) from None
        self._kick()
        return view

    def set_mode(self, mode: HouseMode, until: Any, by: str | None) -> ModeState:
        """Change the house mode; it is published when the effect is carried out."""
        self.engine.now = max(self.engine.now, self.clock.now())
        state = self.engine.set_mode(mode, until, by)
        self._kick()
        return state

    # -- the hub's own health (hub.health.AlertSink) --------------------------------------

    async def raise_health_alert(self, problem: Problem, now: datetime) -> str:
        """Raise (or repeat) the alert for one of the hub's own problems, escalated like any other; its id."""
        self.engine.now = max(self.engine.now, now)
        request = AlertRequest(
            rule_id=HEALTH_RULE_PREFIX + problem.key,
            rule_kind="hub_health",
            room=None,
            severity=problem.severity,
            message=problem.message,
            advice=problem.advice,
        )
        alert = self.engine.book.raise_(request, self.engine.now) or self.engine.book.find(request.rule_id, None)
        self._kick()
        return alert.id if alert is not None else ""

    async def resolve_health_alert(self, alert_id: str, problem_key: str, now: datetime) -> None:
        """Resolve the alert of a health problem that went away."""
        self.engine.now = max(self.engine.now, now)
        self.engine.book.clear(HEALTH_RULE_PREFIX + problem_key, None, self.engine.now)
        self._kick()

    def _kick(self) -> None:
        self._work.set()
        self._rearm.set()

    # -- deadlines ---------------------------------------------------------------------

    async def _deadlines(self) -> None:
        while True:
            self._rearm.clear()
            deadline = self._sleeping_until = self.engine.next_deadline()
            if deadline is None:
                await self._rearm.wait()
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
            waker = asyncio.ensure_future(self._rearm.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            now = self.clock.now()
            if now >= deadline:
                self.engine.advance(now)
                self._work.set()

    # -- effects -----------------------------------------------------------------------

    async def _effects(self, tg: asyncio.TaskGroup) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            effects = self.engine.drain()
            if not effects:
                continue
            await self._carry_out(effects, tg)

    async def _store_moves(self) -> None:
        try:
            while True:
                await self.clock.sleep(MOVES_EVERY)
                try:
                    await self._write_moves()
                except StoreError as exc:
                    self.counters["deadline_moves_unsaved"] += 1
                    log.error("rules: could not store moved deadlines (kept, retried in %.0f s): %s", MOVES_EVERY, exc)
        finally:
            # Stopping: what moved in the last second is written too (the store closes after us).
            with contextlib.suppress(StoreError):
                await self._write_moves()

    async def _write_moves(self) -> None:
        if not self._moves:
            return
        moves, self._moves = self._moves, {}
        try:
            await self.store.save_timers([(m.key, m.owner, m.deadline, m.data) for m in moves.values()])
        except StoreError:
            # Kept for the next try, unless written or disarmed since.
            self._moves = moves | self._moves
            raise
        for m in moves.values():
            self._stored[m.key] = m.deadline

    async def _carry_out(self, effects: list[Effect], tg: asyncio.TaskGroup) -> None:
        # Only the last write of each timer key in a batch matters.
        last = {e.key: i for i, e in enumerate(effects) if isinstance(e, TimerSaved | TimerDeleted)}
        for index, effect in enumerate(effects):
            try:
                match effect:
                    case TimerSaved() if last[effect.key] == index:
                        stored = self._stored.get(effect.key)
                        if stored is not None and stored <= effect.deadline <= stored + MOVE_SLACK:
                            self._moves[effect.key] = effect
                        else:
                            self._moves.pop(effect.key, None)
                            await self.store.save_timer(effect.key, effect.owner, effect.deadline, effect.data)
                            self._stored[effect.key] = effect.deadline
                    case TimerDeleted() if last[effect.key] == index:
                        self._moves.pop(effect.key, None)
                        self._stored.pop(effect.key, None)
                        await self.store.delete_timer(effect.key)
                    case AlertChanged():
                        await self._alert(effect)
                    case Notify():
                        task = tg.create_task(self._notify(effect), name=f"notify-{effect.alert_id}")
                        self._sending.add(task)
                        task.add_done_callback(self._sending.discard)
                    case Act():
                        await self._act(effect)
                    case RuleChanged(view=view):
                        await self._link().set_retained(self.topics.rule(view.id), view.model_dump_json().encode())
                    case ModeChanged(state=state):
                        await self._on_mode(state)
            except StoreError as exc:
                # Kept in memory and published all the same; the store error is logged there.
                self.counters["store_failed"] += 1
                log.error("rules: could not store %s: %s", type(effect).__name__, exc)

    async def _alert(self, effect: AlertChanged) -> None:
        view = effect.view
        body = {**view.model_dump(mode="json"), "_book": effect.book}
        # Stored and audited before anyone sees it: what a caregiver sees survives a crash.
        try:
            await self.store.save_alert(
                view.id, view.rule_id, view.room, view.severity, view.state, view.raised_at, body
            )
            for row in effect.audits:
                await self.store.audit(view.id, row.transition, row.actor, row.channel, row.note, row.ts)
        finally:
            topic = self.topics.alert(view.id)
            if effect.open:
                await self._link().set_retained(topic, view.model_dump_json().encode())
            else:
                await self._link().clear_retained(topic)
            await self._transitions(effect)
        if any(row.transition == "raised" for row in effect.audits):
            log.warning("alert %s raised: %s", view.id, view.message.get("en", ""))

    async def _transitions(self, effect: AlertChanged) -> None:
        # Every audited transition is also a hub event: logged like the others and told on `events`.
        view = effect.view
        for row in effect.audits:
            event = AlertTransition(
                ts=row.ts,
                alert_id=view.id,
                rule_id=view.rule_id,
                rule_kind=view.rule_kind,
                room=view.room,
                severity=view.severity,
                state=view.state,
                transition=row.transition,
                actor=row.actor,
                channel=row.channel,
                note=row.note,
            )
            self.store.record_event(event)
            await self._link().publish(self.topics.events, EVENT_ADAPTER.dump_json(event))

    async def _notify(self, effect: Notify) -> None:
        alert = self.engine.book.get(effect.alert_id)
        if alert is None:
            return
        deliveries = await self.notifier.tell_tier(effect.tier, alert.view(), effect.reason)
        if not deliveries:
            self.counters["nobody_to_tell"] += 1
            log.error("alert %s: nobody to tell in tier %s", effect.alert_id, effect.tier)
            return
        self.engine.now = max(self.engine.now, self.clock.now())
        self.engine.book.delivered(effect.alert_id, deliveries, self.engine.now)
        self._kick()

    async def _act(self, effect: Act) -> None:
        try:
            await self._command(effect.device_id, effect.values, f"rule:{effect.rule_id}")
        except CommandRefused as exc:
            self.counters["action_refused"] += 1
            log.warning("rule %s could not set %s on %s: %s", effect.rule_id, effect.values, effect.device_id, exc)
