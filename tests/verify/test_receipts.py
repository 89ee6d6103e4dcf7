"""Signed receipts (docs/receipts.md) through the real app: a receipt verifies after a restart
and after a key rotation, fails when any byte of it changes, renders as a one-page PDF whose
QR code is the receipt itself, says when its answer was degraded or unconfirmed, and can be
checked with nothing but the published JWK Set and a JWS library (the auditor's way, as the
docs show it)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pypdfium2
import pytest
from aiohttp import FormData
from joserfc import jws
from joserfc.jwk import KeySet as JwkSet
from pyzbar.pyzbar import decode as zbar_decode
from redis.asyncio import Redis
from typer.testing import CliRunner

from indexer.codec import invoice_to_doc
from indexer.store.elasticsearch import PATIENT
from tests.conftest import Client, EsTarget, KeyMaker, bearer
from tests.factories import BUYER, SELLER, SELLER_2, cancel, package, vn_invoice, vn_key
from tests.indexer.store.conftest import fresh_prefix
from tests.verify.test_distributed import REDIS, namespace  # noqa: F401 (fixture)
from tests.verify.test_intake_journal import maintenance
from verify.access.apikeys import KeyStore as ApiKeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.cli.main import app as cli_app
from verify.keys import STORE
from verify.receipts.claims import record_digest
from verify.receipts.keyset import KeySet
from verify.receipts.keystore import (
    EsKeyStore,
    FileKeyStore,
    KeyStore,
    RedisKeyStore,
    load_or_create,
    rotate,
)
from verify.receipts.state import RECEIPTS
from verify.settings import Settings, SettingsError

LOOKUP = "/api/v1/invoices/lookup"
VERIFY = "/api/v1/receipts/verify"
PDF = "/api/v1/receipts/pdf"
JWKS = "/.well-known/jwks.json"
DOCS = Path(__file__).parents[2] / "docs" / "receipts.md"
runner = CliRunner()
Maker = Callable[..., Awaitable[Client]]


async def load(cli: Client) -> None:
    resp = await cli.post(
        "/api/v1/packages",
        json=package(
            [vn_invoice(1), vn_invoice(7, buyer_tax_id=SELLER_2, buyer_name="Another buyer Ltd")]
        ),
    )
    assert (await resp.json())["accepted"] == 2


async def answer_with_receipt(
    cli: Client, number: int = 1, token: str | None = None, **extra: Any
) -> dict[str, Any]:
    params = {**{k: str(v) for k, v in vn_key(number).items()}, "receipt": "true", **extra}
    resp = await cli.get(LOOKUP, params=params, headers=bearer(token) if token else None)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert isinstance(body["receipt"], str)
    return body


async def check(cli: Client, receipt: str) -> dict[str, Any]:
    resp = await cli.post(VERIFY, json={"receipt": receipt})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def claims_of(receipt: str) -> dict[str, Any]:
    """The payload, read without checking anything (as anyone holding a receipt can)."""
    payload = receipt.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


async def cli_run(*args: str) -> Any:
    """A command, in a thread: it runs its own event loop."""
    return await asyncio.to_thread(runner.invoke, cli_app, list(args), catch_exceptions=False)


async def open_app(aiohttp_client: Maker, settings: Settings, token: str) -> Client:
    client: Client = await aiohttp_client(create_app(settings), headers=bearer(token))
    return client


# ------------------------------------------------------------------------------ the answer


async def test_a_lookup_receipt_holds_the_answer_as_sent(cli: Client) -> None:
    await load(cli)
    answer = await answer_with_receipt(cli, total_amount="999")
    verdict = await check(cli, answer["receipt"])
    assert verdict["valid"] is True
    claims = verdict["claims"]
    for name in ("status", "scheme", "key", "mismatches", "source", "degraded", "as_of", "gap_id"):
        assert claims[name] == answer[name], name
    assert claims["status"] == "mismatch"
    assert claims["invoice"] == answer["invoice"]["id"] == "vn:0100109106:1:C22TAA:1"
    app = cli.server.app
    assert app is not None
    stored = await app[STORE].get_invoice("vn:0100109106:1:C22TAA:1")
    assert stored is not None
    assert claims["record_sha256"] == record_digest(stored)
    assert re.fullmatch(r"[0-9a-f]{64}", claims["record_sha256"])
    keys = (await (await cli.get("/api/v1/admin/keys")).json())["keys"]
    assert claims["caller"] == next(k["key_id"] for k in keys if k["name"] == "tests")
    header = json.loads(base64.urlsafe_b64decode(answer["receipt"].split(".")[0] + "=="))
    assert header == {"alg": "Ed25519", "kid": verdict["kid"], "typ": "invoice-receipt+jwt"}
    plain = await cli.get(LOOKUP, params={k: str(v) for k, v in vn_key(1).items()})
    assert "receipt" not in await plain.json()


async def test_the_caller_and_what_a_stranger_was_shown(cli: Client, make_key: KeyMaker) -> None:
    """A receipt never claims more than its answer showed: a key that is no party to the
    invoice sees the buyer's tax id withheld in its mismatch, and so does its receipt."""
    await load(cli)
    stranger = await make_key("verify", name="stranger")
    keys = (await (await cli.get("/api/v1/admin/keys")).json())["keys"]
    stranger_id = next(k["key_id"] for k in keys if k["name"] == "stranger")
    answer = await answer_with_receipt(cli, 1, stranger, buyer_tax_id=SELLER_2)
    claims = (await check(cli, answer["receipt"]))["claims"]
    assert claims["caller"] == stranger_id
    assert (
        claims["mismatches"]
        == answer["mismatches"]
        == [{"field": "buyer_tax_id", "given": SELLER_2, "recorded": None}]
    )
    payload = base64.urlsafe_b64decode(answer["receipt"].split(".")[1] + "==").decode()
    assert BUYER not in payload
    assert "Mua hàng" not in payload


