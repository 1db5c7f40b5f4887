"""Notification words and secrecy: what a caregiver reads, and no URL or token in any record."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from hub.api import AlertView
from hub.notify import compose, redact, scheme, send_blocking

ALERT = AlertView(
    id="bathroom_too_long-bathroom-20260302T151000",
    rule_id="bathroom_too_long",
    rule_kind="bathroom_too_long",
    room="bathroom",
    severity="warning",
    state="raised",
    raised_at=datetime(2026, 3, 2, 15, 10, tzinfo=UTC),
    updated_at=datetime(2026, 3, 2, 15, 10, tzinfo=UTC),
    message={
        "zh-CN": "卫生间有人已 25 分钟，超过夜间 20 分钟上限（23:10 进入）",
        "en": "Bathroom occupied for 25 min, over the 20 min night limit (since 23:10)",
    },
    advice={"zh-CN": "请呼叫或打电话。", "en": "Call out or phone."},
)


def test_compose_in_each_language_with_what_to_do_and_the_alert_id() -> None:
    zh = compose(ALERT, "zh-CN")
    assert zh.title.startswith("[!] 警告 卫生间有人已 25 分钟")
    assert "请呼叫或打电话。" in zh.body
    assert ALERT.id in zh.body
    en = compose(ALERT, "en", "severity_raised")
    assert en.title.startswith("[!] WARNING (worse now) Bathroom occupied for 25 min")


def test_secrets_never_leave_in_records() -> None:
    url = "dingtalk://s3cr3ttoken123/?secret=abcdef987"
    assert scheme(url) == "dingtalk"
    text = f"Failed to send to {url} with token s3cr3ttoken123"
    cleaned = redact(text, [url])
    assert "s3cr3ttoken123" not in cleaned
    assert "abcdef987" not in cleaned
    assert send_blocking("nonsense://x", "t", "b") == "not a notification URL apprise understands"


def test_apprise_is_loaded_at_start_only_for_a_home_with_a_channel() -> None:
    code = (
        "import sys\n"
        "from hub.clock import RealClock\n"
        "from hub.config import Caregiver\n"
        "from hub.notify import Notifier\n"
        "Notifier([Caregiver(id='li', name='Li', tier=1)], 'en', RealClock())\n"
        "print('apprise' in sys.modules)\n"
        "Notifier([Caregiver(id='li', name='Li', tier=1, notify=('json://127.0.0.1:9/',))], 'en', RealClock())\n"
        "print('apprise' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
