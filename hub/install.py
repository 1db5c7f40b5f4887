"""`hub install` / `hub uninstall`: the hub as a systemd service on a home box, and Mosquitto for the home.

Everything is first a plan (pure: which files with which content, which commands), which
`--dry-run` prints and `apply` carries out. Idempotent: a file whose content is already
right is left alone; generated secrets (passwords, the CA) are made once and kept, so
running it again after an upgrade changes nothing a caregiver's screen depends on.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hub.config import Config
from hub.config_upgrade import load_upgrading

SERVICE = "eldercare-hub"
CONFIG_DIR = Path("/etc/eldercare-hub")
DATA_DIR = Path("/var/lib/eldercare-hub")
UNIT = Path(f"/etc/systemd/system/{SERVICE}.service")
SYSUSERS = Path(f"/etc/sysusers.d/{SERVICE}.conf")
MOSQUITTO_CONF = Path(f"/etc/mosquitto/conf.d/{SERVICE}.conf")
MANIFEST = CONFIG_DIR / ".installed"  # what install wrote, for uninstall
WATCHDOG_SEC = 60


@dataclass(frozen=True)
class Options:
    """What the installer asked for."""

    root: Path = Path("/")
    user: str = "hub"
    config_source: Path | None = None  # a devices.yaml to install when the box has none
    hub_command: str = ""  # the `hub` executable the unit runs
    with_mosquitto: bool = False
    mqtt_port: int = 8883  # the TLS listener for the home's network
    local_port: int | None = 1883  # a loopback listener (passwords, no TLS) for bridges on the box; None: none
    bridges: tuple[str, ...] = ()  # device bridges, NAME or NAME:PREFIX (e.g. zigbee2mqtt, tasmota:tasmota)
    hostnames: tuple[str, ...] = ()  # extra names/addresses in the broker certificate
    mosquitto_user: str | None = None  # a `user` line in the Mosquitto config (tests run it as root)
    start: bool = True  # enable and start the services (only on the real root with systemd)


@dataclass
class FileSpec:
    """One file the install writes (content known now, or made by `make` into the given path)."""

    path: Path
    summary: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    content: bytes | None = None
    make: Callable[[Path], None] | None = None  # generates the file (openssl, mosquitto_passwd)
    keep: bool = False  # made once, never replaced (secrets, the CA, the family's devices.yaml)


@dataclass
class Plan:
    """Files to write and commands to run, in order."""

    dirs: list[tuple[Path, int, str, str]] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def hub_command() -> str:
    """The `hub` executable of this installation (beside the running Python)."""
    beside = Path(sys.executable).parent / "hub"
    return str(beside) if beside.exists() else (shutil.which("hub") or str(beside))


def unit_text(opts: Options) -> str:
    """The systemd unit of `hub run`: a dedicated user, watchdog, restart on failure, hardening."""
    cfg, data = CONFIG_DIR / "devices.yaml", DATA_DIR
    after = "network-online.target" + (" mosquitto.service" if opts.with_mosquitto else "")
    return f"""# Installed by `hub install`; `hub uninstall` removes it. Local changes: systemctl edit {SERVICE}
[Unit]
Description=Eldercare hub: the home's sensors, rules and alerts for caregivers
After={after}
Wants={after}
# A hub that keeps failing stops being restarted after 10 tries in 10 minutes: hub status says why.
StartLimitIntervalSec=600
StartLimitBurst=10

[Service]
Type=notify
NotifyAccess=main
User={opts.user}
Group={opts.user}
ExecStart={opts.hub_command} run -c {cfg} --data-dir {data}
Environment=PYTHONUNBUFFERED=1 HUB_DATA_DIR={data}
Restart=on-failure
RestartSec=5
# The hub sends WATCHDOG=1 from its event loop every {WATCHDOG_SEC // 2} s; a stuck loop is restarted.
WatchdogSec={WATCHDOG_SEC}
TimeoutStartSec=300
TimeoutStopSec=30
StateDirectory={SERVICE}
StateDirectoryMode=0750
UMask=0027
# Logs go to the journal: journalctl -u {SERVICE}
StandardOutput=journal
StandardError=journal
ProtectSystem=strict
ReadWritePaths=-{data}
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
NoNewPrivileges=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
SystemCallArchitectures=native
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
"""


def sysusers_text(user: str) -> str:
    """systemd-sysusers line for the hub's system user (no login, home in the data folder)."""
    return f'# The eldercare hub\'s system user\nu {user} - "Eldercare hub" {DATA_DIR} /usr/sbin/nologin\n'


