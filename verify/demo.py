"""Realistic demo data: several sellers and buyers, both schemes, thousands of invoices per
series numbered the way real series are, some cancelled, replaced and adjusted.

Deterministic for a given seed, and produced as ordinary JSON packages that go through the
same intake as everything else, so the demo also exercises the rules.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from indexer.vn import mst_check_digit

VN_TZ = timezone(timedelta(hours=7))
CN_TZ = timezone(timedelta(hours=8))
PROVIDER = "0101300842"
PACKAGE_SIZE = 500


def mst(prefix9: str) -> str:
    digit = mst_check_digit(prefix9)
    if digit is None:
        raise ValueError(f"no valid MST with prefix {prefix9}")
    return prefix9 + str(digit)


VN_SELLERS = [
    (mst("010888881"), "Công ty Cổ phần Bia Hà Nội", ["C25TAA", "C25TBB"]),
    (mst("030145678"), "Công ty TNHH Thương mại Sài Gòn Xanh", ["C25TSG"]),
    (mst("040212346"), "Công ty Cổ phần Dịch vụ Đà Nẵng", ["K25TDN"]),
    (mst("031877654"), "Hộ kinh doanh Cà phê Phố Cổ", ["C25MCF"]),
]
VN_BUYERS = [
    (mst("010234567"), "Công ty TNHH Phân phối Minh Anh"),
    (mst("030987654"), "Công ty Cổ phần Bán lẻ Phương Nam"),
    (mst("050112233"), "Công ty TNHH Khách sạn Biển Xanh"),
    (None, None),  # retail buyer without a tax id
]
CN_SERIES = [  # (code or None for 数电, type code, seller id, seller name)
    ("044031900111", "10", "91440300MA5F1XYZ3K", "深圳市前海数据科技有限公司"),
    ("3100181130", "01", "91310115MA1K3XYZ2P", "上海浦东机械制造有限公司"),
    (None, "32", "91110108MA01ABCD1X", "北京中关村软件有限公司"),
]
CN_BUYERS = [("91110105MA00QWER8T", "北京朝阳贸易有限公司"),
             ("91320214MA1N2B3C4D", "无锡新区电子有限公司")]
CASH_REGISTER_RANGE = "ABCDE"


@dataclass
class DemoPlan:
    """What was generated, for printing example lookups that really work."""

    valid: dict[str, Any]
    cancelled: dict[str, Any]
    replaced: dict[str, Any]
    adjusted: dict[str, Any]
    authority_code: str
    cn_code: dict[str, Any]
    cn_digital: dict[str, Any]
    packages: list[dict[str, Any]]
    registry: dict[str, Any]

    @property
    def invoice_count(self) -> int:
        return sum(len(p.get("invoices", [])) for p in self.packages)


def _money(rng: random.Random, currency: str) -> tuple[str, str, str]:
    if currency == "VND":
        before = Decimal(rng.randrange(50, 50_000) * 1000)
        tax = before * Decimal(rng.choice(["0.08", "0.1"]))
        tax = tax.quantize(Decimal(1))
    else:
        before = Decimal(rng.randrange(1_000, 2_000_000)) / 100
        tax = (before * Decimal(rng.choice(["0.06", "0.13"]))).quantize(Decimal("0.01"))
    return str(before), str(tax), str(before + tax)


def _times(rng: random.Random, start: datetime, count: int, end: datetime) -> list[datetime]:
    span = (end - start).total_seconds()
    return sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(count))


def _vn_series(rng: random.Random, seller: str, name: str, series: str, count: int,
               end: datetime) -> Iterator[dict[str, Any]]:
    start = datetime(2000 + int(series[1:3]), 1, 2, 8, tzinfo=VN_TZ)
    for number, issued in enumerate(_times(rng, start, count, end), start=1):
        buyer, buyer_name = rng.choice(VN_BUYERS)
        before, tax, total = _money(rng, "VND")
        inv: dict[str, Any] = {
            "scheme": "vn", "seller_tax_id": seller, "template": "1", "series": series,
            "number": number, "issued_at": issued.isoformat(timespec="seconds"),
            "currency": "VND", "amount_before_tax": before, "tax_amount": tax,
            "total_amount": total, "seller_name": name, "kind": "original",
        }
        if buyer:
            inv |= {"buyer_tax_id": buyer, "buyer_name": buyer_name}
        if series[0] == "C" and series[3] == "M":
            inv["authority_code"] = f"M1-{series[1:3]}-{CASH_REGISTER_RANGE}-{number:011d}"
        elif series[0] == "C":
            inv["authority_code"] = "00" + f"{rng.getrandbits(128):032X}"
        yield inv


def _cn_series(rng: random.Random, code: str | None, type_code: str, seller: str, name: str,
               count: int, end: datetime) -> Iterator[dict[str, Any]]:
    start = datetime(2025, 1, 2, 9, tzinfo=CN_TZ)
    first = rng.randrange(10_000_000, 60_000_000)
    for offset, issued in enumerate(_times(rng, start, count, end)):
        buyer, buyer_name = rng.choice(CN_BUYERS)
        before, tax, total = _money(rng, "CNY")
        number = (f"{first + offset:08d}" if code
                  else f"{issued.year % 100:02d}44{2000000000000000 + first + offset:016d}")[:20]
        inv: dict[str, Any] = {
            "scheme": "cn", "invoice_number": number, "type_code": type_code,
            "issued_at": issued.isoformat(timespec="seconds"), "currency": "CNY",
            "amount_before_tax": before, "tax_amount": tax, "total_amount": total,
            "seller_tax_id": seller, "seller_name": name, "buyer_tax_id": buyer,
            "buyer_name": buyer_name, "kind": "original",
        }
        if code:
            inv["invoice_code"] = code
        if type_code in {"04", "10", "11", "14"}:
            inv["check_code"] = "".join(rng.choice("0123456789") for _ in range(20))
        yield inv


def _key(inv: dict[str, Any]) -> dict[str, Any]:
    return {k: inv[k] for k in ("seller_tax_id", "template", "series", "number")}


def _lifecycle_events(rng: random.Random, series: list[dict[str, Any]],
                      end: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Replacements and adjustments (new invoices at the end of the series) and cancellations."""
    extra: list[dict[str, Any]] = []
    notices: list[dict[str, Any]] = []
    picked = rng.sample(range(len(series) - 50), 30)
    last = series[-1]
    for i, index in enumerate(picked):
        target = series[index]
        if i < 10:
            notices.append({"kind": "cancel", "key": _key(target),
                            "reason": "Sai thông tin người mua", "notice_id":
                            f"04SS-{target['series']}-{target['number']:08d}"})
            continue
        kind = "replacement" if i < 20 else "adjustment"
        new = dict(last, number=last["number"] + len(extra) + 1, kind=kind,
                   original=_key(target), issued_at=end.isoformat(timespec="seconds"))
        if "authority_code" in new:
            new["authority_code"] = (
                f"M1-{new['series'][1:3]}-{CASH_REGISTER_RANGE}-{new['number']:011d}"
                if new["series"][3] == "M" else "00" + f"{rng.getrandbits(128):032X}")
        if kind == "adjustment":
            new |= {"amount_before_tax": "-100000", "tax_amount": "-10000",
                    "total_amount": "-110000"}
        extra.append(new)
    return extra, notices


