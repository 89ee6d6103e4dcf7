"""`GET /metrics` read with prometheus-client's own parser: every sample as
`name{label="value",...}` (labels sorted by name) -> value, so a test asks for a series by
the line it would write, whatever the exposition's number format or label order."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def series_name(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def samples(text: str) -> dict[str, float]:
    """Every sample of the exposition; the parser refuses a malformed one."""
    return {series_name(s.name, s.labels): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
