"""Private Mosquitto brokers for tests: a fresh one per need, on a free port, never the real network."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Return once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@dataclass
class Mosquitto:
    """A private Mosquitto process that a test can stop and start again on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    passwords: dict[str, str] = field(default_factory=dict)
    tls: tuple[Path, Path, Path] | None = None  # (ca, cert, key)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker's URL as devices.yaml takes it."""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    def config(self) -> str:
        """The Mosquitto configuration this broker runs with."""
        lines = [
            "user root",
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stderr",
            "set_tcp_nodelay true",
        ]
        if self.passwords:
            pw = self.workdir / "passwd"
            pw.write_text("")
            for user, secret in self.passwords.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, secret], check=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        """Stop the broker and wait for it to exit."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@contextlib.contextmanager
def running(broker: Mosquitto) -> Iterator[Mosquitto]:
    """Run a broker for the duration of a with-block."""
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def make_ca(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway EC CA and a server certificate for 127.0.0.1 and localhost: (ca, cert, key)."""
    ca_key, ca = workdir / "ca.key", workdir / "ca.crt"
    key, csr, cert = workdir / "server.key", workdir / "server.csr", workdir / "server.crt"
    ext = workdir / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=hub-test-ca")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, cert, key
