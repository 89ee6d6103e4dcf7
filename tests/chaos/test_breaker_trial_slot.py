"""Found by the Elasticsearch chaos test: intake must not take the primary breaker's
half-open trial slot unless it reports the outcome.

`JournaledIntake.primary_usable()` calls `DependencyGuard.allow()`, which in half-open
reserves the breaker's single trial call. When intake then does not call the primary (an
older journal entry is still pending, so the package queues behind it) and never reports,
the slot stays taken: the breaker refuses every later call, including the health monitor's
probes, so it stays half-open for good. Lookups then answer from the replica forever and the
reconciler (which waits for a closed breaker) never runs. In-process here, with the real app
and files, so the failure is immediate and exact.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fallback.breaker import BreakerState
from fallback.outages import System
from tests.chaos.polling import poll
from tests.conftest import Client
from tests.factories import package, vn_invoice, vn_key
from verify.app import create_app
from verify.keys import OUTAGES, RESILIENCE
from verify.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The breaker opens on one failure and tries again after a second; no background
    reconciler run or probe gets in the way of the sequence below."""
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_INSECURE_LOCAL": "1",
                              "INVOICE_BREAKER_FAILURES": "1",
                              "INVOICE_BREAKER_OPEN_SECONDS": "1",
                              "INVOICE_PROBE_INTERVAL_SECONDS": "3600",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600"})


async def test_a_queued_intake_leaves_the_half_open_trial_to_others(
        aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings) -> None:
    app = create_app(settings)
    cli = await aiohttp_client(app)
    now = datetime.now(UTC)
    # one package queued behind a short maintenance window: the journal holds it pending
    window = await app[OUTAGES].declare(System.PRIMARY, now - timedelta(minutes=1),
                                        now + timedelta(seconds=0.3), "tests", "tests")
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
    assert resp.status == 202
    assert window.end is not None
    await poll(lambda: app[OUTAGES].active(System.PRIMARY) is None, 5, "the window's end")

    # the primary fails once (breaker open), and its open period passes
    breaker = app[RESILIENCE].primary.breaker
    await app[RESILIENCE].primary.failed("tests: a failed read")
    assert breaker.state is BreakerState.OPEN

    def cooled_down() -> bool:
        opened = breaker.opened_at
        return opened is not None and datetime.now(UTC) - opened >= timedelta(seconds=1.05)

    await poll(cooled_down, 5, "the breaker's open period to pass")

    # another package: it queues behind the pending one (the primary is not called)
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(2)]))
    assert resp.status == 202

    # the next lookup must be free to be the trial call, and closes the breaker
    answer: dict[str, Any] = await (await cli.get(
        "/api/v1/invoices/lookup", params={k: str(v) for k, v in vn_key(99).items()})).json()
    assert (answer["status"], answer["source"]) == ("not_found", "primary"), answer
    assert breaker.snapshot()["state"] == BreakerState.CLOSED
