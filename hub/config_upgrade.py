"""Upgrades devices.yaml written for an older hub to today's schema, keeping the original beside it.

Each step is a pure function on the round-trip YAML tree (comments and order kept) that takes
the file from version N to N+1. A file newer than this hub knows is refused: guessing at a
future schema could silently drop a caregiver or a rule.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from hub.config import Config, ConfigError, Problem, load_config, load_config_text

log = logging.getLogger(__name__)

CURRENT_VERSION = 1


def _rename(tree: Any, old: str, new: str) -> list[str]:
    """Rename a key in place (same position, value kept); a note of what changed."""
    if not isinstance(tree, CommentedMap) or old not in tree or new in tree:
        return []
    keys = list(tree.keys())
    at = keys.index(old)
    comment = tree.ca.items.pop(old, None)  # the end-of-line comment and blank lines after it
    value = tree.pop(old)
    tree.insert(at, new, value)
    if comment is not None:
        tree.ca.items[new] = comment
    return [f"'{old}' is now '{new}'"]


def _broker_to_mqtt(tree: CommentedMap) -> list[str]:
    """Version 0's `broker: {host, port, tls, user}` became `mqtt: {url, username}`."""
    broker = tree.get("broker")
    if not isinstance(broker, CommentedMap) or "mqtt" in tree:
        return []
    host = broker.pop("host", None)
    port = broker.pop("port", None)
    tls = bool(broker.pop("tls", False))
    _rename(broker, "user", "username")
    if host is not None:
        scheme = "mqtts" if tls else "mqtt"
        url = f"{scheme}://{host}" + (f":{port}" if port is not None else "")
        broker.insert(0, "url", url)
    _rename(tree, "broker", "mqtt")
    return ["'broker: {host, port, tls, user}' is now 'mqtt: {url, username}'"]


def _v0_to_v1(tree: CommentedMap) -> list[str]:
    """Hub 0.0.x files: broker/host/port, home.tz, people.carers with level, devices[].location."""
    notes = _broker_to_mqtt(tree)
    notes += _rename(tree.get("home"), "tz", "timezone")
    people = tree.get("people")
    notes += _rename(people, "carers", "caregivers")
    for carer in (people or {}).get("caregivers") or ():
        notes += _rename(carer, "level", "tier")
    for device in tree.get("devices") or ():
        notes += _rename(device, "location", "room")
    return sorted(set(notes))


# version N -> the step that makes it N+1
STEPS: dict[int, Callable[[CommentedMap], list[str]]] = {0: _v0_to_v1}


@dataclass(frozen=True)
class Upgraded:
    """The text of a devices.yaml brought to the current version, and what was changed."""

    text: str
    from_version: int
    notes: list[str]


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the installer's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)  # the "  - id: …" style of the shipped file
    return yaml


def file_version(tree: object) -> int | None:
    """The `version` of a parsed file: missing means 1 (hub 0.1 wrote none); None if not an int."""
    if not isinstance(tree, CommentedMap):
        return None
    version = tree.get("version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def upgrade_text(text: str, filename: str = "devices.yaml") -> Upgraded | None:
    """The file upgraded to the current version, None when it needs nothing (or cannot be read).

    Raises ConfigError for a file newer than this hub: a downgrade is refused.
    """
    try:
        tree = _yaml().load(text)
    except (YAMLError, ValueError, TypeError, RecursionError):
        return None  # the loader reports the syntax error with its position
    version = file_version(tree)
    if version is None or version == CURRENT_VERSION:
        return None
    if version > CURRENT_VERSION:
        raise ConfigError(
            [
                Problem(
                    filename,
                    0,
                    0,
                    f"this file is version {version}, written for a newer hub; this hub reads up to version "
                    f"{CURRENT_VERSION}. A downgrade is refused: install the newer hub again, or use the "
                    f"{Path(filename).name}.v{CURRENT_VERSION}.bak that its upgrade kept",
                )
            ]
        )
    notes: list[str] = []
    for step in range(version, CURRENT_VERSION):
        if step not in STEPS:
            raise ConfigError([Problem(filename, 0, 0, f"version {step} files cannot be upgraded by this hub")])
        notes += STEPS[step](tree)
    tree["version"] = CURRENT_VERSION
    out = io.StringIO()
    _yaml().dump(tree, out)
    return Upgraded(out.getvalue(), version, notes)


def backup_path(path: Path, version: int) -> Path:
    """Where the original of an upgraded file is kept: devices.yaml.v<N>.bak (never overwritten)."""
    candidate = path.with_name(f"{path.name}.v{version}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.v{version}.bak.{n}")
        n += 1
    return candidate


def load_upgrading(path: Path) -> tuple[Config, list[str]]:
    """Load devices.yaml, upgrading an older file on disk first (original kept); notes for the user.

    When the file cannot be rewritten (read-only /etc under systemd), the upgraded content is
    used in memory and a note says to run `hub install` or `hub check` as root to write it.
    """
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return load_config(path), []  # the loader names the problem precisely
    upgraded = upgrade_text(text, str(path))
    if upgraded is None:
        return load_config(path), []
    config = load_config_text(upgraded.text, str(path), base_dir=path.parent)  # valid before it is written
    done = f"{path}: upgraded from version {upgraded.from_version} to {CURRENT_VERSION} ({'; '.join(upgraded.notes)})"
    try:
        kept = backup_path(path, upgraded.from_version)
        kept.write_bytes(data)
        tmp = path.with_name(f".{path.name}.upgrading")
        tmp.write_text(upgraded.text, encoding="utf-8")
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("devices.yaml upgraded in memory only: %s", exc)
        return config, [
            f"{done}, in memory only: cannot write {path} ({exc.strerror or exc}); "
            "run `hub check` on it as root to upgrade the file"
        ]
    return config, [f"{done}; the original is kept as {kept}"]
