"""The baseline consumer: a bare aiomqtt subscriber that parses every state and keeps the last one per device."""

from __future__ import annotations

import argparse
import asyncio
import json

import aiomqtt


async def main(port: int, sentinel: str) -> None:
    last: dict[str, object] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-bare") as client:
        await client.subscribe("zigbee2mqtt/#")
        async for msg in client.messages:
            topic = msg.topic.value
            try:
                data = json.loads(msg.payload)
            except ValueError:
                continue
            last[topic] = data
            if topic == sentinel and isinstance(data, dict) and data.get("temperature", 0) >= 50:
                await client.publish("bench/echo", msg.payload)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sentinel", required=True, help="the topic whose messages are echoed to bench/echo")
    a = p.parse_args()
    asyncio.run(main(a.port, a.sentinel))
