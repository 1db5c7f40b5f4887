"""Two network namespaces joined by a veth pair, avahi in one of them (../shared/TESTING.md, mDNS).

Nothing here touches the machine's real interfaces: every packet stays on the veth pair.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "hubt"  # namespace names: hubt<pytest pid><a|b>
CLONE_NEWNET = 0x40000000
TOOLS = ("ip", "unshare", "dbus-daemon", "avahi-daemon", "avahi-publish")


def missing_tools() -> list[str]:
    """The programs the avahi test needs that are not installed."""
    return [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def _kill_pids(ns: str) -> None:
    done = _ip("netns", "pids", ns, check=False)
    for pid in done.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _delete(ns: str) -> None:
    _kill_pids(ns)
    _ip("netns", "del", ns, check=False)


def clean_stale() -> None:
    """Delete namespaces left by an earlier test run that crashed (its pytest pid is gone)."""
    listing = _ip("netns", "list", check=False).stdout
    for name in re.findall(rf"^({PREFIX}(\d+)[ab])\b", listing, flags=re.MULTILINE):
        ns, pid = name
        if not Path(f"/proc/{pid}").exists():
            _delete(ns)


@dataclass(frozen=True)
class Pair:
    """Namespace `a` (the advertiser, 10.77.0.1 on `veth_a`) and `b` (the hub, 10.77.0.2 on `veth_b`)."""

    a: str
    b: str
    veth_a: str
    veth_b: str
    addr_a: str = "10.77.0.1"
    addr_b: str = "10.77.0.2"


@contextlib.contextmanager
def veth_pair() -> Iterator[Pair]:
    """Make the two namespaces (RuntimeError with the reason when it cannot be done), delete them after."""
    clean_stale()
    me = os.getpid()
    pair = Pair(f"{PREFIX}{me}a", f"{PREFIX}{me}b", f"vha{me % 100000}", f"vhb{me % 100000}")
    try:
        for ns in (pair.a, pair.b):
            _ip("netns", "add", ns)
        _ip("link", "add", pair.veth_a, "netns", pair.a, "type", "veth", "peer", "name", pair.veth_b, "netns", pair.b)
        for ns, dev, addr in ((pair.a, pair.veth_a, pair.addr_a), (pair.b, pair.veth_b, pair.addr_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
    except subprocess.CalledProcessError as exc:
        for ns in (pair.a, pair.b):
            _delete(ns)
        raise RuntimeError(f"cannot make network namespaces: {' '.join(exc.cmd)}: {exc.stderr.strip()}") from exc
    try:
        yield pair
    finally:
        for ns in (pair.a, pair.b):
            _delete(ns)


DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={dir}/dbus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="method_return"/>
    <allow send_type="signal"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="signal"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""

AVAHI_CONF = """[server]
host-name={host}
use-ipv4=yes
use-ipv6=no
allow-interfaces={iface}
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-aaaa-on-ipv4=no
publish-hinfo=no
publish-workstation=no
"""

# Runs inside namespace `a` and its own mount namespace: a private /run for avahi's pid
# file and socket, a private system bus, then avahi-publish in the foreground (so that its
# pid is the Popen's: SIGTERM makes avahi say goodbye).
AVAHI_SCRIPT = """set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/avahi-daemon
dbus-daemon --config-file={dir}/dbus.conf --nofork --nopidfile &
i=0; until [ -S {dir}/dbus.sock ]; do i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done
export DBUS_SYSTEM_BUS_ADDRESS=unix:path={dir}/dbus.sock
avahi-daemon -f {dir}/avahi.conf --no-drop-root --no-chroot --no-rlimits >{dir}/avahi.log 2>&1 &
i=0; until avahi-daemon --check 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 4; sleep 0.05; done
exec avahi-publish -s "$@"
"""


@contextlib.contextmanager
def avahi_publishing(pair: Pair, work: Path, *service: str) -> Iterator[subprocess.Popen[bytes]]:
    """avahi-daemon + `avahi-publish -s <service...>` in namespace a; its Popen (kill it for a goodbye)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "dbus.conf").write_text(DBUS_CONF.format(dir=work))
    (work / "avahi.conf").write_text(AVAHI_CONF.format(host=f"avahi{os.getpid()}", iface=pair.veth_a))
    (work / "run.sh").write_text(AVAHI_SCRIPT.format(dir=work))
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            pair.a,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            str(work / "run.sh"),
            *service,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_established(proc, timeout=30)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        _kill_pids(pair.a)


def _wait_established(proc: subprocess.Popen[bytes], timeout: float) -> None:
    # avahi probes the name before it announces the service (a second or more on a busy box):
    # a browser started before then may close before the announcement comes.
    assert proc.stdout is not None
    said = b""
    deadline = time.monotonic() + timeout
    while b"Established under name" not in said:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise RuntimeError(f"avahi-publish not established in {timeout} s: {said.decode(errors='replace')}")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"avahi-publish ended: {said.decode(errors='replace')}")
        said += line


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """Switch only this thread into a network namespace for the block (sockets made here stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back failed")
