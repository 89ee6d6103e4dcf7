"""Chaos tests: the real service, osmem-server and redis-server as processes on loopback,
faults injected by stopping or killing those processes (issue 5, item 7)."""