async def test_a_changed_record_is_receipted_with_its_new_digest(cli: Client) -> None:
    """The digest is cached per record version: receipts of the same record share it, and a
    record changed by a later package (cancelled) is digested anew, as its stored document
    reads now (computed here from the store, not through the receipts' cache)."""
    await load(cli)

    async def stored_digest() -> str:
        app = cli.server.app
        assert app is not None
        stored = await app[STORE].get_invoice("vn:0100109106:1:C22TAA:1")
        assert stored is not None
        doc = orjson.dumps(invoice_to_doc(stored), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(doc).hexdigest()

    first = claims_of((await answer_with_receipt(cli))["receipt"])
    again = claims_of((await answer_with_receipt(cli))["receipt"])
    assert first["record_sha256"] == again["record_sha256"] == await stored_digest()
    resp = await cli.post(
        "/api/v1/packages", json=package(notices=[cancel(1)], package_id="CANCEL-0001")
    )
    assert resp.status < 300, await resp.text()
    after = claims_of((await answer_with_receipt(cli))["receipt"])
    assert after["status"] == "cancelled"
    assert after["record_sha256"] == await stored_digest() != first["record_sha256"]


async def test_a_miss_is_receipted_without_a_record(cli: Client) -> None:
    answer = await answer_with_receipt(cli, 424242)
    claims = (await check(cli, answer["receipt"]))["claims"]
    assert (claims["status"], claims["invoice"], claims["record_sha256"]) == (
        "not_found",
        None,
        None,
    )


async def test_the_receipt_parameter_is_read_strictly(cli: Client) -> None:
    key = {k: str(v) for k, v in vn_key(1).items()}
    for query, code in (
        ({**key, "receipt": "yes please"}, "invalid_parameter"),
        ([*key.items(), ("receipt", "true"), ("receipt", "true")], "repeated_parameter"),
    ):
        resp = await cli.get(LOOKUP, params=query)
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == code
    resp = await cli.get(LOOKUP, params={**key, "receipt": "false"})
    assert resp.status == 200
    assert "receipt" not in await resp.json()


async def test_qr_text_and_photo_answers_carry_a_receipt_per_code(cli: Client) -> None:
    await load(cli)
    resp = await cli.post(
        "/api/v1/verify/qr-text",
        params={"receipt": "true"},
        json={"payload": f"IVQR1|vn|{SELLER}|1|C22TAA|1|1100000|2022-05-15"},
    )
    result = (await resp.json())["result"]
    assert (await check(cli, result["receipt"]))["claims"]["status"] == result["status"]
    png = await (await cli.get("/api/v1/invoices/vn:0100109106:1:C22TAA:7/qr.png")).read()
    form = FormData()
    form.add_field("image", png, filename="photo.png", content_type="image/png")
    resp = await cli.post("/api/v1/verify/qr", params={"receipt": "true"}, data=form)
    [code] = (await resp.json())["codes"]
    claims = (await check(cli, code["result"]["receipt"]))["claims"]
    assert claims["invoice"] == "vn:0100109106:1:C22TAA:7"
    resp = await cli.post(
        "/api/v1/verify/qr-text", params={"recipt": "true"}, json={"payload": "x"}
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "unknown_parameter")


async def test_every_batch_row_carries_its_receipt(cli: Client) -> None:
    await load(cli)
    resp = await cli.post(
        "/api/v1/verify/batch", params={"receipt": "true"}, json=[vn_key(1), vn_key(404)]
    )
    rows = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert [r["status"] for r in rows] == ["valid", "not_found"]
    for row in rows:
        claims = (await check(cli, row["receipt"]))["claims"]
        assert (claims["status"], claims["key"]) == (row["status"], row["key"])
    plain = await cli.post("/api/v1/verify/batch", json=[vn_key(1)])
    assert "receipt" not in orjson.loads(await plain.read())


async def test_concurrent_lookups_each_get_their_own_receipt(cli: Client) -> None:
    """Receipts asked for at once are signed in one burst of the event loop: each answer still
    carries the receipt of exactly itself, and each verifies."""
    await load(cli)
    answers = await asyncio.gather(
        *(answer_with_receipt(cli, number) for number in (1, 7, 404, 1, 7, 404, 1, 7))
    )
    assert len({answer["receipt"] for answer in answers}) == len(answers)
    for answer in answers:
        claims = (await check(cli, answer["receipt"]))["claims"]
        assert (claims["status"], claims["key"]) == (answer["status"], answer["key"])


async def test_a_burst_signs_every_receipt_asked_in_one_turn() -> None:
    """Signed together (`Receipts.sign_soon`), as `sign` would sign each alone: a waiter
    that gave up (cancelled) leaves the others' receipts made and good."""
    from verify.receipts.signing import Receipts

    receipts = Receipts(KeySet.generate(), "invoice-verify")
    asked = [
        asyncio.ensure_future(receipts.sign_soon({"status": "valid", "n": n}, None, f"k{n}"))
        for n in range(6)
    ]
    asked[2].cancel()
    done = await asyncio.gather(*asked, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    for n, result in enumerate(done):
        if n == 2:
            continue
        assert isinstance(result, tuple)
        token, receipt_id = result
        claims = receipts.check(token).claims
        assert (claims["caller"], claims["jti"]) == (f"k{n}", receipt_id)


# ---------------------------------------------------------------------- degraded, unconfirmed


async def test_degraded_and_unconfirmed_answers_say_so_in_their_receipts(cli: Client) -> None:
    await load(cli)
    await maintenance(cli, 60)
    found = await answer_with_receipt(cli, 1)
    claims = (await check(cli, found["receipt"]))["claims"]
    assert (claims["source"], claims["degraded"], claims["status"]) == ("replica", True, "valid")
    verdict = await check(cli, found["receipt"])
    assert verdict["statement"].startswith("Answered valid, DEGRADED: from the replica copy")
    missing = await answer_with_receipt(cli, 31337)
    verdict = await check(cli, missing["receipt"])
    claims = verdict["claims"]
    assert claims["status"] == "unconfirmed" == missing["status"]
    assert (claims["reason"], claims["degraded"]) == ("primary_down", True)
    assert claims["gap_id"] == missing["gap_id"] is not None
    assert claims["record_sha256"] is None
    assert verdict["statement"].startswith("UNCONFIRMED: ")
    assert "does not say the invoice exists or does not exist" in verdict["statement"]


# ---------------------------------------------------------------------- any byte changed


def _flips(token: str) -> list[str]:
    """The receipt with one character changed: at the start, middle and end of each of its
    three segments, and a few more in the payload."""
    header, payload, signature = token.split(".")
    starts = (0, len(header) + 1, len(header) + len(payload) + 2)
    places: set[int] = set()
    for start, part in zip(starts, (header, payload, signature), strict=True):
        places |= {start, start + len(part) // 2, start + len(part) - 1}
    places |= {starts[1] + i for i in range(3, len(payload), max(1, len(payload) // 9))}
    out = []
    for i in sorted(places):
        for repl in sorted({"A", "B", "g", "_"} - {token[i]}):
            out.append(token[:i] + repl + token[i + 1 :])
    return out


async def test_any_changed_byte_fails(cli: Client) -> None:
    await load(cli)
    token = (await answer_with_receipt(cli))["receipt"]
    assert (await check(cli, token))["valid"] is True
    keys = JwkSet.import_key_set(await (await cli.get(JWKS)).json())
    changed = [*_flips(token), token + "A", token[:-1], "A" + token, token.replace(".", "..", 1)]
    assert len(changed) > 40
    for bad in changed:
        verdict = await check(cli, bad)
        assert verdict["valid"] is False, bad
        assert verdict["error"]["code"] in {
            "bad_signature",
            "malformed",
            "unsupported",
            "unknown_key",
        }
        with pytest.raises(Exception):  # noqa: B017 (joserfc's errors, or a decoding error)
            jws.deserialize_compact(bad, keys, algorithms=["Ed25519"])
    pdf = await cli.post(PDF, json={"receipt": changed[0]})
    assert (pdf.status, (await pdf.json())["error"]["code"]) == (422, "invalid_receipt")


async def test_another_keys_receipt_and_other_algorithms_are_refused(cli: Client) -> None:
    """Signed by a key that is not ours, or claiming `none` or an HMAC under our key id."""
    foreign = KeySet.generate()
    from verify.receipts.signing import Receipts

    token, _ = Receipts(foreign, "elsewhere").sign({"status": "valid"}, None, "k")
    assert (await check(cli, token))["error"]["code"] == "unknown_key"
    ours = await answer_with_receipt(cli, 5)
    kid = (await check(cli, ours["receipt"]))["kid"]
    payload = ours["receipt"].split(".")[1]
    for alg in ("none", "HS256", "EdDSA"):
        head = (
            base64.urlsafe_b64encode(
                orjson.dumps({"alg": alg, "kid": kid, "typ": "invoice-receipt+jwt"})
            )
            .rstrip(b"=")
            .decode()
        )
        verdict = await check(cli, f"{head}.{payload}.{ours['receipt'].split('.')[2]}")
        assert verdict["valid"] is False
        assert verdict["error"]["code"] in {"unsupported", "malformed"}


# ---------------------------------------------------------------------- restart, rotation


async def test_a_receipt_verifies_after_a_restart_and_after_a_rotation(
    aiohttp_client: Maker, settings: Settings, admin_token: str
) -> None:
    first = await open_app(aiohttp_client, settings, admin_token)
    await load(first)
    old = (await answer_with_receipt(first))["receipt"]
    old_kid = (await check(first, old))["kid"]
    keys_file = settings.data_dir / "receipt-keys.json"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    await first.close()

    second = await open_app(aiohttp_client, settings, admin_token)  # a restart
    assert (await check(second, old))["kid"] == old_kid

    rotated = await cli_run("receipt", "rotate-key", "--data-dir", str(settings.data_dir))
    assert rotated.exit_code == 0, rotated.output
    new_kid = json.loads(rotated.stdout)["current"]
    assert new_kid != old_kid
    stored = json.loads(keys_file.read_text())
    assert [k["kid"] for k in stored["keys"]] == [new_kid, old_kid]
    assert "d" not in stored["keys"][1]["jwk"]  # the retired key's private half is gone
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600

    third = await open_app(aiohttp_client, settings, admin_token)  # after the rotation
    new = (await answer_with_receipt(third))["receipt"]
    assert (await check(third, new))["kid"] == new_kid
    assert (await check(third, old))["valid"] is True
    jwks = await (await third.get(JWKS, headers={"Authorization": ""})).json()
    assert [k["kid"] for k in jwks["keys"]] == [new_kid, old_kid]
    assert all("d" not in k for k in jwks["keys"])
    # the process started before the rotation learns the new key from the first receipt
    # that names it, without waiting for its periodic look
    assert (await check(second, new))["valid"] is True


# ---------------------------------------------------------------------- PDF


def _pdf_text_and_qr(pdf: bytes) -> tuple[str, list[str]]:
    document = pypdfium2.PdfDocument(pdf)
    try:
        assert len(document) == 1
        page = document[0]
        text = page.get_textpage().get_text_range()
        image = page.render(scale=150 / 72).to_pil().convert("L")
    finally:
        document.close()
    return text, [found.data.decode() for found in zbar_decode(image)]


async def test_the_pdf_opens_and_its_qr_code_is_the_receipt(cli: Client) -> None:
    await load(cli)
    await maintenance(cli, 60)
    token = (await answer_with_receipt(cli, 7))["receipt"]
    resp = await cli.post(PDF, json={"receipt": token})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/pdf"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="receipt-')
    pdf = await resp.read()
    assert pdf.startswith(b"%PDF-")
    text, codes = await asyncio.to_thread(_pdf_text_and_qr, pdf)
    assert codes == [token]
    assert "vn:0100109106:1:C22TAA:7" in text
    assert "DEGRADED" in text
    assert "replica" in text
    assert claims_of(token)["record_sha256"] in text.replace("\r", "").replace("\n", "")
    jose = await cli.post(PDF, data=token + "\n", headers={"Content-Type": "application/jose"})
    assert jose.status == 200


# ---------------------------------------------------------------------- the auditor's way


def _doc_block(language: str, marker: str) -> str:
    """The fenced block of docs/receipts.md that contains `marker`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.DOTALL)
    return next(b for b in blocks if marker in b)


async def test_an_auditor_verifies_with_the_jwks_and_a_jws_library(
    cli: Client, tmp_path: Path
) -> None:
    """The docs' own snippets, run as written: only the saved JWK Set and the receipt, no
    service, no code of ours."""
    await load(cli)
    token = (await answer_with_receipt(cli))["receipt"]
    jwks = await (await cli.get(JWKS, headers={"Authorization": ""})).read()
    (tmp_path / "jwks.json").write_bytes(jwks)
    (tmp_path / "receipt.jws").write_text(token + "\n")
    cwd = Path.cwd()
    for marker in ("from joserfc", "from cryptography"):
        snippet = _doc_block("python", marker)
        assert len(snippet.strip().splitlines()) <= 12
        os.chdir(tmp_path)
        try:
            scope: dict[str, Any] = {}
            exec(compile(snippet, f"docs/receipts.md ({marker})", "exec"), scope)
        finally:
            os.chdir(cwd)
        assert scope["receipt"]["invoice"] == "vn:0100109106:1:C22TAA:1"
        middle = len(token) // 2  # in the payload
        tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
        (tmp_path / "receipt.jws").write_text(tampered)
        os.chdir(tmp_path)
        try:
            with pytest.raises(Exception):  # noqa: B017 (each library's own error)
                exec(compile(snippet, "tampered", "exec"), {})
        finally:
            os.chdir(cwd)
        (tmp_path / "receipt.jws").write_text(token)


async def test_the_command_line_checks_offline(
    cli: Client, settings: Settings, tmp_path: Path
) -> None:
    await load(cli)
    answer = await answer_with_receipt(cli)
    saved = tmp_path / "answer.json"
    saved.write_text(json.dumps(answer))
    token_file = tmp_path / "receipt.jws"
    token_file.write_text(answer["receipt"] + "\n")
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(await (await cli.get(JWKS)).read())
    data = str(settings.data_dir)
    for args in (
        ("receipt", "verify", str(saved), "--data-dir", data),
        ("receipt", "verify", str(token_file), "--jwks", str(jwks)),
    ):
        result = await cli_run(*args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["claims"]["status"] == "valid"
    token_file.write_text(_flips(answer["receipt"])[0])
    result = await cli_run("receipt", "verify", str(token_file), "--jwks", str(jwks))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["valid"] is False
    listed = await cli_run("receipt", "jwks", "--data-dir", data)
    assert json.loads(listed.stdout) == json.loads(jwks.read_text())


# ---------------------------------------------------------------------- budgets, audit


async def test_receipts_are_audited_and_checks_spend_the_key_budget(
    aiohttp_client: Maker, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "INVOICE_DATA_DIR": str(tmp_path / "data"),
            "INVOICE_RATE_VERIFY_BURST": "4",
            "INVOICE_RATE_VERIFY_PER_MINUTE": "1",
        }
    )
    async with open_access_db(settings.access_path) as conn:
        admin, _ = await ApiKeyStore(conn).create(Role.ADMIN)
        scanner, record = await ApiKeyStore(conn).create(Role.VERIFY, name="scanner")
    cli = await open_app(aiohttp_client, settings, admin)
    await load(cli)
    answer = await answer_with_receipt(cli, 1, scanner)  # 1 token
    receipt_id = claims_of(answer["receipt"])["jti"]
    statuses = [
        (
            await cli.post(VERIFY, json={"receipt": answer["receipt"]}, headers=bearer(scanner))
        ).status
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    entries = (
        await (await cli.get("/api/v1/admin/audit", params={"key_id": record.key_id})).json()
    )["entries"]
    actions = [(e["action"], e["target"], e["outcome"]) for e in reversed(entries)]
    assert actions[:2] == [
        ("verify", "vn:0100109106:1:C22TAA:1", "valid"),
        ("receipt.sign", "vn:0100109106:1:C22TAA:1", receipt_id),
    ]
    assert actions[2:] == [("receipt.verify", receipt_id, "valid")] * 3


# ---------------------------------------------------------------------- where the keys live


async def _shared_by_two(stores: list[KeyStore]) -> None:
    """Two processes starting at once end with one key set; a rotation reaches the other."""
    first, second = await asyncio.gather(*(load_or_create(s) for s in stores))
    assert first.kids == second.kids
    rotated = await rotate(stores[0])
    assert rotated.kids[1:] == first.kids
    seen = await stores[1].load()
    assert seen is not None
    assert seen.kids == rotated.kids
    assert seen.current.key.is_private
    assert not seen.keys[1].key.is_private


async def test_the_key_file_is_shared_by_processes_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "receipt-keys.json"
    await _shared_by_two([FileKeyStore(path, own_dir=True), FileKeyStore(path, own_dir=True)])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)  # left open by hand: tightened when read
    assert await FileKeyStore(path, own_dir=True).load() is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_the_key_set_in_redis(namespace: str) -> None:  # noqa: F811
    clients = [Redis.from_url(REDIS), Redis.from_url(REDIS)]
    try:
        await _shared_by_two([RedisKeyStore(c, f"{namespace}:receipt-keys") for c in clients])
    finally:
        for client in clients:
            await client.aclose()


async def test_the_key_set_in_elasticsearch(es_target: EsTarget) -> None:
    index = f"{fresh_prefix()}-receipt-keys"
    clients = [es_target.client_factory(es_target.url, PATIENT) for _ in range(2)]
    try:
        await _shared_by_two([EsKeyStore(c, index) for c in clients])
    finally:
        await clients[0].options(ignore_status=404).indices.delete(index=index)
        for client in clients:
            await client.close()


async def test_two_processes_of_a_distributed_deployment_share_the_keys(
    aiohttp_client: Maker,
    tmp_path: Path,
    namespace: str,  # noqa: F811
) -> None:
    """Each process its own data directory (as in docs/deployment.md), the keys in Redis:
    a receipt signed by one verifies at the other."""
    apps = []
    for name in ("a", "b"):
        settings = Settings.from_env(
            {
                "INVOICE_DATA_DIR": str(tmp_path / name),
                "INVOICE_REDIS_URL": REDIS,
                "INVOICE_REDIS_NAMESPACE": namespace,
            }
        )
        async with open_access_db(settings.access_path) as conn:
            token, _ = await ApiKeyStore(conn).create(Role.ADMIN)
        apps.append(await open_app(aiohttp_client, settings, token))
    one, other = apps
    await load(one)
    token = (await answer_with_receipt(one))["receipt"]
    assert (await check(other, token))["valid"] is True
    assert not (tmp_path / "a" / "receipt-keys.json").exists()


async def test_unreadable_keys_leave_answers_working_without_receipts(
    aiohttp_client: Maker,
    settings: Settings,
    admin_token: str,
    tmp_path: Path,
) -> None:
    broken = tmp_path / "keys.json"
    broken.write_text("not a key set")
    broken.chmod(0o600)
    configured = settings.with_overrides(receipt_key_file=broken)
    cli = await open_app(aiohttp_client, configured, admin_token)
    app = cli.server.app
    assert app is not None
    assert not app[RECEIPTS].ready
    key = {k: str(v) for k, v in vn_key(1).items()}
    resp = await cli.get(LOOKUP, params={**key, "receipt": "true"})
    assert (resp.status, resp.headers["Retry-After"]) == (503, "30")
    assert (await resp.json())["error"]["code"] == "receipts_unavailable"
    assert (await cli.get(LOOKUP, params=key)).status == 200
    assert (await cli.get(JWKS)).status == 503


def test_the_key_file_is_a_setting(tmp_path: Path) -> None:
    """`INVOICE_RECEIPT_KEY_FILE` is read with the other settings (never from the
    environment by the key store), and a directory is refused at the start."""
    path = tmp_path / "keys.json"
    assert Settings.from_env({"INVOICE_RECEIPT_KEY_FILE": f" {path} "}).receipt_key_file == path
    assert Settings.from_env({}).receipt_key_file is None
    with pytest.raises(SettingsError, match="is a directory"):
        Settings.from_env({"INVOICE_RECEIPT_KEY_FILE": str(tmp_path)})


async def test_a_key_signs_at_most_its_receipts_of_the_hour(
    aiohttp_client: Maker, tmp_path: Path
) -> None:
    """`INVOICE_RATE_RECEIPTS_PER_HOUR` per key: past it a lookup with a receipt is 429
    `receipt_rate_limited`, a batch row is that row's error; the refusal is audited, the
    answers without a receipt still work and another key still gets its receipts."""
    settings = Settings.from_env(
        {"INVOICE_DATA_DIR": str(tmp_path / "data"), "INVOICE_RATE_RECEIPTS_PER_HOUR": "2"}
    )
    async with open_access_db(settings.access_path) as conn:
        admin, _ = await ApiKeyStore(conn).create(Role.ADMIN)
        other, _ = await ApiKeyStore(conn).create(Role.VERIFY)
    cli = await open_app(aiohttp_client, settings, admin)
    await load(cli)
    await answer_with_receipt(cli, 1)
    rows = await cli.post("/api/v1/verify/batch?receipt=true", json=[vn_key(1), vn_key(7)])
    results = [json.loads(line) for line in (await rows.text()).splitlines()]
    assert "receipt" in results[0]
    assert results[1]["error"]["code"] == "receipt_rate_limited"
    params = {**{k: str(v) for k, v in vn_key(1).items()}, "receipt": "true"}
    refused = await cli.get(LOOKUP, params=params)
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "receipt_rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    assert (await cli.get(LOOKUP, params={**params, "receipt": "false"})).status == 200
    await answer_with_receipt(cli, 1, other)
    entries = (
        await (await cli.get("/api/v1/admin/audit", params={"action": "receipt.sign"})).json()
    )["entries"]
    assert sorted(e["outcome"] == "rate_limited" for e in entries) == [False] * 3 + [True] * 2
