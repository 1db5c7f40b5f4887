"""Benchmarks: each prints JSON and a table, beside its baseline measured in the same run."""