def bridge_prefix(bridge: str) -> tuple[str, str]:
    """(user name, topic prefix) of a device bridge given as NAME or NAME:PREFIX."""
    name, _, prefix = bridge.partition(":")
    return name, prefix or name


def clients(config: Config, opts: Options) -> list[str]:
    """Every broker login: the hub, each caregiver, each device bridge."""
    names = ["hub", *(c.id for c in config.people.caregivers), *(bridge_prefix(b)[0] for b in opts.bridges)]
    if len(set(names)) != len(names):
        raise ValueError(f"broker user names must differ: {', '.join(names)}")
    return names


def acl_text(config: Config, opts: Options) -> str:
    """The Mosquitto ACL: caregivers read the home and write only acks and the house mode."""
    root = f"{config.mqtt.topic_root}/{config.home.id}"
    lines = [
        "# Installed by `hub install`. Anything not allowed here is denied.",
        "",
        "user hub",
        "topic readwrite #",
        "",
    ]
    for carer in config.people.caregivers:
        lines += [
            f"# caregiver {carer.name}",
            f"user {carer.id}",
            f"topic read {root}/#",
            f"topic write {root}/alerts/+/ack",
            f"topic write {root}/mode/set",
            "",
        ]
    for bridge in opts.bridges:
        name, prefix = bridge_prefix(bridge)
        lines += [f"# device bridge {name}: its own topics only", f"user {name}", f"topic readwrite {prefix}/#", ""]
    return "\n".join(lines)


def mosquitto_text(opts: Options) -> str:
    """The home's Mosquitto configuration (conf.d snippet)."""
    etc = CONFIG_DIR
    lines = ["# Installed by `hub install --with-mosquitto`; `hub uninstall` removes it."]
    if opts.mosquitto_user:
        lines.append(f"user {opts.mosquitto_user}")
    lines += [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {etc / 'mosquitto' / 'passwd'}",
        f"acl_file {etc / 'mosquitto' / 'acl'}",
        "# Without it, Nagle's algorithm adds ~44 ms to every motion -> light round trip.",
        "set_tcp_nodelay true",
        "",
        "# The home's network: TLS with the box's own CA (copy tls/ca.crt to each caregiver's computer).",
        f"listener {opts.mqtt_port}",
        f"cafile {etc / 'tls' / 'ca.crt'}",
        f"certfile {etc / 'tls' / 'server.crt'}",
        f"keyfile {etc / 'tls' / 'server.key'}",
        "tls_version tlsv1.2",
    ]
    if opts.local_port is not None:
        lines += [
            "",
            "# Bridges on this box itself (passwords, no TLS on loopback).",
            f"listener {opts.local_port} 127.0.0.1",
        ]
    return "\n".join(lines) + "\n"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(tls: Path, names: tuple[str, ...]) -> None:
    """A local EC P-256 CA and a server certificate for these names and addresses (10 years)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.crt"),
        "-days", "3650", "-subj", "/CN=eldercare-hub local CA",
    )  # fmt: skip
    san = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}" for n in names)
    with tempfile.TemporaryDirectory() as tmp:
        ext, csr = Path(tmp) / "ext.cnf", Path(tmp) / "server.csr"
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        _openssl("req", *ec, "-keyout", str(tls / "server.key"), "-out", str(csr), "-subj", f"/CN={names[0]}")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(tls / "ca.crt"), "-CAkey", str(tls / "ca.key"),
            "-CAcreateserial", "-out", str(tls / "server.crt"), "-days", "3650", "-extfile", str(ext),
        )  # fmt: skip
    (tls / "ca.srl").unlink(missing_ok=True)


def make_passwd(target: Path, secrets_dir: Path, users: list[str]) -> None:
    """The Mosquitto password file (hashed by mosquitto_passwd) from each client's secret file."""
    target.write_text("")
    for user in users:
        password = (secrets_dir / f"{user}.password").read_text().strip()
        subprocess.run(["mosquitto_passwd", "-b", str(target), user, password], check=True, capture_output=True)


