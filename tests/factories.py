"""Builders of valid interchange-format invoices and packages; tests override what they test."""

from __future__ import annotations

import itertools
from typing import Any

SELLER = "0100109106"  # valid MST (spec §3 worked example)
SELLER_2 = "0102671977"
BUYER = "0314409058-002"
PROVIDER = "0101300842"
CN_CODE_E = "013002200211"  # 12-digit e-invoice code -> type 10
CN_CODE_SPECIAL = "4300171130"  # 10-digit special invoice code -> type 01

_ids = itertools.count(1)


def authority_code(n: int) -> str:
    return f"00{n:032X}"


def vn_invoice(number: int = 1, **over: Any) -> dict[str, Any]:
    inv: dict[str, Any] = {
        "scheme": "vn", "seller_tax_id": SELLER, "template": "1", "series": "C22TAA",
        "number": number, "authority_code": authority_code(number),
        "issued_at": "2022-05-15T09:30:00+07:00", "currency": "VND",
        "amount_before_tax": "1000000", "tax_amount": "100000", "total_amount": "1100000",
        "seller_name": "Công ty Cổ phần Thử nghiệm", "buyer_tax_id": BUYER,
        "buyer_name": "Chi nhánh Công ty TNHH Mua hàng", "kind": "original",
    }
    inv.update(over)
    return {k: v for k, v in inv.items() if v is not None}


def cn_invoice(number: str = "81532753", **over: Any) -> dict[str, Any]:
    inv: dict[str, Any] = {
        "scheme": "cn", "invoice_code": CN_CODE_E, "invoice_number": number,
        "type_code": "10", "issued_at": "2023-03-23T10:00:00+08:00", "currency": "CNY",
        "amount_before_tax": "205.30", "tax_amount": "12.32", "total_amount": "217.62",
        "check_code": "49753264642977383169", "seller_tax_id": "91110108MA01ABCD1X",
        "buyer_tax_id": "91310115MA1K3XYZ2P", "kind": "original",
    }
    inv.update(over)
    return {k: v for k, v in inv.items() if v is not None}


def cn_digital(number: str = "23442000000014209621", **over: Any) -> dict[str, Any]:
    return cn_invoice(number, invoice_code=None, type_code="32", check_code=None,
                      issued_at="2023-02-15T11:00:00+08:00", amount_before_tax="105.66",
                      tax_amount="6.34", total_amount="112.00", **over)


def vn_key(number: int, **over: Any) -> dict[str, Any]:
    key = {"seller_tax_id": SELLER, "template": "1", "series": "C22TAA", "number": number}
    key.update(over)
    return key


def cancel(number: int, notice_id: str = "04SS-2022-0001", **over: Any) -> dict[str, Any]:
    notice = {"kind": "cancel", "key": vn_key(number), "reason": "wrong buyer",
              "notice_id": notice_id}
    notice.update(over)
    return notice


def package(invoices: list[dict[str, Any]] | None = None,
            notices: list[dict[str, Any]] | None = None, *, package_id: str | None = None,
            declared: int | None = None) -> dict[str, Any]:
    invoices, notices = invoices or [], notices or []
    return {
        "package_id": package_id or f"PKG-TEST-{next(_ids):06d}",
        "sender": PROVIDER,
        "declared_count": len(invoices) + len(notices) if declared is None else declared,
        "invoices": invoices,
        "notices": notices,
    }
