"""The `hub` command: run the hub, check devices.yaml, export and purge the home's data."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub import __version__

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

    try:
        return load_config(path)
    except ConfigError as err:
        print(format_problems(err), file=sys.stderr)
        print(f"{len(err.problems)} problem(s) in {path}; nothing was started.", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check(args: argparse.Namespace) -> int:
    """`hub check [FILE]`: report every mistake in devices.yaml with file:line:column."""
    from hub.config import summary

    config = _load(args.config)
    print(f"{args.config}: OK")
    print(summary(config))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """`hub schema`: print the JSON schema of devices.yaml for editors."""
    from hub.config import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def _hub(args: argparse.Namespace) -> Hub:
    from hub.supervisor import Hub, Paths

    return Hub(_load(args.config), Paths(_data_dir(args)))


def cmd_run(args: argparse.Namespace) -> int:
    """`hub run`: run headless until SIGTERM or SIGINT."""
    from hub.supervisor import run_until_signal

    asyncio.run(run_until_signal(_hub(args)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`hub demo`: run the example home on the embedded defaults and show its status."""
    from hub.status import watch

    asyncio.run(watch(_hub(args), once=args.once))
    return 0


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


def _date(text: str) -> datetime:
    """A date or date-time argument; naive values are taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date (use YYYY-MM-DD or an ISO date-time)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# An argument: its flags and add_argument's keywords.
Arg = tuple[tuple[str, ...], dict[str, Any]]

CONFIG_ARGS: list[Arg] = [
    (("-c", "--config"), {"type": Path, "default": DEFAULT_CONFIG, "help": "devices.yaml (default: %(default)s)"}),
    (("--data-dir",), {"help": "data folder (default: $HUB_DATA_DIR or ~/.local/share/eldercare-hub)"}),
]

# One row per subcommand: name -> (handler, help, arguments).
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str, list[Arg]]] = {
    "run": (cmd_run, "run the hub headless until stopped", CONFIG_ARGS),
    "demo": (
        cmd_demo,
        "run the example home and show its status",
        [*CONFIG_ARGS, (("--once",), {"action": "store_true", "help": "print the status once and stop"})],
    ),
    "check": (
        cmd_check,
        "check devices.yaml and name every mistake",
        [(("config",), {"nargs": "?", "type": Path, "default": DEFAULT_CONFIG, "help": "the file to check"})],
    ),
    "schema": (cmd_schema, "print the JSON schema of devices.yaml", []),
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
