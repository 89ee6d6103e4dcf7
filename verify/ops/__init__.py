"""Operators' endpoints: the gap ledger (`gaps`), outage windows (`outages`), reconcile runs
(`reconcile`), the intake journal's quarantine (`journal`), registry uploads (`registry`),
health and readiness (`health`) and the Prometheus text (`metrics`)."""
