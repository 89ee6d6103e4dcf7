"""POST /api/v1/verify/batch and `invoice-verify verify --batch`: every row answered, in
order, with per-row errors that never abort the batch."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import SELLER, cancel, package, vn_invoice, vn_key
from tests.verify.test_ledger_facts import FACTS, LINES, lookup, lookup_params
from tests.verify.test_ledger_facts import load as load_facts
from verify.cli.main import app as cli_app
from verify.lookup.batch import MAX_ROWS
from verify.settings import Settings

URL = "/api/v1/verify/batch"


async def load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package(
        [vn_invoice(n) for n in range(1, 4)], [cancel(3)]))
    assert (await resp.json())["result"] == "accepted"


async def lines(resp: Any) -> list[dict[str, Any]]:
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/x-ndjson"
    return [json.loads(line) for line in (await resp.text()).splitlines()]


async def test_json_batch_in_input_order_with_row_errors(cli: Client) -> None:
    await load(cli)
    rows = [vn_key(2), {**vn_key(1), "total_amount": 1}, vn_key(9),
            {**vn_key(1), "seller_tax_id": "0100233480"}, {"colour": "red"}, vn_key(3),
            {"authority_code": "00" + "0" * 31 + "1"}]
    resp = await cli.post(URL, json=rows)
    assert resp.headers["X-Batch-Rows"] == "7"
    results = await lines(resp)
    assert [r["row"] for r in results] == list(range(1, 8))
    assert [r.get("status") or r["error"]["code"] for r in results] == [
        "valid", "mismatch", "not_found", "invalid_key", "unknown_parameter", "cancelled",
        "valid"]
    assert results[1]["mismatches"][0]["field"] == "total_amount"


async def test_csv_batch_and_wrapped_json(cli: Client) -> None:
    await load(cli)
    text = "seller_tax_id,template,series,number,total_amount\n" + "".join(
        f"{SELLER},1,C22TAA,{n},1100000\n" for n in (1, 2, 5))
    resp = await cli.post(URL, data=text.encode(), headers={"Content-Type": "text/csv"})
    assert [r["status"] for r in await lines(resp)] == ["valid", "valid", "not_found"]
    wrapped = await cli.post(URL, json={"lookups": [vn_key(1)]})
    assert [r["status"] for r in await lines(wrapped)] == ["valid"]


async def test_row_budgets_and_redaction_apply_per_row(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    stranger = await make_key("verify")
    results = await lines(await cli.post(URL, json=[vn_key(1)], headers=bearer(stranger)))
    assert results[0]["invoice"]["buyer_tax_id"] is None
    audit = await (await cli.get("/api/v1/admin/audit", params={
        "key_id": stranger.split("_")[1]})).json()
    assert [e["target"] for e in audit["entries"]] == ["vn:0100109106:1:C22TAA:1"]


async def test_unreadable_batches_are_4xx(cli: Client) -> None:
    for body, headers, status in (
            (b"{nope", {"Content-Type": "application/json"}, 400),
            (b'{"lookups": 5}', {"Content-Type": "application/json"}, 400),
            (b"[[1]]", {"Content-Type": "application/json"}, 400),
            (b'[{"number": [1]}]', {"Content-Type": "application/json"}, 400),
            (b"", {"Content-Type": "text/csv"}, 400),
            (b"x", {"Content-Type": "text/plain"}, 415)):
        resp = await cli.post(URL, data=body, headers=headers)
        assert resp.status == status, body
        assert (await resp.json())["error"]["code"]


async def test_too_many_rows(cli: Client) -> None:
    text = "number\n" + "12345678901234567890\n" * (MAX_ROWS + 1)
    resp = await cli.post(URL, data=io.BytesIO(text.encode()),
                          headers={"Content-Type": "text/csv"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "batch_too_large"


@pytest.mark.parametrize("field", [
    {"total_amount": "1e999999"}, {"total_amount": "1E+999999999"}, {"amount": "sNaN"},
    {"number": "9" * 5000}, {"number": "²"}, {"number": "①"}, {"number": "٣"},
    {"issued_on": "２０２２-05-15"}, {"buyer_tax_id": "\x00"}])
async def test_a_row_that_cannot_be_read_never_cuts_the_stream(cli: Client,
                                                              field: dict[str, str]) -> None:
    await load(cli)
    rows = [vn_key(1), {**vn_key(2), **field}, vn_key(1)]
    results = await lines(await cli.post(URL, json=rows))
    assert [r["row"] for r in results] == [1, 2, 3]
    assert results[0]["status"] == results[2]["status"] == "valid"
    assert "error" in results[1] or results[1]["status"] in {"mismatch", "not_found"}


async def test_a_16_mib_csv_is_refused_at_the_row_limit_without_holding_it(cli: Client) -> None:
    body = b"number\n" + b"1\n" * (8 * 1024 * 1024)  # 16 MiB, 8 million one-cell rows

    async def chunks() -> AsyncIterator[bytes]:  # sent as it is read, never copied whole
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    tracemalloc.start()
    try:
        resp = await cli.post(URL, data=chunks(), headers={"Content-Type": "text/csv"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status == 413
    assert (await resp.json())["error"]["details"]["limit"] == MAX_ROWS
    # Lines are counted as the body arrives: refused after the first ~100,000 lines (200 KB),
    # never holding the 16 MiB; reading every row first took about 1.75 GB.
    assert peak < 8 * 1024 * 1024, peak


@pytest.mark.parametrize("body", [
    b"[" + b"{}," * (5 * 1024 * 1024) + b"{}]",  # 15 MiB of empty rows
    b"[" + b'"ab",' * (3 * 1024 * 1024) + b"1]",  # millions of values, no rows at all
    b'number\n"' + b"1," * (512 * 1024) + b'"\n'])  # one CSV row of a million cells
async def test_batches_that_would_unpack_into_millions_of_values(cli: Client,
                                                                 body: bytes) -> None:
    content_type = "text/csv" if body.startswith(b"number") else "application/json"
    tracemalloc.start()
    try:
        resp = await cli.post(URL, data=io.BytesIO(body),
                              headers={"Content-Type": content_type})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status in (400, 413), await resp.text()
    assert (await resp.json())["error"]["code"] in {"batch_too_large", "invalid_batch"}
    assert peak < 4 * len(body) + 16 * 1024 * 1024, peak


async def test_intake_key_may_not_batch_verify(cli: Client, make_key: KeyMaker) -> None:
    provider = await make_key("intake", ["0101300842"])
    assert (await cli.post(URL, json=[vn_key(1)], headers=bearer(provider))).status == 403


def test_cli_batch_writes_csv(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pkg = tmp_path / "p.json"
    pkg.write_text(json.dumps(package([vn_invoice(1)])))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["ingest", str(pkg), "--data-dir", str(data)]).exit_code == 0
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([vn_key(1), vn_key(2), {"number": "x"}]))
    out = tmp_path / "answers.csv"
    result = runner.invoke(cli_app, ["verify", "--batch", str(batch), "--out", str(out),
                                     "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["row"], r["status"], r["error_code"]) for r in rows] == [
        ("1", "valid", ""), ("2", "not_found", ""), ("3", "", "invalid_key")]
    assert "3 rows: " in result.output


async def test_batch_rows_give_the_lookups_facts(
    cli: Client, settings: Settings, tmp_path: Path
) -> None:
    """A batch row, over HTTP and from the command line, answers as the lookup with the same
    fields: the seller's status and warnings, and `outside_window` for a miss issued before
    the verification window (issue 17)."""
    await load_facts(cli)
    rows = [lookup_params(line) for line in LINES[:4]]
    answers = [await lookup(cli, line) for line in LINES[:4]]
    assert [a["status"] for a in answers] == ["valid", "outside_window", "not_found", "mismatch"]
    assert answers[0]["warnings"][0]["code"] == "seller_not_at_registered_address"
    results = await lines(await cli.post(URL, json=rows))
    for result, answer in zip(results, answers, strict=True):
        assert {n: result.get(n) for n in FACTS} == {n: answer.get(n) for n in FACTS}
    batch = tmp_path / "rows.json"
    batch.write_text(json.dumps(rows))
    out = tmp_path / "answers.csv"
    done = await asyncio.to_thread(CliRunner().invoke, cli_app, [
        "verify", "--batch", str(batch), "--out", str(out), "--data-dir",
        str(settings.data_dir)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    cli_rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["status"] for r in cli_rows] == [a["status"] for a in answers]
