"""`hub tui --fleet`: two homes' hubs bridged by Mosquitto to a central broker, seen in one list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.tui.app import CaregiverApp
from hub.tui.client import Target, client_settings
from tests import tuikit
from tests.brokers import Mosquitto, running
from tests.hubctl import config_text, make_config, running_hub
from tests.test_hub import publish
from tests.test_tui import shown, until

pytestmark = pytest.mark.timeout(60)


@dataclass
class BridgedMosquitto(Mosquitto):
    """A home's own broker that bridges the home's status, mode and alerts to a central broker."""

    central_port: int = 0
    home_id: str = ""

    def config(self) -> str:
        """Mosquitto's own bridge configuration (DESIGN.md, "Scaling past one home")."""
        root = f"hub/{self.home_id}"
        return super().config() + "\n".join(
            [
                f"connection bridge-{self.home_id}",
                f"address 127.0.0.1:{self.central_port}",
                f"topic {root}/status out 1",
                f"topic {root}/mode out 1",
                f"topic {root}/alerts/# out 1",
                "bridge_protocol_version mqttv311",
                "try_private false",
                "cleansession true",
                "restart_timeout 1",
                "",
            ]
        )


async def test_fleet_shows_every_homes_alerts_grouped_by_home(tmp_path: Path) -> None:
    homes = [f"home-a{uuid.uuid4().hex[:6]}", f"home-b{uuid.uuid4().hex[:6]}"]
    (tmp_path / "central").mkdir()
    with running(Mosquitto(tmp_path / "central")) as central:
        brokers = []
        for home in homes:
            (tmp_path / home).mkdir()
            brokers.append(BridgedMosquitto(tmp_path / home, central_port=central.port, home_id=home))
        with running(brokers[0]) as first, running(brokers[1]) as second:
            configs = [
                make_config(config_text(b.url, home=h), tmp_path / h)
                for b, h in ((first, homes[0]), (second, homes[1]))
            ]
            async with (
                running_hub(configs[0], tmp_path / homes[0] / "data"),
                running_hub(configs[1], tmp_path / homes[1] / "data"),
            ):
                # The rules engine is not wired into the hub yet: its alerts are published as it will.
                critical, warning = tuikit.alerts()[0], tuikit.alerts()[1]
                await publish(first, f"hub/{homes[0]}/alerts/{critical.id}", critical.model_dump_json(), retain=True)
                await publish(second, f"hub/{homes[1]}/alerts/{warning.id}", warning.model_dump_json(), retain=True)
                # A home's device state is not bridged: the fleet sees only what care needs.
                app = CaregiverApp(
                    Target(client_settings(central.url), "hub", None), tuikit.settings(), clock=tuikit.clock()
                )
                async with app.run_test(size=(80, 40)) as pilot:
                    await until(
                        pilot,
                        lambda: (
                            all(h in app.fleet.homes and app.fleet.homes[h].alerts for h in homes)
                            and all(app.fleet.homes[h].status is not None for h in homes)
                        ),
                    )
                    text = shown(app)
                    assert f"{homes[0]}: [!!] CRITICAL Bathroom" in text  # the banner names the home
                    text = text[text.index("[1 All homes]") :]
                    a, b = text.index(homes[0]), text.index(homes[1])
                    assert a < text.index("Bathroom occupied for 25 min") < b < text.index("Out of bed for 50 min")
                    assert text.count("[OK] hub online") == 2
                    assert "2 open alert(s)" in shown(app)  # the top line counts every home
                    assert app.query_one("#banner").has_class("-shown")
                    assert not any(h.devices for h in app.fleet.homes.values())
