"""The tenancy redaction at every exit where a verification answer leaves the service (issue
15 point 5), one test per exit, through the real app: a key that is no party to an invoice
never sees its buyer's tax id or name, whichever way it asks. And `original.xml` answers a
stranger exactly as for an invoice that does not exist, spending its budgets and audited."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import FormData

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import BUYER, SELLER, SELLER_2, authority_code, package, vn_invoice, vn_key
from tests.ledgers import csv_bytes
from tests.verify.test_intake_journal import maintenance, reconcile, wait_out
from tests.verify.test_verify_file import invoice_file
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

BUYER_NAME = "Chi nhánh Công ty TNHH Mua hàng"
OTHER_NAME = "Another buyer Ltd"
PRIVATE = (BUYER, BUYER_NAME, SELLER_2, OTHER_NAME)


def hidden(body: bytes | str) -> bool:
    """None of the buyers' identities is in the body (JSON escapes nothing here: orjson
    writes UTF-8 as is)."""
    text = body.decode() if isinstance(body, bytes) else body
    return not any(value in text for value in PRIVATE)


def redacted(invoice: dict[str, Any]) -> bool:
    return (invoice["buyer_tax_id"], invoice["buyer_name"], invoice["redacted"]) == (
        None, None, ["buyer_tax_id", "buyer_name"])


async def load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package([
        vn_invoice(1), vn_invoice(7, buyer_tax_id=SELLER_2, buyer_name=OTHER_NAME)]))
    assert (await resp.json())["accepted"] == 2


async def test_lookup(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    stranger = await make_key("verify")
    for params in (vn_key(1), {"authority_code": authority_code(1)},
                   {**vn_key(1), "buyer_tax_id": SELLER_2}):
        resp = await cli.get("/api/v1/invoices/lookup", params=params, headers=bearer(stranger))
        body = await resp.read()
        assert hidden(body) or params.get("buyer_tax_id") == SELLER_2  # its own given value
        answer = orjson.loads(body)
        assert redacted(answer["invoice"])
        assert all(m["recorded"] is None for m in answer["mismatches"]
                   if m["field"] == "buyer_tax_id")
    party = await make_key("verify", [BUYER])
    resp = await cli.get("/api/v1/invoices/lookup", params=vn_key(1), headers=bearer(party))
    assert (await resp.json())["invoice"]["buyer_name"] == BUYER_NAME


async def test_batch(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    stranger = await make_key("verify")
    resp = await cli.post("/api/v1/verify/batch", json=[vn_key(1), vn_key(7)],
                          headers=bearer(stranger))
    body = await resp.read()
    assert hidden(body)
    assert all(redacted(orjson.loads(line)["invoice"]) for line in body.splitlines())


async def test_file_check(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    stranger = await make_key("verify")
    given = vn_invoice(7, buyer_tax_id="0102030405", buyer_name="Somebody")
    resp = await cli.post("/api/v1/verify/file", data=invoice_file(given),
                          headers={**bearer(stranger), "Content-Type": "application/xml"})
    body = await resp.read()
    assert resp.status == 200, body
    assert hidden(body)
    answer = orjson.loads(body)
    assert redacted(answer["invoice"])
    assert {m["field"]: m["recorded"] for m in answer["mismatches"]} == {
        "buyer_tax_id": None, "buyer_name": None}


async def test_qr_text(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    stranger = await make_key("verify")
    resp = await cli.post("/api/v1/verify/qr-text", headers=bearer(stranger),
                          json={"payload": f"IVQR1|vn|{SELLER}|1|C22TAA|1|1100000|2022-05-15"})
    body = await resp.read()
    assert resp.status == 200, body
    assert hidden(body)
    assert redacted(orjson.loads(body)["result"]["invoice"])


async def test_qr_photo(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    png = await (await cli.get("/api/v1/invoices/vn:0100109106:1:C22TAA:1/qr.png")).read()
    stranger = await make_key("verify")
    form = FormData()
    form.add_field("image", png, filename="photo.png", content_type="image/png")
    resp = await cli.post("/api/v1/verify/qr", data=form, headers=bearer(stranger))
    body = await resp.read()
    assert resp.status == 200, body
    [code] = orjson.loads(body)["codes"]
    assert redacted(code["result"]["invoice"])
    assert hidden(body)


async def test_ledger(cli: Client, make_key: KeyMaker) -> None:
    """The buyer's own auditor sees its invoices; a line naming an invoice made out to
    someone else shows that buyer to nobody but its parties (JSON and CSV)."""
    await load(cli)
    auditor = await make_key("audit", [BUYER])
    ledger = csv_bytes(["seller_tax_id", "template", "series", "number"],
                       [[SELLER, "1", "C22TAA", 7]])
    for fmt in ("json", "csv"):
        resp = await cli.post("/api/v1/reports/ledger", data=ledger,
                              params={"buyer_tax_id": BUYER, "year": "2022", "format": fmt},
                              headers={**bearer(auditor), "Content-Type": "text/csv"})
        body = (await resp.read()).decode()
        assert resp.status == 200, body
        assert SELLER_2 not in body
        assert OTHER_NAME not in body
        if fmt == "json":
            [line] = orjson.loads(body)["lines"]
            assert redacted(line["invoice"])
            assert line["mismatches"] == [
                {"field": "buyer_tax_id", "given": BUYER, "recorded": None}]


async def test_gaps(cli: Client, make_key: KeyMaker) -> None:
    """A resolved gap carries the final answer: its requester saw the buyer there."""
    stranger = await make_key("verify")
    await maintenance(cli, 0.5)
    resp = await cli.get("/api/v1/invoices/lookup", params=vn_key(1), headers=bearer(stranger))
    asked = await resp.json()
    assert asked["status"] == "unconfirmed"
    await wait_out(cli)
    await load(cli)
    await reconcile(cli)
    one = await cli.get(f"/api/v1/gaps/{asked['gap_id']}", headers=bearer(stranger))
    every = await cli.get("/api/v1/gaps", headers=bearer(stranger))
    for resp in (one, every):
        body = await resp.read()
        assert resp.status == 200, body
        assert hidden(body)
    gap = orjson.loads(await one.read())
    assert gap["status"] == "resolved"
    assert gap["answer"]["status"] == "valid"
    assert redacted(gap["answer"]["invoice"])
    admin_view = await (await cli.get(f"/api/v1/gaps/{asked['gap_id']}")).json()
    assert admin_view["answer"]["invoice"]["buyer_tax_id"] == BUYER


async def test_original_xml_is_the_same_for_not_yours_and_absent(
        cli: Client, make_key: KeyMaker) -> None:
    """403 for "not yours" against 404 for "absent" told any key which invoices exist, and
    spent nothing and wrote no audit record."""
    await load(cli)
    base = "/api/v1/invoices/vn:0100109106:1:C22TAA:{}/original.xml"
    stranger = await make_key("verify")
    answers = []
    for number in (1, 99):  # exists (not the stranger's), absent
        resp = await cli.get(base.format(number), headers=bearer(stranger))
        body = await resp.json()
        body["error"]["details"] = {}
        answers.append((resp.status, body))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    audit = await (await cli.get("/api/v1/admin/audit", params={
        "key_id": stranger.split("_")[1], "action": "original.read"})).json()
    assert sorted((e["target"], e["outcome"]) for e in audit["entries"]) == [
        ("vn:0100109106:1:C22TAA:1", "not_found"), ("vn:0100109106:1:C22TAA:99", "not_found")]


async def test_original_xml_spends_the_lookup_budgets(aiohttp_client: Any,
                                                      tmp_path: Any) -> None:
    settings = Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "d"),
                                  "INVOICE_RATE_MISSES_PER_HOUR": "2"})
    async with open_access_db(settings.access_path) as conn:
        token = (await KeyStore(conn).create(Role.VERIFY))[0]
    cli: Client = await aiohttp_client(create_app(settings))
    statuses = [(await cli.get(f"/api/v1/invoices/vn:0100109106:1:C22TAA:{n}/original.xml",
                               headers=bearer(token))).status for n in (1, 2, 3)]
    assert statuses == [404, 404, 429]


def test_every_route_open_to_a_non_admin_key_is_classified() -> None:
    """A route added for verify, audit or intake keys must say whether answers leave through
    it (and then get its test here) or why none does (`verify.access.tenancy`)."""
    from verify.access.roles import PUBLIC, ROUTE_ACCESS, Role
    from verify.access.tenancy import ANSWER_ROUTES, NO_ANSWER_ROUTES

    open_to_others = {name for name, roles in ROUTE_ACCESS.items()
                      if roles is not PUBLIC and roles - {Role.ADMIN}}
    assert open_to_others == ANSWER_ROUTES | set(NO_ANSWER_ROUTES)
    assert not ANSWER_ROUTES & set(NO_ANSWER_ROUTES)
    tests = {name for name in globals() if name.startswith("test_")}
    exits = {"invoices.lookup": "test_lookup", "verify.batch": "test_batch",
             "verify.qr": "test_qr_photo", "verify.qr_text": "test_qr_text",
             "verify.file": "test_file_check",
             "reports.ledger": "test_ledger", "gaps.list": "test_gaps", "gaps.get": "test_gaps"}
    assert set(exits) == ANSWER_ROUTES
    assert set(exits.values()) <= tests
