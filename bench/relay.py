"""The latency floor: a bare aiomqtt relay that turns bedroom motion into the night light's Shelly RPC command.

It subscribes to all of zigbee2mqtt/# and parses every message, as the hub must, so that
the background traffic costs it what it costs the hub's receive path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

import aiomqtt

MOTION = "zigbee2mqtt/bedroom/motion"
RPC = "shellyplus1pm-a8032ab67890/rpc"


async def main(port: int) -> None:
    seq = 0
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-relay", socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    ) as client:
        await client.subscribe("zigbee2mqtt/#")
        async for msg in client.messages:
            try:
                data = json.loads(msg.payload)
            except ValueError:
                continue
            if msg.topic.value == MOTION and isinstance(data, dict) and data.get("occupancy") is True:
                seq += 1
                body = {"id": seq, "src": "relay", "method": "Switch.Set", "params": {"id": 0, "on": True}}
                await client.publish(RPC, json.dumps(body))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    asyncio.run(main(p.parse_args().port))
