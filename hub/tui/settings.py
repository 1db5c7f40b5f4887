"""How one TUI runs: who watches, in which language and look, with names from devices.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo

from hub.api import Language


@dataclass
class Settings:
    """How one TUI runs: who is watching, language, look, and names from devices.yaml when given."""

    who: str
    lang: Language = "en"
    theme: str = "dark"
    large: bool = False
    plain: bool = False
    bell: bool = False
    channel: str = "tui"
    home_name: str = ""
    tz: tzinfo | None = None
    rooms: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)
    device_names_zh: dict[str, str] = field(default_factory=dict)
