"""A miss's query string kept as its parse (`verify.lookup.reuse.Parsed`): built again
from it without being parsed while it is `unconfirmed`, the view's way again once not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from tests.conftest import Client
from tests.factories import package, vn_invoice, vn_key
from tests.verify.test_answer_reuse import _declare, app_of, ask, counts
from verify.access.roles import Principal, Role
from verify.lookup.reuse import ANSWER_REUSE, Parsed

ANYONE = Principal("anyone", Role.VERIFY, frozenset())


async def test_a_parsed_miss_found_at_last_goes_the_views_way_again(cli: Client) -> None:
    """A query string kept as a parse whose lookup is no longer `unconfirmed` (here the
    invoice taken in during the window, answered from the journal) loses its parse; while
    it was `unconfirmed` each lookup of it was built (none reused)."""
    now = datetime.now(UTC)
    await _declare(cli, "primary", now - timedelta(minutes=1), now + timedelta(hours=1))
    missing = {k: str(v) for k, v in vn_key(2).items()}
    assert [(await ask(cli, missing))["status"] for _ in range(2)] == ["unconfirmed"] * 2
    reuse = app_of(cli)[ANSWER_REUSE]
    assert isinstance(reuse.find(ANYONE, urlencode(missing)), Parsed)
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(2)]))
    assert resp.status in (200, 202), await resp.text()
    assert (await ask(cli, missing))["status"] == "valid"
    assert reuse.find(ANYONE, urlencode(missing)) is None
    assert await counts(cli) == (0, 3)
