"""Alerts: one object per (rule, room) with its lifecycle, repeat counter, rate limit and escalation ladder.

Lifecycle (RULES.md): raised → notified → acknowledged → resolved, or cancelled_by_resident, or
expired. The book is pure: it changes alerts and writes effects (store, audit, publish, notify,
timers) to an outbox that its shell carries out in order, so an alert is stored before its timer
is forgotten and a restart can neither lose nor repeat it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.api import AlertState, AlertView, Delivery, Language, Severity
from hub.config import Alerts as AlertSettings
from hub.rules.effects import AlertChanged, AuditRow, Effect, Notify, Timers

log = logging.getLogger(__name__)

RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}
CLOSED: frozenset[AlertState] = frozenset({"resolved", "cancelled_by_resident", "expired"})
OWNER = "alerts"
KEEP_CLOSED = 200  # closed alerts kept in memory so that late deliveries are still recorded


@dataclass(frozen=True, slots=True)
class AlertRequest:
    """What a rule asks for: an alert about (rule, room) with its words and how to treat it."""

    rule_id: str
    rule_kind: str
    room: str | None
    severity: Severity
    message: dict[Language, str]
    advice: dict[Language, str]
    device_ids: tuple[str, ...] = ()
    resident_first: timedelta | None = None
    # What caused it (a timer key and deadline): the same cause never raises twice, even
    # when a restart replays a timer whose alert was already stored.
    trigger: str | None = None


@dataclass(frozen=True, slots=True)
class Ladder:
    """The escalation settings: who is asked, how long each step waits, how often."""

    tiers: tuple[int, ...]
    ack: timedelta
    critical_ack: timedelta
    renotify: int
    rounds: int
    critical_repeat: timedelta
    rate_limit: timedelta
    expire: timedelta
    resident_first: bool

    @classmethod
    def from_settings(cls, settings: AlertSettings, tiers: tuple[int, ...]) -> Ladder:
        """The ladder for a config's alert settings and caregiver tiers."""
        return cls(
            tiers=tuple(sorted(set(tiers))),
            ack=timedelta(minutes=settings.ack_minutes),
            critical_ack=timedelta(minutes=settings.critical_ack_minutes),
            renotify=settings.renotify,
            rounds=settings.rounds,
            critical_repeat=timedelta(minutes=settings.critical_repeat_minutes),
            rate_limit=timedelta(minutes=settings.rate_limit_minutes),
            expire=timedelta(hours=settings.expire_hours),
            resident_first=settings.resident_first,
        )

    @property
    def steps(self) -> tuple[int, ...]:
        """The tier asked at each step: every tier, told 1 + renotify times, the whole chain `rounds` times."""
        return tuple(t for _ in range(self.rounds) for t in self.tiers for _ in range(1 + self.renotify))

    def window(self, severity: Severity) -> timedelta:
        """How long a step waits for an acknowledgement."""
        return self.critical_ack if severity == "critical" else self.ack


@dataclass(slots=True)
class Alert:
    """One alert, mutable inside the book; `view()` is what the hub API shows."""

    id: str
    rule_id: str
    rule_kind: str
    room: str | None
    severity: Severity
    state: AlertState
    raised_at: datetime
    updated_at: datetime
    message: dict[Language, str]
    advice: dict[Language, str]
    device_ids: tuple[str, ...] = ()
    count: int = 1
    escalation_step: int = 0
    tier: int | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_channel: str | None = None
    note: str | None = None
    ack_seconds: float | None = None
    # book-keeping, stored beside the view
    condition: bool = True
    resident_stage: bool = False
    triggers: list[str] = field(default_factory=list)

    def view(self) -> AlertView:
        """The alert as published on alerts/<id>."""
        return AlertView(
            id=self.id,
            rule_id=self.rule_id,
            rule_kind=self.rule_kind,
            room=self.room,
            severity=self.severity,
            state=self.state,
            raised_at=self.raised_at,
            updated_at=self.updated_at,
            count=self.count,
            escalation_step=self.escalation_step,
            tier=self.tier,
            deliveries=tuple(self.deliveries),
            acknowledged_by=self.acknowledged_by,
            acknowledged_at=self.acknowledged_at,
            ack_channel=self.ack_channel,
            note=self.note,
            ack_seconds=self.ack_seconds,
            device_ids=self.device_ids,
            message=self.message,
            advice=self.advice,
        )

    def book(self) -> dict[str, Any]:
        """What the store keeps beside the view, to rebuild the alert after a restart."""
        return {"condition": self.condition, "resident_stage": self.resident_stage, "triggers": self.triggers[-20:]}

    @classmethod
    def from_stored(cls, body: dict[str, Any]) -> Alert:
        """Rebuild an alert from its stored body (the view plus `_book`)."""
        data = dict(body)
        book = data.pop("_book", {})
        view = AlertView.model_validate(data)
        return cls(
            id=view.id,
            rule_id=view.rule_id,
            rule_kind=view.rule_kind,
            room=view.room,
            severity=view.severity,
            state=view.state,
            raised_at=view.raised_at,
            updated_at=view.updated_at,
            message=dict(view.message),
            advice=dict(view.advice),
            device_ids=view.device_ids,
            count=view.count,
            escalation_step=view.escalation_step,
            tier=view.tier,
            deliveries=list(view.deliveries),
            acknowledged_by=view.acknowledged_by,
            acknowledged_at=view.acknowledged_at,
            ack_channel=view.ack_channel,
            note=view.note,
            ack_seconds=view.ack_seconds,
            condition=bool(book.get("condition", True)),
            resident_stage=bool(book.get("resident_stage", False)),
            triggers=[str(t) for t in book.get("triggers", [])],
        )