def _packages(prefix: str, invoices: list[dict[str, Any]],
              notices: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for n, start in enumerate(range(0, len(invoices), PACKAGE_SIZE), start=1):
        chunk = invoices[start:start + PACKAGE_SIZE]
        yield {"package_id": f"{prefix}-{n:04d}", "sender": PROVIDER,
               "declared_count": len(chunk), "invoices": chunk}
    if notices:
        yield {"package_id": f"{prefix}-notices", "sender": PROVIDER,
               "declared_count": len(notices), "notices": notices}


def build_demo(*, seed: int = 20221515, per_series: int = 2500,
               now: datetime | None = None) -> DemoPlan:
    """Generate the demo packages; `per_series` invoices in every series (at least 100)."""
    if per_series < 100:
        raise ValueError("per_series must be at least 100")
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    end = min(now or datetime.now(VN_TZ), datetime(2025, 12, 31, 20, tzinfo=VN_TZ))
    packages: list[dict[str, Any]] = []
    vn_all: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for seller, name, series_list in VN_SELLERS:
        for series in series_list:
            invoices = list(_vn_series(rng, seller, name, series, per_series, end))
            extra, notices = _lifecycle_events(rng, invoices, end)
            packages += _packages(f"DEMO-{series}-{seller}", invoices + extra, notices)
            vn_all += invoices
            changes += extra
    cn_all: dict[str | None, list[dict[str, Any]]] = {}
    for code, type_code, seller, name in CN_SERIES:
        invoices = list(_cn_series(rng, code, type_code, seller, name, per_series, end))
        cn_all[code] = invoices
        packages += _packages(f"DEMO-CN-{code or 'SD'}-{type_code}", invoices, [])
    cancelled_keys = [n["key"] for p in packages for n in p.get("notices", [])]
    touched = {tuple(k.values()) for k in cancelled_keys}
    touched |= {tuple(c["original"].values()) for c in changes}
    valid = next(i for i in vn_all if tuple(_key(i).values()) not in touched
                 and "authority_code" in i and i["series"][3] == "T")
    return DemoPlan(
        valid=valid,
        cancelled=next(i for i in vn_all if _key(i) == cancelled_keys[0]),
        replaced=next(c for c in changes if c["kind"] == "replacement")["original"],
        adjusted=next(c for c in changes if c["kind"] == "adjustment")["original"],
        authority_code=valid["authority_code"],
        cn_code=cn_all[CN_SERIES[0][0]][7],
        cn_digital=cn_all[None][11],
        packages=packages,
        registry=demo_registry(),
    )


#: The README's intake example sells under this MST and series; the demo registers it.
README_SELLER = ("0100109106", "Công ty Ví dụ", "C22TAA", "2022-01-01")


def demo_registry() -> dict[str, Any]:
    """The registry file (ARCHITECTURE.md format) for the demo: every seller registered for
    its series in an active status, the cash-register seller with its code range, and the
    provider that sends the demo packages."""
    taxpayers = [
        {"tax_id": seller, "name": name, "status": "00",
         "cash_register_code_ranges": (
             [CASH_REGISTER_RANGE] if any(s[3] == "M" for s in series) else []),
         "registrations": [{"template": "1", "series": s, "from": f"20{s[1:3]}-01-01"}
                           for s in series]}
        for seller, name, series in VN_SELLERS]
    tax_id, name, series, since = README_SELLER
    taxpayers.append({"tax_id": tax_id, "name": name, "status": "00",
                      "registrations": [{"template": "1", "series": series, "from": since}]})
    return {"taxpayers": taxpayers,
            "providers": [{"provider_id": PROVIDER, "name": "Công ty Cổ phần Truyền nhận Số",
                           "valid_from": "2021-07-01", "valid_to": "2030-12-31"}]}


def example_queries(plan: DemoPlan) -> list[tuple[str, dict[str, str]]]:
    """(what it shows, query parameters) for lookups that work on the demo data."""
    def vn_q(inv: dict[str, Any]) -> dict[str, str]:
        return {k: str(inv[k]) for k in ("seller_tax_id", "template", "series", "number")}

    wrong_total = str(Decimal(plan.valid["total_amount"]) + 1000)
    cn_code = plan.cn_code
    return [
        ("valid (VN key, total matches)",
         vn_q(plan.valid) | {"total_amount": plan.valid["total_amount"]}),
        ("mismatch (VN key, wrong total)", vn_q(plan.valid) | {"total_amount": wrong_total}),
        ("valid (VN authority code)", {"authority_code": plan.authority_code}),
        ("cancelled", vn_q(plan.cancelled)),
        ("replaced", vn_q(plan.replaced)),
        ("adjusted", vn_q(plan.adjusted)),
        ("not_found", vn_q(plan.valid) | {"number": "99999"}),
        ("valid (CN code + number, check code last 6)",
         {"code": cn_code["invoice_code"], "number": cn_code["invoice_number"],
          "check_code": cn_code["check_code"][-6:]}),
        ("valid (CN 20-digit number, total)",
         {"number": plan.cn_digital["invoice_number"],
          "total_amount": plan.cn_digital["total_amount"]}),
    ]