def _r(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def plan_install(opts: Options, config: Config | None, config_text: bytes | None) -> Plan:
    """Everything `hub install` writes and runs, for this box (pure, apart from reading nothing)."""
    root = opts.root
    plan = Plan()
    etc, data = _r(root, CONFIG_DIR), _r(root, DATA_DIR)
    plan.dirs += [(etc, 0o750, "root", opts.user), (data, 0o750, opts.user, opts.user)]
    plan.dirs.append((data / "backups", 0o750, opts.user, opts.user))
    if config_text is not None:
        plan.files.append(
            FileSpec(etc / "devices.yaml", "the home's devices.yaml", 0o640, "root", opts.user, config_text, keep=True)
        )
    plan.files.append(
        FileSpec(_r(root, SYSUSERS), f"system user {opts.user}", content=sysusers_text(opts.user).encode())
    )
    plan.files.append(
        FileSpec(_r(root, UNIT), f"systemd unit for `hub run` as {opts.user}", content=unit_text(opts).encode())
    )
    if opts.with_mosquitto:
        if config is None:
            raise ValueError("--with-mosquitto needs a devices.yaml (its caregivers get broker logins)")
        users = clients(config, opts)
        sec, tls, mq = etc / "secrets", etc / "tls", etc / "mosquitto"
        plan.dirs += [(sec, 0o750, "root", opts.user), (tls, 0o755, "root", "root"), (mq, 0o750, "root", "mosquitto")]
        for user in users:
            owner_group = opts.user if user == "hub" else "root"
            plan.files.append(
                FileSpec(
                    sec / f"{user}.password",
                    f"generated broker password of '{user}' (never printed)",
                    0o640,
                    "root",
                    owner_group,
                    (secrets.token_urlsafe(24) + "\n").encode(),
                    keep=True,
                )
            )
        names = (*opts.hostnames, socket.gethostname(), f"{socket.gethostname()}.local", "localhost", "127.0.0.1")
        names = tuple(dict.fromkeys(names))
        plan.files.append(
            FileSpec(
                tls / "ca.crt",
                f"local CA (EC P-256) and server certificate for {', '.join(names)}",
                make=lambda _path: make_ca(tls, names),
                keep=True,
            )
        )
        plan.files.append(
            FileSpec(
                mq / "passwd",
                f"Mosquitto password file (mosquitto_passwd) for {', '.join(users)}",
                0o640,
                "root",
                "mosquitto",
                make=lambda path: make_passwd(path, sec, users),
            )
        )
        plan.files.append(
            FileSpec(mq / "acl", "ACL: caregivers read the home, write acks and mode; bridges their own topics",
                     0o640, "root", "mosquitto", acl_text(config, opts).encode())
        )  # fmt: skip
        plan.files.append(
            FileSpec(_r(root, MOSQUITTO_CONF), f"Mosquitto: TLS on {opts.mqtt_port}, no anonymous access",
                     content=mosquitto_text(opts).encode())
        )  # fmt: skip
        plan.notes.append(
            f"point devices.yaml at the broker: mqtt: {{url: mqtts://localhost:{opts.mqtt_port}, username: hub, "
            "password_file: secrets/hub.password, ca_file: tls/ca.crt}"
        )
    if opts.root == Path("/") and opts.start:
        plan.commands += [["systemd-sysusers", str(SYSUSERS)], ["systemctl", "daemon-reload"]]
        if opts.with_mosquitto:
            plan.commands.append(["systemctl", "restart", "mosquitto"])
        plan.commands.append(["systemctl", "enable", "--now", SERVICE])
    return plan


def summary_line(spec: FileSpec) -> str:
    """One dry-run line: path, mode, owner and what is in it (never a secret)."""
    what = spec.summary
    if spec.content is not None and "never printed" not in spec.summary:
        lines = spec.content.decode(errors="replace").count("\n")
        digest = hashlib.sha256(spec.content).hexdigest()[:12]
        what += f" ({lines} lines, sha256 {digest})"
    return f"{spec.path}  {spec.mode:04o} {spec.owner}:{spec.group}  {what}" + (
        "  [kept if present]" if spec.keep else ""
    )


def render_plan(plan: Plan, *, show_content: bool = True) -> str:
    """The dry-run output: folders, files (with the text of non-secret ones), commands, notes."""
    out = [f"would create folder {p}  {m:04o} {o}:{g}" for p, m, o, g in plan.dirs]
    for spec in plan.files:
        out.append("would write " + summary_line(spec))
        if show_content and spec.content is not None and not spec.keep:  # secrets and the family's file: summary only
            out += ["    | " + line for line in spec.content.decode(errors="replace").splitlines()]
    out += ["would run " + " ".join(cmd) for cmd in plan.commands]
    out += ["note: " + n for n in plan.notes]
    return "\n".join(out)


def _ids(owner: str, group: str) -> tuple[int, int] | None:
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        return None  # the user does not exist (yet, or in a throwaway root): ownership left as is


def _own(path: Path, mode: int, owner: str, group: str, notes: list[str]) -> None:
    os.chmod(path, mode)
    ids = _ids(owner, group)
    if ids is None:
        notes.append(f"{path}: {owner}:{group} does not exist here, left owned by the installer")
    elif os.geteuid() == 0:
        os.chown(path, *ids)


def apply(plan: Plan, root: Path) -> list[str]:
    """Carry the plan out; lines saying what was written, kept or left unchanged."""
    done: list[str] = []
    notes: list[str] = []
    for path, mode, owner, group in plan.dirs:
        path.mkdir(parents=True, exist_ok=True)
        _own(path, mode, owner, group, notes)
    written: list[Path] = []
    for spec in plan.files:
        spec.path.parent.mkdir(parents=True, exist_ok=True)
        if spec.keep and spec.path.exists():
            done.append(f"kept {spec.path}")
        elif spec.make is not None:
            spec.make(spec.path)
            done.append(f"made {spec.path}")
        elif spec.content is not None and spec.path.exists() and spec.path.read_bytes() == spec.content:
            done.append(f"unchanged {spec.path}")
        else:
            assert spec.content is not None
            tmp = spec.path.with_name(f".{spec.path.name}.new")
            tmp.write_bytes(spec.content)
            os.replace(tmp, spec.path)
            done.append(f"wrote {spec.path}")
        if spec.path.exists():
            _own(spec.path, spec.mode, spec.owner, spec.group, notes)
        written.append(spec.path)
    # Mosquitto reads the server key; the CA key signs new certificates only, root's alone.
    for key, mode, group in (("ca.key", 0o600, "root"), ("server.key", 0o640, "mosquitto")):
        key_path = _r(root, CONFIG_DIR) / "tls" / key
        if key_path.exists():
            _own(key_path, mode, "root", group, notes)
    manifest = _r(root, MANIFEST)
    manifest.write_text("".join(f"/{p.relative_to(root)}\n" for p in written))
    for cmd in plan.commands:
        if shutil.which(cmd[0]) is None:
            notes.append(f"{cmd[0]} not found: run `{' '.join(cmd)}` yourself")
            continue
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        done.append(f"ran {' '.join(cmd)}: " + ("ok" if result.returncode == 0 else result.stderr.strip()))
    return done + [f"note: {n}" for n in (*notes, *plan.notes)]


def load_for_install(opts: Options) -> tuple[Config | None, bytes | None, list[str]]:
    """The config the box will run: the installed one (upgraded as root if old), else the given one."""
    installed = _r(opts.root, CONFIG_DIR) / "devices.yaml"
    if installed.exists():
        config, notes = load_upgrading(installed)
        return config, None, notes
    if opts.config_source is None:
        return None, None, [f"no devices.yaml yet: copy one to {installed} (hub check names its mistakes)"]
    config, _ = load_upgrading(opts.config_source)
    return config, opts.config_source.read_bytes(), []


def plan_uninstall(root: Path, purge_data: bool) -> tuple[list[Path], list[list[str]]]:
    """Files and folders to remove, and commands to run; the family's data stays unless purge_data."""
    remove = [_r(root, p) for p in (UNIT, SYSUSERS, MOSQUITTO_CONF)]
    commands: list[list[str]] = []
    if root == Path("/"):
        commands = [["systemctl", "disable", "--now", SERVICE], ["systemctl", "daemon-reload"]]
    if purge_data:
        remove += [_r(root, CONFIG_DIR), _r(root, DATA_DIR)]
    return remove, commands


def uninstall(root: Path, purge_data: bool, dry_run: bool) -> list[str]:
    """Stop and remove the service and the Mosquitto snippet; keep config and data unless purging."""
    remove, commands = plan_uninstall(root, purge_data)
    out: list[str] = []
    for cmd in commands:
        if dry_run:
            out.append("would run " + " ".join(cmd))
        elif shutil.which(cmd[0]) is not None:
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            out.append(f"ran {' '.join(cmd)}: " + ("ok" if result.returncode == 0 else result.stderr.strip()))
    for path in remove:
        if not path.exists():
            continue
        if dry_run:
            out.append(f"would remove {path}")
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        out.append(f"removed {path}")
    if not purge_data:
        out.append(
            f"kept {_r(root, CONFIG_DIR)} and {_r(root, DATA_DIR)} (the home's config and data): "
            "--purge-data removes them"
        )
    return out
