"""The `hub` command: run the hub, check devices.yaml, export and purge the home's data."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub import __version__, boxcli

if TYPE_CHECKING:  # imported lazily below so that `hub check` starts fast
    from hub.config import Config
    from hub.store import Store
    from hub.supervisor import Hub

DEFAULT_CONFIG = Path("devices.yaml")

log = logging.getLogger("hub")


def _data_dir(args: argparse.Namespace) -> Path:
    """The data folder: --data-dir, else $HUB_DATA_DIR, else the XDG data home."""
    if args.data_dir:
        return Path(args.data_dir)
    if env := os.environ.get("HUB_DATA_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "eldercare-hub"


def _load(path: Path) -> Config:
    """Load devices.yaml, or print every problem and exit 2."""
    from hub.config import ConfigError, format_problems, load_config
    from hub.config_upgrade import load_upgrading
    from hub.rules.spec import config_problems

    try:
        config, notes = load_upgrading(path)  # an older file is upgraded, its original kept
        if config_problems(config):
            load_config(path, checks=[config_problems])  # the rules' mistakes, located in the file
    except ConfigError as err:
        print(format_problems(err), file=sys.stderr)
        print(f"{len(err.problems)} problem(s) in {path}; nothing was started.", file=sys.stderr)
        raise SystemExit(2) from None
    for note in notes:
        print(note, file=sys.stderr)
    return config


def cmd_check(args: argparse.Namespace) -> int:
    """`hub check [FILE]`: report every mistake in devices.yaml with file:line:column."""
    from hub.config import summary

    config = _load(args.config)
    print(f"{args.config}: OK")
    print(summary(config))
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    """`hub discover`: what advertises itself over mDNS now, or why nothing does (exit 1 when nothing)."""
    from hub import mdns

    interfaces: list[str] = list(args.interface or [])
    if not interfaces and args.config.is_file():
        interfaces = list(_load(args.config).discovery.mdns.interfaces)
    report = asyncio.run(mdns.discover(interfaces, args.seconds))
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print(mdns.report_text(report))
    return 0 if report.found else 1


def cmd_schema(args: argparse.Namespace) -> int:
    """`hub schema`: print the JSON schema of devices.yaml for editors."""
    from hub.config import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def _hub(args: argparse.Namespace) -> Hub:
    from hub.supervisor import Hub, Paths

    config = _load(args.config)
    if getattr(args, "interface", None):
        # --interface overrides discovery.mdns.interfaces for this run only.
        mdns = config.discovery.mdns.model_copy(update={"interfaces": tuple(args.interface)})
        config = config.model_copy(update={"discovery": config.discovery.model_copy(update={"mdns": mdns})})
    return Hub(config, Paths(_data_dir(args), config_path=args.config))


def cmd_run(args: argparse.Namespace) -> int:
    """`hub run`: run headless until SIGTERM or SIGINT."""
    from hub.store import StoreError
    from hub.supervisor import run_until_signal

    hub = _hub(args)
    try:
        asyncio.run(run_until_signal(hub))
    except StoreError as exc:  # a damaged, newer or half-upgraded database: name the backup
        return boxcli.store_refused(exc, hub.config, _data_dir(args))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`hub demo`: the example home alive (broker, simulated home, hub) with the TUI in the foreground."""
    from hub import demo
    from hub.sim.day import parse_schedule

    try:
        schedule = parse_schedule(args.incident)
    except ValueError as exc:
        print(f"hub demo: {exc}", file=sys.stderr)
        return 2
    options = demo.DemoOptions(
        port=args.port,
        speed=args.speed,
        start=args.start,
        schedule=schedule,
        viewer="text" if args.once else args.viewer,
        mdns=args.mdns,
        seconds=2.0 if args.once else args.seconds,
    )
    return demo.run(_load(args.config), args.config, _data_dir(args), options)


