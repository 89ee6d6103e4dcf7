"""The results of recent batch and ledger runs, kept in this process so a person can filter
them and download them as CSV or XLSX. Each run belongs to the key that ran it; at most
`MAX_RUNS` are kept, for `KEEP_SECONDS` each (older ones are forgotten first)."""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

MAX_RUNS = 32
KEEP_SECONDS = 3600


@dataclass(slots=True)
class Run:
    kind: str  # "batch" or "ledger"
    key_id: str
    rows: list[dict[str, Any]]
    #: Flat rows for the downloads (the API's CSV columns), in the same order.
    flat: list[dict[str, Any]]
    columns: tuple[str, ...]
    title: str
    extra: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)

    def counts(self) -> Counter[str]:
        return Counter(row_status(r) for r in self.rows)


def row_status(result: dict[str, Any]) -> str:
    """A row's status, or `error` for a row that could not be checked."""
    return "error" if "error" in result else str(result["status"])


class Runs:
    def __init__(self) -> None:
        self._runs: OrderedDict[str, Run] = OrderedDict()

    def add(self, run: Run) -> str:
        self._expire()
        while len(self._runs) >= MAX_RUNS:
            self._runs.popitem(last=False)
        run_id = secrets.token_urlsafe(12)
        self._runs[run_id] = run
        return run_id

    def get(self, run_id: str, key_id: str, kind: str) -> Run | None:
        """The run, if it is this key's and of this kind (else None, as for no run)."""
        self._expire()
        run = self._runs.get(run_id)
        if run is None or run.key_id != key_id or run.kind != kind:
            return None
        return run

    def _expire(self) -> None:
        now = time.monotonic()
        while self._runs:
            oldest = next(iter(self._runs.values()))
            if now - oldest.created < KEEP_SECONDS:
                return
            self._runs.popitem(last=False)
