"""The `hub` subcommands for living on a home box: install, uninstall, backup, restore, status.

Handlers only; hub/cli.py's COMMANDS table registers them. Heavy modules are imported inside
the handlers so that `hub check` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.config import Config
    from hub.store import StoreError

Arg = tuple[tuple[str, ...], dict[str, Any]]


def _cli() -> Any:
    import hub.cli  # the shared helpers: config loading with located errors, the data folder

    return hub.cli


def _store_url(config: Config, data_dir: Path) -> str:
    return config.store.url or f"sqlite:///{data_dir / 'hub.db'}"


def _backup_dir(config: Config, data_dir: Path) -> Path:
    return data_dir / (config.backup.dir or "backups")


def store_refused(exc: StoreError, config: Config, data_dir: Path) -> int:
    """`hub run` could not open the store: say why and which backup to restore; exit 1."""
    from hub.backup import newest_backup

    print(f"hub: cannot start: {exc}", file=sys.stderr)
    newest = newest_backup(_backup_dir(config, data_dir))
    if newest is None:
        print(f"hub: no backup found in {_backup_dir(config, data_dir)}", file=sys.stderr)
    else:
        print(f"hub: the newest backup is {newest}; restore it with: hub restore {newest}", file=sys.stderr)
    return 1


def cmd_install(args: argparse.Namespace) -> int:
    """`hub install`: the hub as a systemd service (and Mosquitto for the home), idempotent."""
    from hub import install

    opts = install.Options(
        root=Path(args.root),
        user=args.user,
        config_source=args.config,
        hub_command=args.hub_command or install.hub_command(),
        with_mosquitto=args.with_mosquitto,
        mqtt_port=args.mqtt_port,
        local_port=args.local_port or None,
        bridges=tuple(args.bridge or ()),
        hostnames=tuple(args.hostname or ()),
        mosquitto_user=args.mosquitto_user,
        start=not args.no_start,
    )
    config, text, notes = install.load_for_install(opts)
    try:
        plan = install.plan_install(opts, config, text)
    except ValueError as exc:
        print(f"hub install: {exc}", file=sys.stderr)
        return 2
    plan.notes[:0] = notes
    if args.dry_run:
        print(install.render_plan(plan))
        return 0
    print("\n".join(install.apply(plan, opts.root)))
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    """`hub uninstall`: remove the service; the home's config and data stay unless --purge-data."""
    from hub import install

    print("\n".join(install.uninstall(Path(args.root), args.purge_data, args.dry_run)))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """`hub backup`: one file with the config, a database snapshot and the hub version."""
    from hub.backup import BackupError, create_backup, record_outcome

    cli = _cli()
    config = cli._load(args.config)
    data_dir = cli._data_dir(args)
    folder = Path(args.to) if args.to else _backup_dir(config, data_dir)
    try:
        path = create_backup(_store_url(config, data_dir), args.config, config, folder)
    except BackupError as exc:
        print(f"hub backup: {exc}", file=sys.stderr)
        return 1
    if not args.to:
        record_outcome(folder, _now(), path, None)
    print(path)
    return 0


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def cmd_restore(args: argparse.Namespace) -> int:
    """`hub restore FILE`: bring this box to a backup's state (stop the hub first)."""
    from hub.backup import BackupError, read_manifest, restore_backup

    cli = _cli()
    try:
        manifest = read_manifest(args.file)
    except BackupError as exc:
        print(f"hub restore: {exc}", file=sys.stderr)
        return 1
    data_dir = cli._data_dir(args)
    # The store named by the backup's own config wins over the box's (a PostgreSQL home).
    store_url = args.store_url or f"sqlite:///{data_dir / 'hub.db'}"
    try:
        done = restore_backup(args.file, store_url, args.config)
    except BackupError as exc:
        print(f"hub restore: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {args.file} (home {manifest.home_id}, hub {manifest.hub_version}, "
        f"taken {manifest.created_at:%Y-%m-%d %H:%M} UTC) into {done.database}"
    )
    for path in done.config_files:
        print(f"  wrote {path}")
    for path in done.kept_aside:
        print(f"  kept the previous {path}")
    print("  rows: " + ", ".join(f"{k} {v}" for k, v in sorted(done.rows.items())))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """`hub status`: broker, devices, alerts, backups, disk, database; exit 0 OK, 1 warning, 2 critical."""
    from hub.boxstatus import gather, render

    cli = _cli()
    config = cli._load(args.config)
    data_dir = cli._data_dir(args)
    report = asyncio.run(gather(config, data_dir, _store_url(config, data_dir), args.timeout))
    print(report.to_json() if args.json else render(report))
    return report.level()


_ROOT: Arg = (("--root",), {"default": "/", "help": "install into this folder instead of / (tests, images)"})
_DRY: Arg = (("--dry-run",), {"action": "store_true", "help": "print every file and command, change nothing"})

INSTALL_ARGS: list[Arg] = [
    _ROOT,
    _DRY,
    (("-c", "--config"), {"type": Path, "help": "devices.yaml to install when the box has none"}),
    (("--user",), {"default": "hub", "help": "the service's system user (default: %(default)s)"}),
    (("--with-mosquitto",), {"action": "store_true", "help": "configure Mosquitto: TLS, a password per client, ACL"}),
    (("--mqtt-port",), {"type": int, "default": 8883, "help": "TLS listener (default: %(default)s)"}),
    (("--local-port",), {"type": int, "default": 1883, "help": "loopback listener for bridges; 0: none"}),
    (("--bridge",), {"action": "append", "help": "a device bridge login, NAME or NAME:TOPIC_PREFIX (repeatable)"}),
    (("--hostname",), {"action": "append", "help": "extra name or address in the broker certificate"}),
    (("--mosquitto-user",), {"help": "a `user` line for Mosquitto (tests run it as root)"}),
    (("--hub-command",), {"help": "the hub executable for ExecStart (default: this installation's)"}),
    (("--no-start",), {"action": "store_true", "help": "do not enable or start the services"}),
]
UNINSTALL_ARGS: list[Arg] = [
    _ROOT,
    _DRY,
    (("--purge-data",), {"action": "store_true", "help": "also delete the home's config, history and backups"}),
]
BACKUP_ARGS: list[Arg] = [(("--to",), {"help": "folder for the backup file (default: the data folder's backups/)"})]
RESTORE_ARGS: list[Arg] = [
    (("file",), {"type": Path, "help": "the backup file"}),
    (("--store-url",), {"help": "restore into this database (default: SQLite in the data folder)"}),
]
STATUS_ARGS: list[Arg] = [
    (("--json",), {"action": "store_true", "help": "the report as JSON"}),
    (("--timeout",), {"type": float, "default": 5.0, "help": "seconds to wait for the broker (default: %(default)s)"}),
]