def cmd_sim(args: argparse.Namespace) -> int:
    """`hub sim`: load for tests and benchmarks: N simulated devices sending state at a rate, bounded."""
    from hub.sim.load import LoadPlan, load_main

    plan = LoadPlan(args.devices, args.rate, args.seconds, args.dialect, args.count, not args.no_announce)
    try:
        plan.check()
    except ValueError as exc:
        print(f"hub sim: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(load_main(args.url, plan, f"sim-load-{os.getpid()}"))
    print(
        json.dumps(
            {
                "announced": report.announced,
                "sent": report.sent,
                "seconds": round(report.seconds, 3),
                "rate": round(report.rate, 1),
            }
        )
    )
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    """`hub tui`: the caregiver terminal UI, a client of the hub API over MQTT."""
    from hub.tui.main import run_tui

    return run_tui(args)


def cmd_serve(args: argparse.Namespace) -> int:
    """`hub serve`: the caregiver TUI in a web browser, behind a password or token."""
    from hub.tui.serve import run_serve

    return run_serve(args)


def _store(args: argparse.Namespace) -> Store:
    from hub.store import Store
    from hub.supervisor import Paths

    config = _load(args.config)
    store = Store(config.store.url or Paths(_data_dir(args)).store_url())
    store.open()
    return store


def cmd_export(args: argparse.Namespace) -> int:
    """`hub export [--since DATE]`: write the home's data as JSON lines."""
    store = _store(args)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    n = 0
    try:
        for row in store.export(args.since):
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {n} rows", file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """`hub purge --before DATE`: delete the home's history before a date."""
    store = _store(args)
    if not args.yes:
        print(f"This deletes all history before {args.before.isoformat()}. Add --yes to confirm.", file=sys.stderr)
        return 1
    deleted = asyncio.run(_purge(store, args.before))
    print("deleted: " + ", ".join(f"{k} {v}" for k, v in deleted.items()))
    return 0


async def _purge(store: Store, before: datetime) -> dict[str, int]:
    try:
        return await store.purge_before(before)
    finally:
        await store.close()


def cmd_normalize(args: argparse.Namespace) -> int:
    """`hub normalize CAPTURE`: what the hub makes of recorded MQTT traffic, with coverage figures."""
    from hub.normalize import command

    return command(args.capture, args.config, args.json, args.max_bytes)


def cmd_replay(args: argparse.Namespace) -> int:
    """`hub replay FILE`: the alerts the configured rules would raise over a recording."""
    from hub.replay import command

    code, text = command(
        _load(args.config),
        Path(args.recording),
        as_json=args.json,
        casas_map=args.map,
        fmt=args.format,
        lang=args.lang,
        all_devices=args.all_devices,
    )
    print(text, file=sys.stderr if code else sys.stdout)
    return code


def _time_of_day(text: str) -> time:
    """A time of day argument, HH:MM."""
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a time of day (use HH:MM)") from None


def _date(text: str) -> datetime:
    """A date or date-time argument; naive values are taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date (use YYYY-MM-DD or an ISO date-time)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# An argument: its flags and add_argument's keywords.
Arg = tuple[tuple[str, ...], dict[str, Any]]

INTERFACE_ARG: Arg = (
    ("--interface",),
    {
        "action": "append",
        "help": "IP address or interface name to browse for mDNS (repeatable; default: devices.yaml's "
        "discovery.mdns.interfaces, else every non-loopback interface)",
    },
)

CONFIG_ARGS: list[Arg] = [
    (("-c", "--config"), {"type": Path, "default": DEFAULT_CONFIG, "help": "devices.yaml (default: %(default)s)"}),
    (("--data-dir",), {"help": "data folder (default: $HUB_DATA_DIR or ~/.local/share/eldercare-hub)"}),
]

TUI_ARGS: list[Arg] = [
    (("-c", "--config"), {"type": Path, "default": DEFAULT_CONFIG, "help": "devices.yaml (default: %(default)s)"}),
    (("--url",), {"help": "broker URL mqtt://host:port (instead of the one in devices.yaml)"}),
    (("--home",), {"help": "home id to watch (with --url and no devices.yaml)"}),
    (("--fleet",), {"action": "store_true", "help": "every home on a central broker, grouped by home"}),
    (("--lang",), {"choices": ["zh-CN", "en"], "help": "language (default: the home's, from devices.yaml)"}),
    (("--theme",), {"choices": ["dark", "light"], "default": "dark", "help": "high-contrast theme"}),
    (("--large",), {"action": "store_true", "help": "single-column large layout (also below 60 columns)"}),
    (("--plain",), {"action": "store_true", "help": "plain text without box drawing, for screen readers"}),
    (("--bell",), {"action": "store_true", "help": "ring every 30 s while a critical alert is unacknowledged"}),
    (("--as",), {"dest": "who", "help": "who acknowledges (default: $HUB_TUI_WHO or the login name)"}),
]

# One row per subcommand: name -> (handler, help, arguments).
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str, list[Arg]]] = {
    "run": (cmd_run, "run the hub headless until stopped", [*CONFIG_ARGS, INTERFACE_ARG]),
    "install": (boxcli.cmd_install, "install the hub as a systemd service (as root)", boxcli.INSTALL_ARGS),
    "uninstall": (boxcli.cmd_uninstall, "remove the service, keep the home's data", boxcli.UNINSTALL_ARGS),
    "backup": (boxcli.cmd_backup, "write one backup file of the home", [*CONFIG_ARGS, *boxcli.BACKUP_ARGS]),
    "restore": (boxcli.cmd_restore, "restore a backup file on this box", [*CONFIG_ARGS, *boxcli.RESTORE_ARGS]),
    "status": (boxcli.cmd_status, "health report with an exit code", [*CONFIG_ARGS, *boxcli.STATUS_ARGS]),
    "demo": (
        cmd_demo,
        "run the example home: broker, simulated home, hub, and the caregiver TUI",
        [
            *CONFIG_ARGS,
            (("--once",), {"action": "store_true", "help": "print the status once and stop"}),
            (("--port",), {"type": int, "help": "local broker port (embedded broker if none answers; default 1883)"}),
            (("--incident",), {"default": "sos@20s", "help": "incidents to inject, e.g. sos@20s,fall@2m ('' none)"}),
            (("--speed",), {"type": float, "default": 60.0, "help": "simulated seconds per real second"}),
            (("--start",), {"type": _time_of_day, "default": "06:30", "help": "simulated time of day to start at"}),
            (("--viewer",), {"choices": ["auto", "tui", "text"], "default": "auto", "help": "what to show"}),
            (("--mdns",), {"action": argparse.BooleanOptionalAction, "help": "advertise over mDNS on 127.0.0.1"}),
            (("--seconds",), {"type": float, "help": "stop by itself after this many seconds"}),
        ],
    ),
    "sim": (
        cmd_sim,
        "simulated devices sending state at a rate (load for tests and benchmarks)",
        [
            (("--url",), {"default": "mqtt://127.0.0.1:1883", "help": "broker URL (default: %(default)s)"}),
            (("--devices",), {"type": int, "default": 1000, "help": "how many devices (default: %(default)s)"}),
            (("--rate",), {"type": float, "default": 1000.0, "help": "state messages per second"}),
            (("--seconds",), {"type": float, "default": 10.0, "help": "stop after this long (default: %(default)s)"}),
            (("--count",), {"type": int, "help": "stop after this many state messages"}),
            (
                ("--dialect",),
                {
                    "default": "zigbee2mqtt",
                    "help": "a dialect, or mixed (all five) or retained (those with retained discovery)",
                },
            ),
            (("--no-announce",), {"action": "store_true", "help": "skip the retained discovery messages"}),
        ],
    ),
    "check": (
        cmd_check,
        "check devices.yaml and name every mistake",
        [(("config",), {"nargs": "?", "type": Path, "default": DEFAULT_CONFIG, "help": "the file to check"})],
    ),
    "schema": (cmd_schema, "print the JSON schema of devices.yaml", []),
    "discover": (
        cmd_discover,
        "show what advertises itself over mDNS now, or why nothing does",
        [
            (("-c", "--config"), {"type": Path, "default": DEFAULT_CONFIG, "help": "devices.yaml for its interfaces"}),
            INTERFACE_ARG,
            (("--json",), {"action": "store_true", "help": "print JSON"}),
            (("--seconds",), {"type": float, "default": 3.0, "help": "how long to listen (default: %(default)s)"}),
        ],
    ),
    "export": (
        cmd_export,
        "write the home's data as JSON lines",
        [
            *CONFIG_ARGS,
            (("--since",), {"type": _date, "help": "only rows from this date on"}),
            (("-o", "--output"), {"help": "file to write (default: standard output)"}),
        ],
    ),
    "purge": (
        cmd_purge,
        "delete the home's history before a date",
        [
            *CONFIG_ARGS,
            (("--before",), {"type": _date, "required": True, "help": "delete rows older than this"}),
            (("--yes",), {"action": "store_true", "help": "confirm the deletion"}),
        ],
    ),
    "normalize": (
        cmd_normalize,
        "show what the hub makes of recorded MQTT traffic, with coverage figures",
        [
            (("capture",), {"help": "mosquitto_sub -v lines or JSON lines {topic, payload, retain}; - for stdin"}),
            (("-c", "--config"), {"help": "devices.yaml whose discovery settings to use (default: the defaults)"}),
            (("--json",), {"action": "store_true", "help": "print one JSON document"}),
            (("--max-bytes",), {"type": int, "default": 16 * 1024 * 1024, "help": "payload size limit"}),
        ],
    ),
    "replay": (
        cmd_replay,
        "run the rules over a recorded week or month and show the alerts they would raise",
        [
            (("recording",), {"help": "hub export JSON lines, recorded MQTT traffic, or CASAS data"}),
            CONFIG_ARGS[0],
            (("--json",), {"action": "store_true", "help": "one JSON line per alert, then a summary line"}),
            (("--map",), {"type": Path, "help": "CASAS mapping file: sensor -> room, kind, role"}),
            (("--format",), {"choices": ["export", "mqtt", "casas"], "help": "the format (default: detected)"}),
            (("--lang",), {"choices": ["zh-CN", "en"], "help": "language of the table (default: the home's)"}),
            (("--all-devices",), {"action": "store_true", "help": "adopt every device seen (MQTT recordings)"}),
        ],
    ),
    "tui": (cmd_tui, "the caregiver terminal UI (a client of the hub API)", TUI_ARGS),
    "serve": (
        cmd_serve,
        "the caregiver TUI in a web browser, behind a password or token",
        [
            *TUI_ARGS,
            (("--host",), {"default": "127.0.0.1", "help": "address to listen on (default: %(default)s)"}),
            (("--port",), {"type": int, "default": 8765, "help": "port to listen on (default: %(default)s)"}),
            (("--password-file",), {"type": Path, "help": "file holding the password asked on the page"}),
            (("--token",), {"help": "a token given as ?token=… in the address (else $HUB_SERVE_TOKEN)"}),
        ],
    ),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `hub` command."""
    top = argparse.ArgumentParser(prog="hub", description="A local-first smart-home hub for older people's homes.")
    top.add_argument("--version", action="version", version=f"hub {__version__}")
    top.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (handler, text, arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        for flags, options in arguments:
            p.add_argument(*flags, **options)
        p.set_defaults(handler=handler)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hub` console script."""
    args = parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose + (args.command in ("run", "demo")), 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("transitions", "amqtt", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
