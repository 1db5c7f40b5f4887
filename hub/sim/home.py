"""The example home of devices.yaml as simulated devices: one row per device, with the ids the hub adopts by name."""

from __future__ import annotations

from hub.sim.dialects import SimSpec

_Z, _HA, _T, _S, _H = "zigbee2mqtt", "homeassistant", "tasmota", "shelly", "homie"

# key, dialect, native id, template, name (a Zigbee2MQTT friendly name for z2m), initial logical values.
# The native ids give exactly the hub ids listed in devices.yaml (z2m-<ieee>, ha-<node>,
# tasmota-<MAC>, shelly-<id>, homie-<id>); the last row is not named there, so it waits in
# the inbox, as a newly bought device does.
EXAMPLE_HOME: tuple[SimSpec, ...] = (
    # Bedroom
    SimSpec("bed", _Z, "0x00158d0001a2b3c4", "presence", "bedroom/bed", {"presence": True}),
    SimSpec(
        "bedroom_motion",
        _Z,
        "0x00158d0001a2b3d7",
        "motion",
        "bedroom/motion",
        {"motion": False, "battery": 87, "illuminance": 3},
    ),
    SimSpec(
        "bedroom_climate",
        _HA,
        "bedroom-climate",
        "climate",
        "Bedroom climate",
        {"temperature": 24.5, "humidity": 61.0},
        mdns=True,
    ),
    SimSpec("sos", _Z, "0x00158d0001c5e6f8", "sos", "bedroom/sos", {"battery": 92}),
    # Bathroom
    SimSpec(
        "bathroom_motion",
        _Z,
        "0x00158d0002a1b2c3",
        "motion",
        "bathroom/motion",
        {"motion": False, "battery": 78, "illuminance": 2},
    ),
    SimSpec("bathroom_door", _Z, "0x00158d0002a1b2d4", "contact", "bathroom/door", {"open": True, "battery": 90}),
    SimSpec(
        "leak", _Z, "0x00158d0002a1b2e5", "leak", "bathroom/leak", {"leak": False, "battery": 64, "battery_low": False}
    ),
    # Kitchen
    SimSpec("cooktop", _T, "A4CF12B3C4D5", "plug", "Cooktop plug", {"on": False, "power": 1500.0}),
    SimSpec(
        "kettle", _S, "shellyplus1pm-a8032ab12345", "plug", "Kettle plug", {"on": False, "power": 1800.0}, mdns=True
    ),
    SimSpec("fridge", _Z, "0x00158d0003b4c5d6", "contact", "kitchen/fridge", {"open": False, "battery": 95}),
    SimSpec("smoke", _HA, "kitchen-smoke", "smoke", "Kitchen smoke alarm", {"smoke": False}, mdns=True),
    SimSpec("kitchen_env", _H, "kitchen-env", "env", "Kitchen environment", {"temperature": 25.0, "humidity": 58.0}),
    # Hallway
    SimSpec("front_door", _Z, "0x00158d0004c6d7e8", "contact", "hallway/front_door", {"open": False, "battery": 88}),
    SimSpec(
        "night_light",
        _S,
        "shellyplus1pm-a8032ab67890",
        "plug",
        "Hallway night light",
        {"on": False, "power": 6.0},
        mdns=True,
    ),
    # Living room
    SimSpec("pillbox", _Z, "0x00158d0005d7e8f9", "contact", "living_room/pillbox", {"open": False, "battery": 99}),
    SimSpec("chair", _Z, "0x00158d0005d7e9a0", "presence", "living_room/armchair", {"presence": False}),
    SimSpec(
        "living_env", _H, "living-room-env", "env", "Living room environment", {"temperature": 25.5, "humidity": 60.0}
    ),
    SimSpec("reading_lamp", _H, "living-room-lamp", "lamp", "Reading lamp", {"on": False, "brightness": 60}),
)
