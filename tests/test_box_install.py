"""`hub install` / `hub uninstall`: dry run, a real install into a throwaway root, and its Mosquitto for real."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.brokers import MOSQUITTO, free_port, wait_port
from tests.hubctl import WAIT, config_text, make_config, running_hub

pytestmark = pytest.mark.mosquitto

HOME_EXTRA = (
    "people:\n  caregivers:\n"
    "    - {id: li-mei, name: Li Mei, tier: 1}\n"
    "    - {id: zhang-wei, name: Zhang Wei, tier: 2}\n"
)


def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def home_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "devices.yaml"
    path.parent.mkdir()
    path.write_text(config_text(None, home=f"h{uuid.uuid4().hex[:8]}", extra=HOME_EXTRA))
    return path


def test_dry_run_prints_every_file_and_writes_nothing(tmp_path: Path, home_yaml: Path) -> None:
    root = tmp_path / "root"
    out = hub_cli("install", "--root", str(root), "--dry-run", "-c", str(home_yaml), "--with-mosquitto",
                  "--bridge", "zigbee2mqtt")  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for path in (
        "etc/systemd/system/eldercare-hub.service",
        "etc/sysusers.d/eldercare-hub.conf",
        "etc/eldercare-hub/devices.yaml",
        "etc/eldercare-hub/secrets/hub.password",
        "etc/eldercare-hub/secrets/li-mei.password",
        "etc/eldercare-hub/secrets/zigbee2mqtt.password",
        "etc/eldercare-hub/tls/ca.crt",
        "etc/eldercare-hub/mosquitto/passwd",
        "etc/eldercare-hub/mosquitto/acl",
        "etc/mosquitto/conf.d/eldercare-hub.conf",
    ):
        assert f"would write {root}/{path}" in text, path
    # The unit's content is shown, with the watchdog and the hardening.
    for line in (
        "Type=notify",
        "WatchdogSec=60",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "ProtectHome=true",
        "ReadWritePaths=-/var/lib/eldercare-hub",
        "User=hub",
    ):
        assert f"    | {line}" in text, line
    assert "    | set_tcp_nodelay true" in text
    assert "    | allow_anonymous false" in text
    assert "never printed" in text
    assert not root.exists(), "a dry run wrote something"


def install_args(root: Path, home_yaml: Path, port: int) -> list[str]:
    """A real install with Mosquitto into a throwaway root, its broker on a private port, run as root."""
    return ["install", "--root", str(root), "-c", str(home_yaml), "--with-mosquitto", "--bridge", "zigbee2mqtt",
            "--mosquitto-user", "root", "--mqtt-port", str(port), "--local-port", "0"]  # fmt: skip


@pytest.fixture
def installed(tmp_path: Path, home_yaml: Path) -> Iterator[tuple[Path, int]]:
    root, port = tmp_path / "root", free_port()
    out = hub_cli(*install_args(root, home_yaml, port))
    assert out.returncode == 0, out.stderr
    return root, port


def test_install_is_idempotent_and_uninstall_keeps_data(installed: tuple[Path, int], home_yaml: Path) -> None:
    root, port = installed
    etc = root / "etc/eldercare-hub"
    password = (etc / "secrets/li-mei.password").read_text()
    ca = (etc / "tls/ca.crt").read_bytes()
    (root / "var/lib/eldercare-hub/hub.db").write_text("the family's data")
    again = hub_cli(*install_args(root, home_yaml, port))
    assert again.returncode == 0, again.stderr
    assert f"unchanged {root}/etc/systemd/system/eldercare-hub.service" in again.stdout
    assert f"kept {etc}/secrets/li-mei.password" in again.stdout
    assert (etc / "secrets/li-mei.password").read_text() == password
    assert (etc / "tls/ca.crt").read_bytes() == ca
    assert oct((etc / "tls/ca.key").stat().st_mode & 0o777) == "0o600"

    out = hub_cli("uninstall", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert not (root / "etc/systemd/system/eldercare-hub.service").exists()
    assert not (root / "etc/mosquitto/conf.d/eldercare-hub.conf").exists()
    assert (root / "var/lib/eldercare-hub/hub.db").read_text() == "the family's data"
    assert (etc / "devices.yaml").exists()
    out = hub_cli("uninstall", "--root", str(root), "--purge-data")
    assert out.returncode == 0, out.stderr
    assert not (root / "var/lib/eldercare-hub").exists()
    assert not etc.exists()


def test_unit_file_passes_systemd_analyze_verify(installed: tuple[Path, int]) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    root, _ = installed
    unit = root / "etc/systemd/system/eldercare-hub.service"
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    if "Failed to" in out.stderr and "bus" in out.stderr.lower():
        pytest.skip(f"systemd-analyze cannot run here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    assert "eldercare-hub.service" not in out.stderr, out.stderr  # no warning about our unit


def _rooted_conf(root: Path) -> Path:
    """The generated Mosquitto config with its /etc paths moved under the throwaway root."""
    conf = (root / "etc/mosquitto/conf.d/eldercare-hub.conf").read_text()
    rooted = root / "mosquitto.conf"
    rooted.write_text(conf.replace("/etc/eldercare-hub", str(root / "etc/eldercare-hub")) + "log_dest stderr\n")
    return rooted


@pytest.fixture
def broker(installed: tuple[Path, int]) -> Iterator[tuple[Path, int]]:
    root, port = installed
    proc = subprocess.Popen([MOSQUITTO, "-c", str(_rooted_conf(root))], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_port(port)
        yield root, port
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def _tls(root: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(root / "etc/eldercare-hub/tls/ca.crt"))


def _client(root: Path, port: int, user: str | None) -> aiomqtt.Client:
    password = (root / f"etc/eldercare-hub/secrets/{user}.password").read_text().strip() if user else None
    return aiomqtt.Client("127.0.0.1", port, username=user, password=password, tls_context=_tls(root),
                          identifier=f"{user or 'anon'}-{uuid.uuid4().hex[:6]}")  # fmt: skip


async def test_generated_mosquitto_hub_and_caregiver_over_tls(broker: tuple[Path, int], tmp_path: Path) -> None:
    root, port = broker
    etc = root / "etc/eldercare-hub"
    config = make_config(
        (etc / "devices.yaml")
        .read_text()
        .replace(
            "  local_port: 1883\n",
            f"  url: mqtts://localhost:{port}\n  username: hub\n  password_file: secrets/hub.password\n"
            "  ca_file: tls/ca.crt\n",
        ),
        etc,
    )
    topics_root = f"hub/{config.home.id}"
    async with running_hub(config, tmp_path / "data") as hub:
        assert hub.link is not None
        assert hub.link.connected
        async with _client(root, port, "li-mei") as carer:
            await carer.subscribe(f"{topics_root}/#")
            async with asyncio.timeout(WAIT):
                async for msg in carer.messages:
                    if msg.topic.value == f"{topics_root}/status" and b"online" in msg.payload:
                        break  # the caregiver reads the home


async def test_acl_drops_a_caregivers_device_command(broker: tuple[Path, int]) -> None:
    root, port = broker
    async with _client(root, port, "zigbee2mqtt") as bridge, _client(root, port, "li-mei") as carer:
        await bridge.subscribe("zigbee2mqtt/#", qos=1)
        # Mosquitto 2 drops a denied publish silently (the client sees a normal PUBACK); the
        # bridge's own message afterwards bounds the wait: if the command had passed, it came first.
        await carer.publish("zigbee2mqtt/kettle/set", b'{"state":"ON"}', qos=1)
        await bridge.publish("zigbee2mqtt/sentinel", b"end", qos=1)
        seen: list[str] = []
        async with asyncio.timeout(WAIT):
            async for msg in bridge.messages:
                seen.append(msg.topic.value)
                if msg.topic.value == "zigbee2mqtt/sentinel":
                    break
        assert seen == ["zigbee2mqtt/sentinel"]


async def test_anonymous_and_wrong_password_are_refused(broker: tuple[Path, int]) -> None:
    root, port = broker
    with pytest.raises(aiomqtt.MqttError):
        async with _client(root, port, None):
            pass
    with pytest.raises(aiomqtt.MqttError, match=r"135|5|Not authorized|not authorised"):
        async with aiomqtt.Client("127.0.0.1", port, username="li-mei", password="wrong", tls_context=_tls(root)):
            pass


def test_status_shows_a_refused_login(broker: tuple[Path, int], tmp_path: Path) -> None:
    root, port = broker
    etc = root / "etc/eldercare-hub"
    (etc / "secrets/old.password").write_text("changed-since\n")
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(
        (etc / "devices.yaml")
        .read_text()
        .replace(
            "  local_port: 1883\n",
            f"  url: mqtts://localhost:{port}\n  username: hub\n  password_file: {etc}/secrets/old.password\n"
            f"  ca_file: {etc}/tls/ca.crt\n",
        )
    )
    out = hub_cli("status", "-c", str(cfg), "--data-dir", str(tmp_path / "data"), "--timeout", "3")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "CRITICAL" in out.stdout
    assert "refused the login" in out.stdout, out.stdout
    assert "code:135" in out.stdout
