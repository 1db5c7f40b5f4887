"""Simulated devices that speak the real dialects over MQTT, for the demo, the tests and the benchmarks."""
