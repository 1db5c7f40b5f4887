"""`hub serve` in a real Chromium (playwright-core): password on the page and the websocket, ack by key press."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.tui.themes import PALETTES
from tests import tuikit
from tests.brokers import Mosquitto, free_port, wait_port
from tests.hubctl import WAIT, watching
from tests.test_hub import publish
from tests.test_tui import publish_home

pytestmark = pytest.mark.timeout(90)

WEB = Path(__file__).parent / "web"
CHROMIUM = Path("/usr/bin/chromium")


def browser_tools() -> str:
    """Path of node once Chromium and playwright-core are there; else skip with the plain reason."""
    node = shutil.which("node")
    if node is None or not CHROMIUM.exists():
        pytest.skip("needs node and /usr/bin/chromium (tools/ensure-binaries installs chromium)")
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        npm = shutil.which("npm")
        done = npm and subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True, timeout=300)
        if not done or done.returncode != 0:
            pytest.skip("playwright-core could not be installed with `npm ci` in tests/web")
    return node


@pytest.fixture
def served(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """`hub serve` for a fresh home on the test broker: (base URL, password, home id)."""
    home, password, port = f"t{uuid.uuid4().hex[:8]}", "correct horse battery", free_port()
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    argv = [sys.executable, "-m", "hub.cli", "serve", "-c", str(tmp_path / "none.yaml"), "--url", mosquitto.url]
    argv += ["--home", home, "--password-file", str(secret), "--port", str(port), "--as", "web-carer", "--lang", "en"]
    env = {**os.environ, "HUB_TUI_WHO": "", "NO_COLOR": ""}
    env.pop("NO_COLOR")
    # Its own session, so that the app processes it starts die with it at teardown.
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}", password, home
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def test_browser_signs_in_sees_the_alert_and_acknowledges_it(
    served: tuple[str, str, str], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    node = browser_tools()
    base, password, home = served
    root = f"hub/{home}"
    await publish_home(mosquitto, home, events=False)
    async with watching("127.0.0.1", mosquitto.port, f"{root}/alerts/+/ack") as w:
        browser = await asyncio.create_subprocess_exec(
            node,
            str(WEB / "serve_check.mjs"),
            base,
            password,
            str(tmp_path),
            PALETTES["dark"].banner_bg,
            cwd=WEB,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        ack = await w.wait_for(f"{root}/alerts/al-bath-1/ack", timeout=60)
        assert ack == {"by": "web-carer", "channel": "web"}
        # The hub's republish as acknowledged (simulated: the rules engine is not wired into the hub yet).
        alert = tuikit.alerts()[0].model_copy(
            update={"state": "acknowledged", "acknowledged_by": "web-carer", "acknowledged_at": tuikit.NOW}
        )
        await publish(mosquitto, f"{root}/alerts/{alert.id}", alert.model_dump_json(), retain=True)
        out, err = await asyncio.wait_for(browser.communicate(), WAIT * 4)
    assert browser.returncode == 0, err.decode()[-2000:]
    found = json.loads(out.decode().strip().splitlines()[-1])
    assert found["page_without_password"] == 401
    assert found["ws_without_password"] == "refused"
    assert found["page_with_password"] == 200
    assert found["drawn"], "the terminal never drew"
    assert found["external"] == [], "the page fetched something from outside the server"
    assert found["banner_pixels_before"] > 1000, "the critical banner is not in the screenshot"
    assert found["banner_pixels_after"] == 0, "the banner stayed after the acknowledgement"
    assert (tmp_path / "alert.png").stat().st_size > 10_000


def test_page_and_websocket_refuse_without_the_password(served: tuple[str, str, str]) -> None:
    import urllib.error
    import urllib.request

    base, password, _ = served
    for path, headers in (
        ("/", {}),
        (
            "/ws",
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        ),
        ("/static/js/textual.js", {}),
        ("/?token=wrong-token", {}),
    ):
        request = urllib.request.Request(base + path, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=WAIT)
        assert refused.value.code == 401, path
    # A page from elsewhere may not open the websocket even with a session cookie (cross-site hijacking).
    request = urllib.request.Request(base + "/ws", headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as foreign:
        urllib.request.urlopen(request, timeout=WAIT)
    assert foreign.value.code == 403
    # The right password opens a session.
    data = f"password={password.replace(' ', '+')}".encode()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(urllib.request.Request(base + "/login", data=data), timeout=WAIT) as page:
        assert page.status == 200
        assert b"textual-terminal" in page.read()
        assert b"googleapis" not in page.read()
