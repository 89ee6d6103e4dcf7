"""Keys (create, list, revoke, bootstrap), tenancy of answers and intake senders."""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

from tests.conftest import Client, KeyMaker, bearer
from tests.factories import BUYER, PROVIDER, SELLER, package, vn_invoice, vn_key
from verify.access.apikeys import KeyStore
from verify.access.db import open_access_db
from verify.access.roles import Role
from verify.app import create_app
from verify.settings import Settings

LOOKUP = "/api/v1/invoices/lookup"


async def load(cli: Client) -> None:
    resp = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]))
    assert (await resp.json())["accepted"] == 1


async def lookup(cli: Client, token: str, **params: Any) -> dict[str, Any]:
    resp = await cli.get(LOOKUP, params={k: str(v) for k, v in params.items()},
                         headers=bearer(token))
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def test_key_lifecycle_through_admin_api(cli: Client, make_key: KeyMaker) -> None:
    token = await make_key("verify", [SELLER], name="scanner 7")
    assert token.startswith("ivk_")
    listing = await (await cli.get("/api/v1/admin/keys")).json()
    mine = [k for k in listing["keys"] if k["name"] == "scanner 7"]
    assert len(mine) == 1
    assert mine[0]["role"] == "verify"
    assert mine[0]["scopes"] == [SELLER]
    assert token not in str(listing)
    assert token.split("_", 2)[2] not in str(listing)
    await load(cli)
    assert (await cli.get(LOOKUP, params=vn_key(1), headers=bearer(token))).status == 200
    revoked = await cli.delete(f"/api/v1/admin/keys/{mine[0]['key_id']}")
    assert (await revoked.json())["key"]["revoked_at"]
    resp = await cli.get(LOOKUP, params=vn_key(1), headers=bearer(token))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    missing = await cli.delete("/api/v1/admin/keys/ffffffffffff")
    assert missing.status == 404


async def test_bad_key_requests_are_422(cli: Client) -> None:
    for body in ({"role": "intake"}, {"role": "admin", "scopes": [SELLER]},
                 {"role": "root"}, {"role": "verify", "scopes": "x"},
                 {"role": "verify", "scopes": ["not a tax id!"]}):
        resp = await cli.post("/api/v1/admin/keys", json=body)
        assert resp.status == 422, body


async def test_key_requests_with_hostile_text_are_422(cli: Client) -> None:
    """A lone surrogate cannot be stored in SQLite nor echoed in a JSON error: both were
    500s; NUL and control characters in a name are refused too."""
    for raw in (rb'{"role": "verify", "name": "\ud800"}',
                rb'{"role": "verify", "name": "a\u0000b"}',
                rb'{"role": "verify", "scopes": ["\ud800"]}',
                rb'{"role": "verify", "scopes": ["\u00b2"]}', rb'{"role": "\ud800"}'):
        resp = await cli.post("/api/v1/admin/keys", data=raw,
                              headers={"Content-Type": "application/json"})
        assert resp.status == 422, (raw, await resp.text())


async def test_tampered_or_malformed_tokens_are_401(cli: Client, make_key: KeyMaker) -> None:
    token = await make_key("verify")
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for header in (f"Bearer {tampered}", "Bearer ivk_nothing", token, f"Basic {token}", ""):
        resp = await cli.get(LOOKUP, params=vn_key(1), headers={"Authorization": header})
        assert resp.status == 401, header