class AlertError(KeyError):
    """An acknowledgement or change that names no open alert."""


class AlertBook:
    """Every open alert, one per (rule, room), with the escalation ladder run on the shared timers."""

    def __init__(self, ladder: Ladder, timers: Timers, out: list[Effect], *, notify: bool = True) -> None:
        self.ladder = ladder
        self.timers = timers
        self.out = out
        self.notify = notify
        self.open: dict[str, Alert] = {}
        self.closed: dict[str, Alert] = {}
        self.by_key: dict[tuple[str, str | None], str] = {}
        self.last_raised: dict[tuple[str, str | None], tuple[datetime, int]] = {}
        self.counters: Counter[str] = Counter()

    # -- queries ---------------------------------------------------------------------

    def find(self, rule_id: str, room: str | None) -> Alert | None:
        """The open alert of a rule in a room."""
        alert_id = self.by_key.get((rule_id, room))
        return self.open.get(alert_id) if alert_id else None

    def get(self, alert_id: str) -> Alert | None:
        """An alert by id, open or recently closed."""
        return self.open.get(alert_id) or self.closed.get(alert_id)

    # -- raising ---------------------------------------------------------------------

    def raise_(self, req: AlertRequest, now: datetime) -> Alert | None:
        """Raise an alert, or bump the open one of the same (rule, room); None when rate-limited or a replay."""
        key = (req.rule_id, req.room)
        current = self.find(*key)
        if current is not None:
            return self._repeat(current, req, now)
        last = self.last_raised.get(key)
        if last is not None and now - last[0] < self.ladder.rate_limit and RANK[req.severity] <= last[1]:
            self.counters["rate_limited"] += 1
            log.info("alert %s/%s rate-limited (last raised %s)", req.rule_id, req.room, last[0].isoformat())
            return None
        alert = Alert(
            id=self._new_id(req, now),
            rule_id=req.rule_id,
            rule_kind=req.rule_kind,
            room=req.room,
            severity=req.severity,
            state="raised",
            raised_at=now,
            updated_at=now,
            message=dict(req.message),
            advice=dict(req.advice),
            device_ids=req.device_ids,
            triggers=[req.trigger] if req.trigger else [],
        )
        self.open[alert.id] = alert
        self.by_key[key] = alert.id
        self.last_raised[key] = (now, RANK[req.severity])
        self.counters[f"raised.{req.severity}"] += 1
        audits = [AuditRow("raised", now, note=req.severity)]
        if req.severity == "info":
            # Info goes to the daily digest only: never sent, closed after a while.
            self.timers.arm(self._key(alert), OWNER, now + self.ladder.expire, {"stage": "expire"})
        elif req.resident_first and self.ladder.resident_first:
            alert.resident_stage = True
            audits.append(AuditRow("resident_prompt", now, note=f"{int(req.resident_first.total_seconds())} s"))
            self.timers.arm(self._key(alert), OWNER, now + req.resident_first, {"stage": "resident"})
        self._emit(alert, audits)
        if req.severity != "info" and not alert.resident_stage:
            self._step(alert, 1, now)
        return alert

    def _repeat(self, alert: Alert, req: AlertRequest, now: datetime) -> Alert | None:
        if req.trigger and req.trigger in alert.triggers:
            self.counters["replayed_trigger"] += 1
            return None
        if req.trigger:
            alert.triggers.append(req.trigger)
        alert.count += 1
        alert.updated_at = now
        alert.condition = True
        alert.message, alert.advice = dict(req.message), dict(req.advice)
        alert.device_ids = tuple(dict.fromkeys((*alert.device_ids, *req.device_ids)))
        if RANK[req.severity] <= RANK[alert.severity]:
            self._emit(alert, [AuditRow("repeat", now, note=f"count {alert.count}")])
            return alert
        # Worse than before: the ladder starts again at tier 1 with the new severity's window.
        old = alert.severity
        alert.severity = req.severity
        self.last_raised[(alert.rule_id, alert.room)] = (now, RANK[req.severity])
        self.counters[f"severity_raised.{req.severity}"] += 1
        audits = [AuditRow("severity_raised", now, note=f"{old} -> {req.severity}")]
        still_resident = alert.resident_stage and req.resident_first is not None and req.severity != "critical"
        if alert.state == "acknowledged":
            # Someone is already on it: tell them it got worse, without a new ladder.
            self._emit(alert, audits)
            self._send(alert, 1, None, "severity_raised")
            return alert
        self._emit(alert, audits)
        if not still_resident:
            alert.resident_stage = False
            self._step(alert, 1, now)
        return alert

    def _new_id(self, req: AlertRequest, now: datetime) -> str:
        base = f"{req.rule_id}-{req.room or 'home'}-{now.astimezone(UTC):%Y%m%dT%H%M%S}"
        alert_id, n = base, 1
        while alert_id in self.open or alert_id in self.closed:
            n += 1
            alert_id = f"{base}-{n}"
        return alert_id

    # -- escalation ------------------------------------------------------------------

    def _step(self, alert: Alert, step: int, now: datetime) -> None:
        steps = self.ladder.steps
        if step <= len(steps):
            tier: int | None = steps[step - 1]
            wait = self.ladder.window(alert.severity)
        elif alert.severity == "critical":
            tier, wait = None, self.ladder.critical_repeat  # never silently stops: everyone, again and again
        else:
            self._emit(alert, [AuditRow("escalation_exhausted", now, note=f"after {step - 1} steps")])
            self.timers.arm(self._key(alert), OWNER, now + self.ladder.expire, {"stage": "expire"})
            return
        alert.escalation_step = step
        alert.tier = tier
        alert.updated_at = now
        note = f"step {step}, tier {tier if tier is not None else 'all'}"
        self._emit(alert, [AuditRow("escalated" if step > 1 else "escalation_started", now, note=note)])
        self._send(alert, step, tier, "escalation")
        self.timers.arm(self._key(alert), OWNER, now + wait, {"stage": "step", "step": step + 1})

    def _send(self, alert: Alert, step: int, tier: int | None, reason: str) -> None:
        if alert.severity == "info":
            # RULES.md: info goes to the daily digest only, never to a caregiver's phone.
            self.counters["info_not_sent"] += 1
            return
        if self.notify:
            self.out.append(Notify(alert.id, step, tier, reason))

    def on_timer(self, key: str, data: dict[str, Any], now: datetime) -> None:
        """A deadline of an alert came: the resident did not answer, a step ran out, or it expired."""
        alert = self.open.get(key.removeprefix("alert/"))
        if alert is None:
            return
        stage = data.get("stage")
        if stage == "resident":
            alert.resident_stage = False
            self._emit(alert, [AuditRow("resident_no_answer", now)])
            self._step(alert, 1, now)
        elif stage == "step" and alert.state not in ("acknowledged", *CLOSED):
            self._step(alert, int(data.get("step", alert.escalation_step + 1)), now)
        elif stage == "expire" and alert.state != "acknowledged":
            self._close(alert, "expired", now, [AuditRow("expired", now)])

    def delivered(self, alert_id: str, deliveries: list[Delivery], now: datetime) -> None:
        """Record notification attempts and their results (the alert may have closed meanwhile)."""
        alert = self.get(alert_id)
        if alert is None or not deliveries:
            return
        alert.deliveries.extend(deliveries)
        alert.updated_at = now
        audits = [
            AuditRow(
                "delivery",
                d.at,
                actor=d.caregiver,
                channel=d.channel,
                note="ok" if d.ok else f"failed: {d.error or 'unknown error'}",
            )
            for d in deliveries
        ]
        if alert.state == "raised" and any(d.ok for d in deliveries):
            alert.state = "notified"
            audits.append(AuditRow("notified", now, note=f"tier {alert.tier}" if alert.tier else None))
        self._emit(alert, audits, is_open=alert.id in self.open)

    # -- people and conditions -------------------------------------------------------

    def ack(self, alert_id: str, by: str, channel: str, note: str | None, now: datetime) -> Alert:
        """A caregiver (or, in the resident stage, the resident) acknowledges; AlertError if not open."""
        alert = self.open.get(alert_id)
        if alert is None:
            state = self.closed[alert_id].state if alert_id in self.closed else None
            raise AlertError(f"no open alert '{alert_id}'" + (f" (it is {state})" if state else ""))
        if channel == "resident" and alert.resident_stage:
            self._close(
                alert, "cancelled_by_resident", now, [AuditRow("cancelled_by_resident", now, by, channel, note)]
            )
            return alert
        if alert.state == "acknowledged":
            self._emit(alert, [AuditRow("acknowledged_again", now, by, channel, note)])
            return alert
        alert.state = "acknowledged"
        alert.acknowledged_by, alert.acknowledged_at, alert.ack_channel = by, now, channel
        alert.note = note
        alert.ack_seconds = round((now - alert.raised_at).total_seconds(), 3)
        alert.resident_stage = False
        alert.updated_at = now
        self.timers.disarm(self._key(alert))
        audit = AuditRow("acknowledged", now, by, channel, note or f"after {alert.ack_seconds:.0f} s")
        if not alert.condition:
            self._close(alert, "resolved", now, [audit, AuditRow("resolved", now, note="acknowledged, condition over")])
        else:
            self._emit(alert, [audit])
        return alert

    def clear(self, rule_id: str, room: str | None, now: datetime, note: str | None = None) -> None:
        """The condition of a rule in a room is over: warnings resolve, critical ones wait for a person."""
        alert = self.find(rule_id, room)
        if alert is None or not alert.condition:
            return
        alert.condition = False
        alert.updated_at = now
        if alert.resident_stage:
            # The resident answered by moving, leaving the bathroom, closing the door …
            self._close(alert, "cancelled_by_resident", now, [AuditRow("cancelled_by_resident", now, note=note)])
        elif alert.severity == "critical" and alert.state != "acknowledged":
            self._emit(alert, [AuditRow("condition_cleared", now, note=note or "waiting for a person")])
        else:
            self._close(alert, "resolved", now, [AuditRow("resolved", now, note=note or "condition over")])

    def cancel_by_resident(self, rule_id: str, room: str | None, now: datetime, note: str, tell: bool) -> bool:
        """The resident cancels (an SOS long press): recorded, and caregivers told when `tell`."""
        alert = self.find(rule_id, room)
        if alert is None:
            return False
        self._close(
            alert, "cancelled_by_resident", now, [AuditRow("cancelled_by_resident", now, "resident", note=note)]
        )
        if tell:
            self._send(alert, alert.escalation_step, alert.tier or (self.ladder.tiers or (None,))[0], "cancelled")
        return True

    def reminder(self, rule_id: str, room: str | None, now: datetime, note: str) -> None:
        """A reminder of a still-open alert: counted and audited, not a new alert."""
        alert = self.find(rule_id, room)
        if alert is not None:
            alert.count += 1
            alert.updated_at = now
            self._emit(alert, [AuditRow("reminder", now, note=note)])

    # -- restart ---------------------------------------------------------------------

    def restore(self, bodies: list[dict[str, Any]]) -> None:
        """Put back the open alerts stored before a restart (their timers come back with the others)."""
        for body in bodies:
            try:
                alert = Alert.from_stored(body)
            except (ValueError, TypeError) as exc:
                self.counters["restore_failed"] += 1
                log.error("stored alert %s could not be restored: %s", body.get("id"), exc)
                continue
            self.open[alert.id] = alert
            self.by_key[(alert.rule_id, alert.room)] = alert.id
            self.last_raised[(alert.rule_id, alert.room)] = (alert.updated_at, RANK[alert.severity])

    # -- internals -------------------------------------------------------------------

    @staticmethod
    def _key(alert: Alert) -> str:
        return f"alert/{alert.id}"

    def _close(self, alert: Alert, state: AlertState, now: datetime, audits: list[AuditRow]) -> None:
        alert.state = state
        alert.updated_at = now
        alert.resident_stage = False
        self.timers.disarm(self._key(alert))
        self.open.pop(alert.id, None)
        if self.by_key.get((alert.rule_id, alert.room)) == alert.id:
            del self.by_key[(alert.rule_id, alert.room)]
        self.closed[alert.id] = alert
        while len(self.closed) > KEEP_CLOSED:
            del self.closed[next(iter(self.closed))]
        self.counters[f"closed.{state}"] += 1
        self._emit(alert, audits, is_open=False)

    def _emit(self, alert: Alert, audits: list[AuditRow], *, is_open: bool | None = None) -> None:
        still_open = alert.id in self.open if is_open is None else is_open
        self.out.append(AlertChanged(alert.view(), alert.book(), tuple(audits), still_open))
