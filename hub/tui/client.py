"""The TUI's only way to the hub: hub API topics over one MQTT link (reads state, publishes requests)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from hub.api import AckRequest, AdoptRequest, HouseMode, IgnoreRequest, ModeRequest, RuleSetRequest, Topics
from hub.mqtt import Link, LinkSettings, LinkStatus
from hub.tui.state import split_topic
from hub.wire import Message

OnMessage = Callable[[str, str, bytes], None]
"""Called with (home id, topic below the home root, payload) for every API message."""


@dataclass(frozen=True)
class Target:
    """Which broker and which home(s) a TUI watches."""

    settings: LinkSettings
    prefix: str = "hub"
    home_id: str | None = None  # None: every home on the broker (fleet)

    def filters(self) -> list[str]:
        """The subscriptions: one home's whole API, or every home's status, mode and alerts."""
        if self.home_id is not None:
            return [f"{self.prefix}/{self.home_id}/#"]
        return [f"{self.prefix}/+/status", f"{self.prefix}/+/mode", f"{self.prefix}/+/alerts/+"]


def client_settings(url: str, **kw: object) -> LinkSettings:
    """Link settings for a TUI: a unique client id, no will (a TUI's presence is nobody's business)."""
    return LinkSettings.from_url(url, client_id=f"hub-tui-{uuid.uuid4().hex[:8]}", **kw)


class ApiClient:
    """Receives a home's (or a fleet's) API messages and publishes caregivers' requests."""

    def __init__(self, target: Target, on_message: OnMessage, on_status: Callable[[LinkStatus], None]) -> None:
        self.target = target
        self._on_message = on_message
        self.link = Link(target.settings, on_status=on_status)
        for pattern in target.filters():
            self.link.subscribe(pattern, self._handle)

    def _handle(self, msg: Message) -> None:
        split = split_topic(msg.topic, self.target.prefix)
        if split is not None:
            self._on_message(split[0], split[1], msg.payload)

    async def run(self) -> None:
        """Stay connected until cancelled."""
        await self.link.run()

    def topics(self, home_id: str) -> Topics:
        """The API topics of one home."""
        return Topics.for_home(home_id, self.target.prefix)

    async def _request(self, topic: str, request: BaseModel) -> None:
        await self.link.publish(topic, request.model_dump_json(exclude_none=True), qos=1)

    async def ack(self, home_id: str, alert_id: str, by: str, note: str | None, channel: str) -> None:
        """Acknowledge an alert as `by`."""
        request = AckRequest(by=by, note=note or None, channel=channel)
        await self._request(f"{self.topics(home_id).alert(alert_id)}/ack", request)

    async def adopt(self, home_id: str, device_id: str, name: str | None, room: str | None) -> None:
        """Adopt a pending device with a name and a room."""
        await self._request(f"{self.topics(home_id).inbox(device_id)}/adopt", AdoptRequest(name=name, room=room))

    async def ignore(self, home_id: str, device_id: str) -> None:
        """Keep a pending device out of the home."""
        await self._request(f"{self.topics(home_id).inbox(device_id)}/ignore", IgnoreRequest())

    async def rule_set(self, home_id: str, rule_id: str, *, enabled: bool | None, snooze_minutes: int | None) -> None:
        """Enable, disable or snooze a rule."""
        request = RuleSetRequest(enabled=enabled, snooze_minutes=snooze_minutes)
        await self._request(f"{self.topics(home_id).rule(rule_id)}/set", request)

    async def mode_set(self, home_id: str, mode: HouseMode, until: datetime | None, by: str) -> None:
        """Change the house mode."""
        await self._request(self.topics(home_id).mode_set, ModeRequest(mode=mode, until=until, by=by))
