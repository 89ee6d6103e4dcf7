"""Resolved gaps answer as a lookup does (issue 17: second factor, seller status and window
on gap answers and callbacks), through the real app: a lookup that could not be answered
during a maintenance window of the primary records a gap; the reconciler resolves it; then
`GET /gaps/{id}` and the gap callback carry the seller's status warning (docs/vn-rules.md §4)
and the verification window's reason (docs/cn-rules.md §4) as a lookup would, and never
the amounts and parties a lookup without the Chinese second factor withholds
(docs/cn-rules.md §4.1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, EsTarget, KeyMaker, bearer
from tests.factories import SELLER, cn_invoice, package, vn_invoice, vn_key
from tests.fallback.test_callbacks import Receiver, receiver  # noqa: F401
from tests.indexer.store.conftest import fresh_prefix
from tests.verify.backend_apps import (
    BACKENDS,
    app_on_each_backend,  # noqa: F401
)
from tests.verify.test_intake_journal import maintenance, reconcile, wait_out
from verify.settings import Settings

LOOKUP = "/api/v1/invoices/lookup"
CN_KEY = {"code": "013002200211", "number": "81532753"}
CN_BUYER = "91310115MA1K3XYZ2P"


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Each store in turn (the registry the seller's status is read from is the store's);
    a gap the primary still lacks is resolved `missing` at the first run (no grace)."""
    env = {"INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_CALLBACK_ALLOW_PRIVATE": "1",
           "INVOICE_GAP_GRACE_HOURS": "0"}
    if request.param == "elasticsearch":
        target: EsTarget = request.getfixturevalue("es_target")
        env |= {"INVOICE_ES_URL": target.url, "INVOICE_ES_INDEX_PREFIX": fresh_prefix()}
    return Settings.from_env(env)


async def unconfirmed(cli: Client, params: dict[str, Any],
                      headers: dict[str, str] | None = None) -> str:
    resp = await cli.get(LOOKUP, params={k: str(v) for k, v in params.items()},
                         headers=headers or {})
    answer = await resp.json()
    assert answer["status"] == "unconfirmed", answer
    gap_id: str = answer["gap_id"]
    return gap_id


async def gap_answer(cli: Client, gap_id: str,
                     headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await cli.get(f"/api/v1/gaps/{gap_id}", headers=headers or {})
    gap: dict[str, Any] = await resp.json()
    assert resp.status == 200, gap
    assert gap["status"] == "resolved"
    listed = await (await cli.get("/api/v1/gaps", headers=headers or {})).json()
    assert [g["answer"] for g in listed["gaps"] if g["id"] == gap_id] == [gap["answer"]]
    answer: dict[str, Any] = gap["answer"]
    return answer


async def resolve(cli: Client, gap_id: str) -> None:
    """Reconcile runs until the gap is resolved: on the shared ledger (Elasticsearch) a gap
    recorded by this process reaches the ledger a run reads after its local buffer drains,
    so the first run may not see it yet."""
    for _ in range(50):
        await reconcile(cli)
        gap = await (await cli.get(f"/api/v1/gaps/{gap_id}")).json()
        if gap["status"] == "resolved":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"gap {gap_id} still open after 50 reconcile runs")


def callbacks(got: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for body in got.bodies]


async def test_the_seller_status_warning(cli: Client, receiver: Receiver) -> None:  # noqa: F811
    await maintenance(cli, 0.5)
    gap_id = await unconfirmed(cli, {**vn_key(1), "callback_url": f"{receiver.base}/hook"})
    await wait_out(cli)
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
    assert (await resp.json())["accepted"] == 1
    resp = await cli.post("/api/v1/admin/registry", json={"taxpayers": [{
        "tax_id": SELLER, "name": "x", "status": "06", "status_since": "2024-01-01"}]})
    assert resp.status == 200, await resp.text()
    await resolve(cli, gap_id)
    warning = {"code": "seller_not_at_registered_address", "when": "today", "status": "06"}
    answer = await gap_answer(cli, gap_id)
    assert answer["status"] == "valid"
    assert answer["invoice"]["seller_status"] == {"known": True, "on_issue_date": None,
                                                  "today": "06"}
    assert answer["warnings"] == [warning]
    lookup = await (await cli.get(LOOKUP, params={k: str(v) for k, v in vn_key(1).items()})
                    ).json()
    assert lookup["warnings"] == answer["warnings"]
    [sent] = callbacks(receiver)
    assert (sent["status"], sent["warnings"]) == ("valid", [warning])


async def test_the_window_reason_of_a_miss(cli: Client, receiver: Receiver) -> None:  # noqa: F811
    await maintenance(cli, 0.5)
    asked = {**vn_key(9), "issued_on": "2020-06-01", "callback_url": f"{receiver.base}/hook"}
    gap_id = await unconfirmed(cli, asked)
    await wait_out(cli)
    await resolve(cli, gap_id)
    answer = await gap_answer(cli, gap_id)
    assert (answer["status"], answer["reason"]) == ("outside_window",
                                                    "older_than_verification_window")
    [sent] = callbacks(receiver)
    assert (sent["resolution"], sent["status"], sent["reason"]) == (
        "missing", "outside_window", "older_than_verification_window")
    asked.pop("callback_url")
    lookup = await (await cli.get(LOOKUP, params={k: str(v) for k, v in asked.items()})).json()
    assert (lookup["status"], lookup["reason"]) == (answer["status"], answer["reason"])


async def test_no_amounts_or_parties_without_the_second_factor(
        cli: Client, make_key: KeyMaker, receiver: Receiver) -> None:  # noqa: F811
    stranger = bearer(await make_key("verify"))
    buyer = bearer(await make_key("verify", [CN_BUYER]))
    await maintenance(cli, 0.5)
    hook = {"callback_url": f"{receiver.base}/hook"}
    gap_id = await unconfirmed(cli, {**CN_KEY, **hook}, stranger)
    assert await unconfirmed(cli, CN_KEY, buyer) == gap_id
    await wait_out(cli)
    resp = await cli.post("/api/v1/packages", json=package([cn_invoice()]))
    assert (await resp.json())["accepted"] == 1
    await resolve(cli, gap_id)
    withheld = await gap_answer(cli, gap_id, stranger)
    lookup = await (await cli.get(LOOKUP, params=CN_KEY, headers=stranger)).json()
    for answer in (withheld, lookup):
        assert answer["status"] == "valid"
        assert answer["withheld"] == ["amounts", "parties"]
        assert answer["missing_factor"] == "check_code_last6"
        facts = answer["invoice"]
        assert [facts[f] for f in ("total_amount", "amount_before_tax", "tax_amount",
                                   "seller_tax_id", "buyer_tax_id")] == [None] * 5
    assert "217.62" not in json.dumps(withheld)
    for whole in (await gap_answer(cli, gap_id, buyer), await gap_answer(cli, gap_id)):
        assert whole["invoice"]["total_amount"] == "217.62"
        assert "withheld" not in whole
    [sent] = callbacks(receiver)
    assert sent["status"] == "valid"
    assert "217.62" not in json.dumps(sent)
