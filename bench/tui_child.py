"""The TUI process the TUI benchmark measures: a headless `hub tui` that reports each screen update."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.tui.app import CaregiverApp
from hub.tui.client import Target, client_settings
from hub.tui.settings import Settings


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--home", required=True)
    p.add_argument("--alerts", type=int, required=True)
    p.add_argument("--devices", type=int, required=True)
    a = p.parse_args()
    app = CaregiverApp(Target(client_settings(a.url), "hub", a.home), Settings(who="bench"))
    ready = False

    def flushed(arrival: float) -> None:
        nonlocal ready
        home = app.home
        if not ready:
            if len(home.alerts) >= a.alerts and len(home.states) >= a.devices:
                ready = True
                print(json.dumps({"ready": True}), flush=True)
            return
        # Seconds from the message arriving at the TUI to the screen having been redrawn.
        print(json.dumps({"latency": time.perf_counter() - arrival, "wall": time.time()}), flush=True)

    app.on_flushed = flushed
    app.run(headless=True, size=(120, 40))


if __name__ == "__main__":
    main()
