"""Notification fan-out to caregivers through apprise, with one recorded result per attempt.

Apprise is blocking (it uses requests), so every send runs in a worker thread. A caregiver's
channels are tried in order until one succeeds: a failed channel falls back to the next one.
Notification URLs carry secrets (tokens, passwords): they are never logged or stored; records
name only the URL's scheme. Apprise is loaded when a caregiver has a channel, at start: a home
without one never pays for it, and one with a broken install learns it then, not at an alarm.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from hub.api import AlertView, Delivery, Language
from hub.clock import Clock
from hub.config import Caregiver

log = logging.getLogger(__name__)
# Apprise logs the URLs it loads at debug level; they hold tokens. Keep its log to warnings.
logging.getLogger("apprise").setLevel(logging.WARNING)

_URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_LEVEL = re.compile(r" - (?:WARNING|ERROR|CRITICAL) - ")
SEVERITY_WORDS: dict[str, dict[Language, str]] = {
    "critical": {"zh-CN": "[!!] 紧急", "en": "[!!] CRITICAL"},
    "warning": {"zh-CN": "[!] 警告", "en": "[!] WARNING"},
    "info": {"zh-CN": "[i] 提示", "en": "[i] INFO"},
}
REASON_WORDS: dict[str, dict[Language, str]] = {
    "escalation": {"zh-CN": "", "en": ""},
    "severity_raised": {"zh-CN": "（情况加重）", "en": " (worse now)"},
    "cancelled": {"zh-CN": "（老人已取消）", "en": " (cancelled by the resident)"},
}
ACK_HINT: dict[Language, str] = {
    "zh-CN": "请在看护终端确认（回车键），告警编号 {id}。",
    "en": "Acknowledge it in the caregiver TUI (Enter); alert id {id}.",
}


def scheme(url: str) -> str:
    """The channel name of a notification URL: its scheme only (never the secret parts)."""
    return url.split("://", 1)[0].lower()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """A message with every URL and every given secret replaced, fit for a log or a record."""
    out = _URLISH.sub("<url>", text)
    for secret in secrets:
        for part in {secret, *re.split(r"[/?&=@:]+", secret.split("://", 1)[-1])}:
            if len(part) >= 6:
                out = out.replace(part, "<secret>")
    return out


def send_blocking(url: str, title: str, body: str) -> str | None:
    """Send one notification (blocking); None when it went out, else why not (secrets removed)."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        return "not a notification URL apprise understands"
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]  # untyped in apprise
        ok = sender.notify(title=title, body=body)
    if ok:
        return None
    # Captured lines read "<time> - WARNING - <what>": keep what happened.
    lines = [_LEVEL.split(line, 1)[-1].strip() for line in captured.getvalue().splitlines() if line.strip()]
    reason = lines[-1] if lines else "the service refused it or could not be reached"
    return redact(reason, [url])[:300]


@dataclass(frozen=True, slots=True)
class Text:
    """A notification's title and body in one language."""

    title: str
    body: str


def compose(alert: AlertView, lang: Language, reason: str = "escalation") -> Text:
    """The words of a notification about an alert, in the caregiver's language."""
    words = SEVERITY_WORDS[alert.severity][lang] + REASON_WORDS.get(reason, REASON_WORDS["escalation"])[lang]
    message = alert.message.get(lang) or next(iter(alert.message.values()), alert.rule_id)
    advice = alert.advice.get(lang, "")
    body = "\n".join(part for part in (message, advice, ACK_HINT[lang].format(id=alert.id)) if part)
    return Text(f"{words} {message}"[:250], body)


class Notifier:
    """Tells caregivers about alerts, tier by tier, each over their channels in order."""

    def __init__(self, caregivers: Iterable[Caregiver], language: Language, clock: Clock) -> None:
        self.caregivers = tuple(caregivers)
        if any(c.notify for c in self.caregivers):
            importlib.import_module("apprise")
        self.language = language
        self.clock = clock
        self.counters: Counter[str] = Counter()

    def tier(self, tier: int | None) -> list[Caregiver]:
        """The caregivers of a tier (every caregiver when tier is None)."""
        return [c for c in self.caregivers if tier is None or c.tier == tier]

    async def tell_tier(self, tier: int | None, alert: AlertView, reason: str = "escalation") -> list[Delivery]:
        """Tell every caregiver of a tier at once; every attempt with its result."""
        results = await asyncio.gather(*(self.tell(c, alert, reason) for c in self.tier(tier)))
        return [d for attempts in results for d in attempts]

    async def tell(self, caregiver: Caregiver, alert: AlertView, reason: str = "escalation") -> list[Delivery]:
        """Try a caregiver's channels in order until one works; one Delivery per attempt."""
        text = compose(alert, caregiver.language or self.language, reason)
        attempts: list[Delivery] = []
        for url in caregiver.notify:
            try:
                error = await asyncio.to_thread(send_blocking, url, text.title, text.body)
            except Exception as exc:  # a plugin bug must not stop the next channel
                error = redact(f"{type(exc).__name__}: {exc}", [url])[:300]
            attempts.append(
                Delivery(
                    caregiver=caregiver.id,
                    tier=caregiver.tier,
                    channel=scheme(url),
                    at=self.clock.now(),
                    ok=error is None,
                    error=error,
                )
            )
            if error is None:
                self.counters["sent"] += 1
                log.info("alert %s told to %s over %s", alert.id, caregiver.id, scheme(url))
                break
            self.counters["failed"] += 1
            log.warning("alert %s: %s over %s failed: %s", alert.id, caregiver.id, scheme(url), error)
        else:
            if caregiver.notify:
                self.counters["caregiver_unreached"] += 1
                log.error("alert %s: no channel of %s worked", alert.id, caregiver.id)
        return attempts
