"""Invoice <-> flat storage document (JSON-safe; money as scaled integers; ids as text).

Every store keeps this one document shape, so SQLite columns and Elasticsearch fields agree.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from indexer.keys import CnKey, InvoiceKey, VnKey, key_from_doc_id
from indexer.model import Amounts, Invoice, Kind, Lifecycle, Relation, RelationKind
from indexer.money import format_amount, from_scaled, to_scaled
from indexer.validate import EXTERNAL_PREFIX

DOC_FIELDS = (
    "doc_id",
    "scheme",
    "seller_tax_id",
    "template",
    "series",
    "number",
    "invoice_code",
    "invoice_number",
    "authority_code",
    "issued_at",
    "issued_ts",
    "issued_on",
    "currency",
    "amount_before_tax",
    "tax_amount",
    "total_amount",
    "seller_name",
    "buyer_tax_id",
    "buyer_name",
    "type_code",
    "check_code",
    "kind",
    "original_id",
    "lifecycle",
    "relations",
    "package_id",
)


def _relation_to_dict(rel: Relation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": rel.kind.value,
        "id": rel.key.doc_id if rel.key else None,
        "notice_id": rel.notice_id,
        "reason": rel.reason,
        "at": rel.at.isoformat() if rel.at else None,
    }
    if rel.external:  # written only when set: every other relation keeps its stored form
        out["external"] = True
    if rel.amount is not None:  # red-letter links only
        out["amount"] = format_amount(rel.amount)
    return out


def _relation_from_dict(data: dict[str, Any]) -> Relation:
    reason = data.get("reason")
    # A release before the `external` field marked an external relation only by its reason,
    # which still begins so: such stored relations are read as external, with no migration.
    return Relation(
        kind=RelationKind(data["kind"]),
        key=key_from_doc_id(data["id"]) if data.get("id") else None,
        notice_id=data.get("notice_id"),
        reason=reason,
        at=datetime.fromisoformat(data["at"]) if data.get("at") else None,
        external=bool(data.get("external"))
        or (isinstance(reason, str) and reason.startswith(EXTERNAL_PREFIX)),
        amount=Decimal(data["amount"]) if data.get("amount") is not None else None,
    )


def relations_to_json(relations: tuple[Relation, ...]) -> str:
    if not relations:
        return "[]"  # most invoices: skip the encoder
    return json.dumps([_relation_to_dict(r) for r in relations], ensure_ascii=False)


def json_text(value: Any) -> str:
    """Compact JSON text, UTF-8 unescaped, for what the SQLite files keep as text (notices):
    orjson, a tenth of `json.dumps`; what it refuses (integers beyond 64 bits) goes through
    `json.dumps`, so the outcome is the same either way."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, ensure_ascii=False)


#: The documents of the invoices encoded last, by the invoice's identity (the invoice is
#: kept beside its document, so the id cannot be reused while the entry exists). An intake
#: encodes each invoice it commits twice in a row: for the store, then for the replica's
#: write-through. Invoices are immutable, so the second encoding is a copy of the first.
_RECENT: dict[int, tuple[Invoice, dict[str, Any]]] = {}
_RECENT_MAX = 2048


def invoice_to_doc(inv: Invoice) -> dict[str, Any]:
    """A new dict every call (callers may add to it)."""
    recent = _RECENT.get(id(inv))
    if recent is not None and recent[0] is inv:
        return dict(recent[1])
    doc = _encode(inv)
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.clear()
    _RECENT[id(inv)] = (inv, doc)
    return dict(doc)


def _encode(inv: Invoice) -> dict[str, Any]:
    vn_key = inv.key if isinstance(inv.key, VnKey) else None
    cn_key = inv.key if isinstance(inv.key, CnKey) else None
    return {
        "doc_id": inv.doc_id,
        "scheme": inv.scheme,
        "seller_tax_id": inv.seller_tax_id,
        "template": vn_key.template if vn_key else None,
        "series": vn_key.series if vn_key else None,
        "number": vn_key.number if vn_key else None,
        "invoice_code": cn_key.code if cn_key else None,
        "invoice_number": cn_key.number if cn_key else None,
        "authority_code": inv.authority_code,
        "issued_at": inv.issued_at.isoformat(),
        "issued_ts": int(inv.issued_at.timestamp()),
        "issued_on": inv.issued_on.isoformat(),
        "currency": inv.currency,
        "amount_before_tax": to_scaled(inv.amounts.before_tax),
        "tax_amount": to_scaled(inv.amounts.tax),
        "total_amount": to_scaled(inv.amounts.total),
        "seller_name": inv.seller_name,
        "buyer_tax_id": inv.buyer_tax_id,
        "buyer_name": inv.buyer_name,
        "type_code": inv.type_code,
        "check_code": inv.check_code,
        "kind": inv.kind.value,
        "original_id": inv.original.doc_id if inv.original else None,
        "lifecycle": inv.lifecycle.value,
        "relations": relations_to_json(inv.relations),
        "package_id": inv.package_id,
    }


def _key_of(doc: dict[str, Any]) -> InvoiceKey:
    if doc["scheme"] == "vn":
        return VnKey(doc["seller_tax_id"], doc["template"], doc["series"], int(doc["number"]))
    return CnKey(doc["invoice_code"], doc["invoice_number"])


def invoice_from_doc(doc: dict[str, Any]) -> Invoice:
    relations = doc["relations"]
    if isinstance(relations, str):
        relations = json.loads(relations)
    return Invoice(
        key=_key_of(doc),
        issued_at=datetime.fromisoformat(doc["issued_at"]),
        currency=doc["currency"],
        amounts=Amounts(
            before_tax=from_scaled(doc["amount_before_tax"]),
            tax=from_scaled(doc["tax_amount"]),
            total=from_scaled(doc["total_amount"]),
        ),
        package_id=doc["package_id"],
        kind=Kind(doc["kind"]),
        original=key_from_doc_id(doc["original_id"]) if doc.get("original_id") else None,
        seller_tax_id=doc.get("seller_tax_id"),
        seller_name=doc.get("seller_name"),
        buyer_tax_id=doc.get("buyer_tax_id"),
        buyer_name=doc.get("buyer_name"),
        authority_code=doc.get("authority_code"),
        type_code=doc.get("type_code"),
        check_code=doc.get("check_code"),
        lifecycle=Lifecycle(doc["lifecycle"]),
        relations=tuple(_relation_from_dict(r) for r in relations),
    )
