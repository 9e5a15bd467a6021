"""Benchmarks behind `selfplay bench <name>`: each prints a table and, last, one JSON line."""
