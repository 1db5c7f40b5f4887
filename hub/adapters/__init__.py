"""Dialect adapters: each normalizes one ecosystem's MQTT messages into the shared device model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hub.adapters.base import Adapter
from hub.adapters.homeassistant import HomeAssistantAdapter
from hub.adapters.homie import HomieAdapter
from hub.adapters.shelly import ShellyAdapter
from hub.adapters.tasmota import TasmotaAdapter
from hub.adapters.zigbee2mqtt import Zigbee2MqttAdapter
from hub.config import Discovery
from hub.model import Protocol


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """How to build one dialect's adapter from the discovery settings, and which device ids it owns."""

    protocol: Protocol
    enabled: Callable[[Discovery], bool]
    build: Callable[[Discovery], Adapter]


# One row per dialect; the key is the adapter's name and its block in devices.yaml `discovery:`.
ADAPTERS: dict[str, AdapterSpec] = {
    "zigbee2mqtt": AdapterSpec(
        Protocol.Z2M, lambda d: d.zigbee2mqtt.enabled, lambda d: Zigbee2MqttAdapter(d.zigbee2mqtt.base_topic)
    ),
    "homeassistant": AdapterSpec(
        Protocol.HA, lambda d: d.homeassistant.enabled, lambda d: HomeAssistantAdapter(d.homeassistant.prefix)
    ),
    "tasmota": AdapterSpec(Protocol.TASMOTA, lambda d: d.tasmota.enabled, lambda d: TasmotaAdapter(d.tasmota.prefix)),
    "shelly": AdapterSpec(Protocol.SHELLY, lambda d: d.shelly.enabled, lambda d: ShellyAdapter()),
    "homie": AdapterSpec(Protocol.HOMIE, lambda d: d.homie.enabled, lambda d: HomieAdapter(d.homie.prefix)),
}

BY_PROTOCOL: dict[Protocol, str] = {spec.protocol: name for name, spec in ADAPTERS.items()}


def build_adapters(discovery: Discovery) -> dict[str, Adapter]:
    """The enabled adapters, by name."""
    return {name: spec.build(discovery) for name, spec in ADAPTERS.items() if spec.enabled(discovery)}
