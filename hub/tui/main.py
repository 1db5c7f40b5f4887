"""`hub tui` and `hub serve`: turn command-line arguments into a running TUI (or a web server of TUIs)."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.api import Language
from hub.config import Config, load_config
from hub.tui.client import Target, client_settings
from hub.tui.settings import Settings


def _config(args: argparse.Namespace) -> Config | None:
    path: Path = args.config
    if args.url and not path.exists():
        return None
    return load_config(path)


def target_and_settings(args: argparse.Namespace) -> tuple[Target, Settings]:
    """The broker/home to watch and the TUI settings, from `--url/--home` or devices.yaml."""
    config = _config(args)
    lang: Language = args.lang or (config.home.language if config else "en")
    who = args.who or os.environ.get("HUB_TUI_WHO") or getpass.getuser()
    settings = Settings(
        who=who,
        lang=lang,
        theme=args.theme,
        large=args.large,
        plain=args.plain,
        bell=args.bell,
        channel=os.environ.get("HUB_TUI_CHANNEL", "tui"),
    )
    prefix = "hub"
    home_id: str | None = args.home
    if config is not None:
        m = config.mqtt
        url = args.url or m.url or f"mqtt://127.0.0.1:{m.local_port}"
        link = client_settings(
            url,
            username=m.username,
            password=m.password_text(),
            ca_file=m.ca_file,
            cert_file=m.cert_file,
            key_file=m.key_file,
        )
        prefix = m.topic_root
        home_id = home_id or config.home.id
        settings.home_name = config.home.name
        settings.tz = ZoneInfo(config.home.timezone)
        settings.rooms = {r.id: (r.name, r.name_zh) for r in config.rooms}
        settings.people = {c.id: c.name for c in config.people.caregivers}
        settings.device_names_zh = {d.id: d.name_zh for d in config.devices if d.name_zh}
    else:
        link = client_settings(args.url)
    if args.fleet:
        home_id = None
    elif home_id is None:
        raise SystemExit("hub tui: give --home ID with --url (or -c devices.yaml), or --fleet")
    return Target(link, prefix, home_id), settings


def run_tui(args: argparse.Namespace) -> int:
    """Run the TUI in this terminal until q."""
    from hub.tui.app import CaregiverApp

    target, settings = target_and_settings(args)
    CaregiverApp(target, settings).run()
    return 0
