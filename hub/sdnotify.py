"""systemd's sd_notify over $NOTIFY_SOCKET: READY=1 once, then WATCHDOG=1 while the loop is healthy.

A datagram to a Unix socket, as sd_notify(3) specifies; nothing to install. Without
NOTIFY_SOCKET (not under systemd, or Type=simple) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def socket_address(value: str | None) -> str | None:
    """The address to send to: a path, or an abstract socket ("@name" becomes "\\0name")."""
    if not value or not value.startswith(("/", "@")):
        return None
    return "\0" + value[1:] if value.startswith("@") else value


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WatchdogSec (from $WATCHDOG_USEC), or None."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send one notification such as "READY=1"; True if it was sent, False when not under systemd."""
    env = os.environ if environ is None else environ
    address = socket_address(env.get("NOTIFY_SOCKET"))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        # systemd gone or the socket unreachable: the hub keeps running; systemd will notice.
        log.warning("sd_notify %r failed: %s", state, exc)
        return False
    return True
