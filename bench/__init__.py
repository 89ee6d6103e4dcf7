"""Benchmarks: scripts run by hand (`python -m bench.<name> --help`), never by the tests."""
