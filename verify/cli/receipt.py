"""`invoice-verify receipt verify|rotate-key|jwks`: receipts checked offline, and the keys
that sign them (docs/receipts.md). The keys are where the service keeps them: a configured
file (`INVOICE_RECEIPT_KEY_FILE`), Elasticsearch or Redis when set, else the data directory."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from verify.cli.common import DataDir, err, load_settings
from verify.receipts.claims import statement
from verify.receipts.keyset import KeySet
from verify.receipts.keystore import KeyStoreUnavailable, open_keystore, rotate
from verify.receipts.signing import ReceiptInvalid, Verified, verify_with, verify_with_jwks
from verify.settings import Settings

receipt_app = typer.Typer(
    help="Check receipts offline; rotate and publish the keys that sign them.", no_args_is_help=True
)


def _print(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


async def _stored_keys(settings: Settings) -> KeySet | None:
    async with open_keystore(settings) as store:
        return await store.load()


def _keys(settings: Settings) -> KeySet:
    try:
        keys = asyncio.run(_stored_keys(settings))
    except KeyStoreUnavailable as exc:
        err.print(f"[red]receipt keys unavailable:[/] {exc}")
        raise typer.Exit(2) from None
    if keys is None:
        err.print(
            "[red]no receipt keys yet[/] (the service makes them at its first start; "
            "`invoice-verify receipt rotate-key` makes them now)"
        )
        raise typer.Exit(2)
    return keys


@receipt_app.command("verify")
def verify_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="the receipt (its compact JWS), or an answer "
            "saved as JSON with its `receipt`; '-' reads "
            "standard input"
        ),
    ],
    jwks: Annotated[
        Path | None,
        typer.Option(
            help="a saved JWK Set (GET /.well-known/jwks.json) instead of the service's own keys"
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Check a receipt without the service: exit 0 and its facts when it verifies, exit 1
    and why not when it does not (any byte changed, another key, not a receipt)."""
    token = _receipt_text(sys.stdin.read() if str(file) == "-" else file.read_text("utf-8"))
    try:
        if jwks is not None:
            verified = verify_with_jwks(token, _jwks_file(jwks))
        else:
            keys = _keys(load_settings(data_dir=data_dir))
            verified = verify_with(token, keys.verifying_keys(), frozenset(keys.kids))
    except ReceiptInvalid as exc:
        _print({"valid": False, "error": {"code": exc.code, "message": exc.message}})
        raise typer.Exit(1) from None
    _print(_verified(verified))


def _receipt_text(text: str) -> str:
    """The JWS itself, or the `receipt` of an answer saved as JSON."""
    text = text.strip()
    if not text.startswith("{"):
        return text
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        return text  # not an answer: checked as a receipt, and refused as one
    receipt = answer.get("receipt") if isinstance(answer, dict) else None
    return receipt if isinstance(receipt, str) else text


def _jwks_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err.print(f"[red]cannot read the JWK Set {path}:[/] {exc}")
        raise typer.Exit(2) from None
    if not isinstance(data, dict):
        err.print(f"[red]{path} is not a JWK Set[/] (a JSON object with `keys`)")
        raise typer.Exit(2)
    return data


def _verified(verified: Verified) -> dict[str, Any]:
    return {
        "valid": True,
        "kid": verified.kid,
        "statement": statement(verified.claims),
        "claims": verified.claims,
    }


@receipt_app.command("rotate-key")
def rotate_key(data_dir: DataDir = None) -> None:
    """Make a new current signing key; the old public keys stay listed, so every receipt
    signed before still verifies. Running services pick it up within 30 s."""
    settings = load_settings(data_dir=data_dir)

    async def rotating() -> tuple[str, KeySet]:
        async with open_keystore(settings) as store:
            return store.where, await rotate(store)

    try:
        where, keys = asyncio.run(rotating())
    except KeyStoreUnavailable as exc:
        err.print(f"[red]receipt keys unavailable:[/] {exc}")
        raise typer.Exit(2) from None
    err.print(
        f"new current receipt key {keys.current.kid} ({where}); "
        f"{len(keys.keys) - 1} older key(s) kept for verification"
    )
    _print({"current": keys.current.kid, "kids": list(keys.kids)})


@receipt_app.command("jwks")
def jwks_cmd(data_dir: DataDir = None) -> None:
    """Print the public keys (the JWK Set the service publishes at /.well-known/jwks.json):
    an auditor's offline copy."""
    _print(_keys(load_settings(data_dir=data_dir)).jwks())