async def test_third_party_sees_no_buyer_identity(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    stranger = await make_key("verify")
    answer = await lookup(cli, stranger, **vn_key(1), buyer_tax_id="0102671977")
    assert answer["status"] == "mismatch"
    assert answer["invoice"]["buyer_tax_id"] is None
    assert answer["invoice"]["buyer_name"] is None
    assert answer["invoice"]["redacted"] == ["buyer_tax_id", "buyer_name"]
    assert answer["mismatches"] == [
        {"field": "buyer_tax_id", "given": "0102671977", "recorded": None}]
    assert answer["invoice"]["total_amount"] == "1100000"


async def test_parties_see_the_whole_answer(cli: Client, make_key: KeyMaker) -> None:
    await load(cli)
    for scope in (SELLER, BUYER):
        party = await make_key("verify", [scope])
        answer = await lookup(cli, party, **vn_key(1))
        assert answer["invoice"]["buyer_tax_id"] == BUYER
        assert "redacted" not in answer["invoice"]
    auditor = await make_key("audit", [BUYER])
    assert (await lookup(cli, auditor, **vn_key(1)))["invoice"]["buyer_name"]


async def test_intake_key_sends_only_as_its_provider(cli: Client, make_key: KeyMaker) -> None:
    provider = await make_key("intake", [PROVIDER])
    ok = await cli.post("/api/v1/packages", json=package([vn_invoice(1)]),
                        headers=bearer(provider))
    assert ok.status == 200
    other = package([vn_invoice(2)])
    other["sender"] = "0102671977"
    refused = await cli.post("/api/v1/packages", json=other, headers=bearer(provider))
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "sender_not_allowed"
    admin_view = await cli.get(LOOKUP, params=vn_key(2))
    assert (await admin_view.json())["status"] == "not_found"
    assert (await cli.get(LOOKUP, params=vn_key(1), headers=bearer(provider))).status == 403


async def test_first_start_writes_an_admin_key_once(aiohttp_client: Any,
                                                    settings: Settings) -> None:
    path = settings.admin_key_path
    assert not path.exists()
    await aiohttp_client(create_app(settings))
    token = path.read_text().strip()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cli = await aiohttp_client(create_app(settings), headers=bearer(token))
    keys = (await (await cli.get("/api/v1/admin/keys")).json())["keys"]
    assert [k["role"] for k in keys] == ["admin"]
    path.unlink()
    await aiohttp_client(create_app(settings))
    assert not path.exists(), "an admin key exists, so no second one is made"


async def test_insecure_local_mode_needs_no_key(aiohttp_client: Any, settings: Settings) -> None:
    local = settings.with_overrides(insecure_local=True)
    cli = await aiohttp_client(create_app(local))
    resp = await cli.get(LOOKUP, params=vn_key(1))
    assert resp.status == 200
    assert not local.admin_key_path.exists()


async def test_security_headers_on_every_response(cli: Client) -> None:
    for path in ("/healthz", "/api/v1/nowhere", "/api/v1/invoices/lookup"):
        resp = await cli.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


async def test_requests_of_an_expired_key_entry_share_one_load(tmp_path: Any) -> None:
    now = [0.0]
    async with open_access_db(tmp_path / "access.sqlite3") as conn:
        keys = CountingKeyStore(conn, cache_seconds=5.0, clock=lambda: now[0])
        token, record = await keys.create(Role.VERIFY)
        forged = token[:-1] + ("A" if token[-1] != "A" else "B")
        for _ in range(2):  # a first load, then another once the entry has expired
            found = await asyncio.gather(*(keys.authenticate(t) for t in [token] * 5 + [forged]))
            assert [p.key_id if p else None for p in found] == [record.key_id] * 5 + [None]
            now[0] += 6
        assert keys.queries == 2


class CountingKeyStore(KeyStore):
    queries = 0

    async def _query(self, key_id: str, now: float) -> Any:
        self.queries += 1
        return await super()._query(key_id, now)


async def test_only_a_well_formed_token_authenticates_on_a_cached_key(tmp_path: Any) -> None:
    """Once a key's entry is cached the token's pattern is not matched again (only its
    prefix and separator are checked): anything but the token itself, even with the key's
    true secret in it, is still refused, and asks the database nothing."""
    async with open_access_db(tmp_path / "access.sqlite3") as conn:
        keys = CountingKeyStore(conn)
        token, record = await keys.create(Role.VERIFY)
        principal = await keys.authenticate(token)
        assert principal is not None
        assert principal.key_id == record.key_id
        key_id, secret = token[4:16], token[17:]
        for other in (f"ivx_{key_id}_{secret}", f"Ivk_{key_id}_{secret}",
                      f"ivk_{key_id}-{secret}", f"ivk_{key_id}_{secret}=", token[:-1],
                      f" {token}"[:-1], f"ivk_{key_id.upper()}_{secret}", f"x{token}",
                      f"ivk_{key_id}_{secret[1:]}!", "ivk_", f"ivk_{key_id}", ""):
            assert await keys.authenticate(other) is None, other
        assert await keys.authenticate(token) == principal
        assert keys.queries == 1  # the key's own load, none for the others


async def test_a_token_of_bytes_not_utf8_on_a_cached_key_is_refused_not_failed(
        cli: Client, make_key: KeyMaker) -> None:
    """aiohttp reads header bytes that are not UTF-8 as lone surrogates; a token with the
    id of a cached key and such bytes in its secret gets 401, not a 500 (its secret could
    not be encoded for hashing once the pattern was no longer matched on a cached key)."""
    token = await make_key("verify")
    resp = await cli.get("/api/v1/gaps", headers=bearer(token))
    assert resp.status != 401  # the key's entry is cached now
    assert cli.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", cli.server.port)
    try:
        writer.write(b"GET /api/v1/gaps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Authorization: Bearer " + token[:17].encode() + b"\xff" * 43
                     + b"\r\n\r\n")
        status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.split()[1] == b"401", status_line
