"""Realistic demo data: several sellers and buyers, both schemes, thousands of invoices per
series numbered the way real series are, some cancelled, replaced and adjusted.

Deterministic for a given seed, and produced as ordinary JSON packages that go through the
same intake as everything else, so the demo also exercises the rules. Besides the bulk it
holds what each report needs to show something (docs/reports.md): numbers that never reached
the index in most series of both schemes (the missing-invoice report's ranges), and one buyer,
`LEDGER_BUYER`, whose November 2025 purchases show every status of a ledger line and a "not
in ledger" list against `docs/examples/ledger-demo.csv` (written by `ledger_csv`), with a
chain of two replacements among them.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
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
CN_BUYERS = [
    ("91110105MA00QWER8T", "北京朝阳贸易有限公司"),
    ("91320214MA1N2B3C4D", "无锡新区电子有限公司"),
]
#: The café's cash-register code range: its own, apart from the example seller's `ABCDE`
#: (docs/examples), whose codes would otherwise collide with the café's.
CASH_REGISTER_RANGE = "PCF01"
_AMOUNTS = ("amount_before_tax", "tax_amount", "total_amount")
#: Series whose numbering has no holes: the missing-invoice report shows a clean one too.
UNBROKEN_SERIES = frozenset({"C25MCF"})
#: The buyer of the ledger example (docs/reports.md), and the month its ledger covers.
LEDGER_BUYER = ("0312345673", "Công ty TNHH Mua Hàng Mẫu")
LEDGER_MONTH = date(2025, 11, 1)


@dataclass
class LedgerBuyer:
    """`LEDGER_BUYER`'s invoices by the role each plays in its ledger example: what the ledger
    books (`booked`, in ledger order, with the status each line gets) and what it lacks."""

    booked: list[tuple[str, dict[str, Any]]]
    not_in_ledger: list[dict[str, Any]]
    chain: list[dict[str, Any]]  # an invoice, its replacement, and the replacement's


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
    ledger: LedgerBuyer
    missing: dict[str, list[int]] = field(default_factory=dict)  # series id -> numbers left out

    @property
    def invoice_count(self) -> int:
        return sum(len(p.get("invoices", [])) for p in self.packages)


@dataclass
class _Series:
    """One numbering sequence while it is built: its invoices in number order, the
    replacements and adjustments appended to it, its cancel notices, and the positions of
    invoices already given a part (to keep the next part off them)."""

    prefix: str
    invoices: list[dict[str, Any]]
    extra: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)

    def packages(self) -> Iterator[dict[str, Any]]:
        kept = [inv for i, inv in enumerate(self.invoices) if i not in self.dropped]
        return _packages(self.prefix, kept + self.extra, self.notices)


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


def _vn_series(
    rng: random.Random, seller: str, name: str, series: str, count: int, end: datetime
) -> Iterator[dict[str, Any]]:
    start = datetime(2000 + int(series[1:3]), 1, 2, 8, tzinfo=VN_TZ)
    for number, issued in enumerate(_times(rng, start, count, end), start=1):
        buyer, buyer_name = rng.choice(VN_BUYERS)
        before, tax, total = _money(rng, "VND")
        inv: dict[str, Any] = {
            "scheme": "vn",
            "seller_tax_id": seller,
            "template": "1",
            "series": series,
            "number": number,
            "issued_at": issued.isoformat(timespec="seconds"),
            "currency": "VND",
            "amount_before_tax": before,
            "tax_amount": tax,
            "total_amount": total,
            "seller_name": name,
            "kind": "original",
        }
        if buyer:
            inv |= {"buyer_tax_id": buyer, "buyer_name": buyer_name}
        if series[0] == "C" and series[3] == "M":
            inv["authority_code"] = f"M1-{series[1:3]}-{CASH_REGISTER_RANGE}-{number:011d}"
        elif series[0] == "C":
            inv["authority_code"] = "00" + f"{rng.getrandbits(128):032X}"
        yield inv


def _cn_series(
    rng: random.Random,
    code: str | None,
    type_code: str,
    seller: str,
    name: str,
    count: int,
    end: datetime,
) -> Iterator[dict[str, Any]]:
    start = datetime(2025, 1, 2, 9, tzinfo=CN_TZ)
    first = rng.randrange(10_000_000, 60_000_000)
    for offset, issued in enumerate(_times(rng, start, count, end)):
        buyer, buyer_name = rng.choice(CN_BUYERS)
        before, tax, total = _money(rng, "CNY")
        number = (
            f"{first + offset:08d}"
            if code
            else f"{issued.year % 100:02d}44{2000000000000000 + first + offset:016d}"
        )[:20]
        inv: dict[str, Any] = {
            "scheme": "cn",
            "invoice_number": number,
            "type_code": type_code,
            "issued_at": issued.isoformat(timespec="seconds"),
            "currency": "CNY",
            "amount_before_tax": before,
            "tax_amount": tax,
            "total_amount": total,
            "seller_tax_id": seller,
            "seller_name": name,
            "buyer_tax_id": buyer,
            "buyer_name": buyer_name,
            "kind": "original",
        }
        if code:
            inv["invoice_code"] = code
        if type_code in {"04", "10", "11", "14"}:
            inv["check_code"] = "".join(rng.choice("0123456789") for _ in range(20))
        yield inv


def _key(inv: dict[str, Any]) -> dict[str, Any]:
    return {k: inv[k] for k in ("seller_tax_id", "template", "series", "number")}


def _cancel(target: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "kind": "cancel",
        "key": _key(target),
        "reason": reason,
        "notice_id": f"04SS-{target['series']}-{target['number']:08d}",
    }


def _lifecycle_events(rng: random.Random, series: _Series, end: datetime) -> None:
    """Replacements and adjustments (new invoices at the end of the series) and cancellations
    of 30 invoices picked at random."""
    invoices = series.invoices
    picked = rng.sample(range(len(invoices) - 50), 30)
    series.taken.update(picked)
    last = invoices[-1]
    for i, index in enumerate(picked):
        target = invoices[index]
        if i < 10:
            series.notices.append(_cancel(target, "Sai thông tin người mua"))
            continue
        kind = "replacement" if i < 20 else "adjustment"
        new = dict(
            last,
            number=last["number"] + len(series.extra) + 1,
            kind=kind,
            original=_key(target),
            issued_at=end.isoformat(timespec="seconds"),
        )
        if "authority_code" in new:
            new["authority_code"] = (
                f"M1-{new['series'][1:3]}-{CASH_REGISTER_RANGE}-{new['number']:011d}"
                if new["series"][3] == "M"
                else "00" + f"{rng.getrandbits(128):032X}"
            )
        if kind == "adjustment":
            new |= {
                "amount_before_tax": "-100000",
                "tax_amount": "-10000",
                "total_amount": "-110000",
            }
        series.extra.append(new)


def _cn_lifecycle(series: _Series, end: datetime) -> None:
    """Three invoices of a Chinese series at fixed places: voided (作废, a cancel notice) in a
    series with a code, reversed by a red-letter invoice (红字, an adjustment with the amounts
    negated, numbered after the last) in the fully digitalised one."""
    invoices = series.invoices
    picked = [len(invoices) * k // 8 for k in (3, 5, 6)]
    series.taken.update(picked)
    last = int(invoices[-1]["invoice_number"])
    for n, i in enumerate(picked, start=1):
        target = invoices[i]
        code, number = target.get("invoice_code"), target["invoice_number"]
        if code:
            series.notices.append(
                {
                    "kind": "cancel",
                    "key": {"invoice_code": code, "invoice_number": number},
                    "reason": "开票有误 (issued in error)",
                    "notice_id": f"ZF-{code}-{number}",
                }
            )
            continue
        negated = {f: str(-Decimal(target[f])) for f in _AMOUNTS}
        series.extra.append(
            target
            | negated
            | {
                "invoice_number": str(last + n),
                "kind": "adjustment",
                "original": {"invoice_number": number},
                "issued_at": end.isoformat(timespec="seconds"),
            }
        )


def _drop_ranges(rng: random.Random, series: _Series, ranges: int) -> None:
    """Leave `ranges` runs of 1-4 numbers out of the series (never the first quarter, where
    the printed examples are, nor its last 60): numbers the index never received."""
    low, high = len(series.invoices) // 4, len(series.invoices) - 60
    for _ in range(ranges):
        for _attempt in range(20):
            start, length = rng.randrange(low, high), rng.randint(1, 4)
            run = set(range(start - 1, start + length + 1))  # a kept number on either side
            if not run & (series.taken | series.dropped):
                series.dropped.update(range(start, start + length))
                break


def _free(series: _Series, since: date, count: int) -> list[int]:
    """`count` positions of invoices no part was given yet, the first issued on or after
    `since` (or the last ones of a short series), in number order."""
    after = next(
        (i for i, inv in enumerate(series.invoices) if inv["issued_at"][:10] >= str(since)),
        len(series.invoices),
    )
    start = min(after, len(series.invoices) - 2 * count)
    found = [i for i in range(start, len(series.invoices) - 1) if i not in series.taken]
    if len(found) < count:
        raise ValueError(f"series {series.prefix} is too short for the ledger example")
    series.taken.update(found[:count])
    return found[:count]


def _to_buyer(inv: dict[str, Any]) -> dict[str, Any]:
    tax_id, name = LEDGER_BUYER
    inv |= {"buyer_tax_id": tax_id, "buyer_name": name}
    return inv


def _mistyped(tax_id: str) -> str:
    """`tax_id` with its check digit off by one: a tax id that fails its check."""
    return tax_id[:-1] + str((int(tax_id[-1]) + 1) % 10)


def _ledger_buyer(main: _Series, second: _Series, no_code: _Series) -> LedgerBuyer:
    """`LEDGER_BUYER`'s month: from `main`, a valid invoice, one booked with a mistyped total,
    a cancelled one, one replaced twice in a chain, one adjusted, and one that never reached
    the index (its number left out); from `second` another valid one; from `no_code` one the
    buyer did not book."""
    at = [main.invoices[i] for i in _free(main, LEDGER_MONTH, 9)]
    valid, typo, cancelled, replaced, replacement, second_replacement = at[:6]
    adjusted, adjustment, lost = at[6:9]
    for inv in at:
        _to_buyer(inv)
    replacement |= {"kind": "replacement", "original": _key(replaced)}
    second_replacement |= {"kind": "replacement", "original": _key(replacement)}
    adjustment |= {
        "kind": "adjustment",
        "original": _key(adjusted),
        "amount_before_tax": "-200000",
        "tax_amount": "-20000",
        "total_amount": "-220000",
    }
    main.notices.append(_cancel(cancelled, "Hủy theo thỏa thuận với người mua"))
    main.dropped.add(main.invoices.index(lost))
    other = _to_buyer(second.invoices[_free(second, LEDGER_MONTH, 1)[0]])
    unbooked = _to_buyer(no_code.invoices[_free(no_code, LEDGER_MONTH, 1)[0]])
    typo_total = str(Decimal(typo["total_amount"]) + 90000)
    return LedgerBuyer(
        booked=[
            ("valid", valid),
            ("replaced", replaced),
            ("adjusted", adjusted),
            ("cancelled", cancelled),
            ("mismatch", dict(typo, total_amount=typo_total)),
            ("not_found", lost),
            ("valid", other),
            ("invalid_key", dict(valid, seller_tax_id=_mistyped(valid["seller_tax_id"]))),
            ("duplicate_line", valid),
        ],
        not_in_ledger=sorted(
            [replacement, second_replacement, adjustment, unbooked], key=lambda i: i["issued_at"]
        ),
        chain=[replaced, replacement, second_replacement],
    )


_NOTES = {
    "valid": "booked as received",
    "replaced": "replaced by the seller",
    "adjusted": "adjusted by the seller",
    "cancelled": "cancelled by the seller",
    "mismatch": "total mistyped",
    "not_found": "never reached the index",
    "invalid_key": "seller tax id mistyped",
    "duplicate_line": "booked twice",
}


def ledger_csv(plan: DemoPlan) -> str:
    """The demo buyer's November ledger, as committed in docs/examples/ledger-demo.csv: one
    line per booked invoice, with a note column (ignored by the report) saying what it shows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "seller_tax_id",
            "template",
            "series",
            "number",
            "issued_on",
            "amount",
            "tax_amount",
            "total_amount",
            "note",
        ]
    )
    for status, inv in plan.ledger.booked:
        writer.writerow(
            [
                *_key(inv).values(),
                inv["issued_at"][:10],
                inv["amount_before_tax"],
                inv["tax_amount"],
                inv["total_amount"],
                _NOTES[status],
            ]
        )
    return out.getvalue()


def _packages(
    prefix: str, invoices: list[dict[str, Any]], notices: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    for n, start in enumerate(range(0, len(invoices), PACKAGE_SIZE), start=1):
        chunk = invoices[start : start + PACKAGE_SIZE]
        yield {
            "package_id": f"{prefix}-{n:04d}",
            "sender": PROVIDER,
            "declared_count": len(chunk),
            "invoices": chunk,
        }
    if notices:
        yield {
            "package_id": f"{prefix}-notices",
            "sender": PROVIDER,
            "declared_count": len(notices),
            "notices": notices,
        }


def _series_id(inv: dict[str, Any]) -> str:
    if inv["scheme"] == "vn":
        return f"vn:{inv['seller_tax_id']}:{inv['template']}:{inv['series']}"
    return f"cn:{inv['invoice_code']}"


def build_demo(
    *, seed: int = 20221515, per_series: int = 2500, now: datetime | None = None
) -> DemoPlan:
    """Generate the demo packages; `per_series` invoices in every series (at least 100)."""
    if per_series < 100:
        raise ValueError("per_series must be at least 100")
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    # The numbering holes draw from a stream of their own, so that adding them left every
    # other generated value (and the examples the docs print) as it was.
    holes = random.Random(f"{seed}:holes")  # noqa: S311
    end = min(now or datetime.now(VN_TZ), datetime(2025, 12, 31, 20, tzinfo=VN_TZ))
    vn: dict[str, _Series] = {}
    for seller, name, series_list in VN_SELLERS:
        for code in series_list:
            invoices = list(_vn_series(rng, seller, name, code, per_series, end))
            vn[code] = _Series(f"DEMO-{code}-{seller}", invoices)
            _lifecycle_events(rng, vn[code], end)
    cn: dict[str | None, _Series] = {}
    for cn_code, type_code, seller, name in CN_SERIES:
        invoices = list(_cn_series(rng, cn_code, type_code, seller, name, per_series, end))
        cn[cn_code] = _Series(f"DEMO-CN-{cn_code or 'SD'}-{type_code}", invoices)
        if cn_code != CN_SERIES[0][0]:  # docs/lookups.md's series stays as issued
            _cn_lifecycle(cn[cn_code], end)
    ledger = _ledger_buyer(vn["C25TAA"], vn["C25TSG"], vn["K25TDN"])
    numbered = [s for c, s in [*vn.items(), *cn.items()] if c and c not in UNBROKEN_SERIES]
    for series in numbered:
        _drop_ranges(holes, series, 3)
    missing: dict[str, list[int]] = {}
    for series in numbered:
        for i in sorted(series.dropped):
            inv = series.invoices[i]
            number = inv["number"] if inv["scheme"] == "vn" else inv["invoice_number"]
            missing.setdefault(_series_id(inv), []).append(int(number))
    vn_all = [inv for s in vn.values() for inv in s.invoices]
    changes = [inv for s in vn.values() for inv in s.extra]
    cancelled_keys = [n["key"] for s in vn.values() for n in s.notices]
    touched = {tuple(k.values()) for k in cancelled_keys}
    touched |= {tuple(c["original"].values()) for c in changes}
    valid = next(
        i
        for i in vn_all
        if tuple(_key(i).values()) not in touched
        and "authority_code" in i
        and i["series"][3] == "T"
    )
    return DemoPlan(
        valid=valid,
        cancelled=next(i for i in vn_all if _key(i) == cancelled_keys[0]),
        replaced=next(c for c in changes if c["kind"] == "replacement")["original"],
        adjusted=next(c for c in changes if c["kind"] == "adjustment")["original"],
        authority_code=valid["authority_code"],
        cn_code=cn[CN_SERIES[0][0]].invoices[7],
        cn_digital=cn[None].invoices[11],
        packages=[p for series in [*vn.values(), *cn.values()] for p in series.packages()],
        registry=demo_registry(),
        ledger=ledger,
        missing=missing,
    )


#: The seller of the intake example (docs/intake.md, series C22TAA) and of the example packages
#: (docs/examples, C25TAA), registered as docs/examples/registry.json registers it, so that
#: importing that file on the demo changes nothing about it.
EXAMPLE_SELLER: dict[str, Any] = {
    "tax_id": "0100109106",
    "name": "Công ty Cổ phần Ví dụ Hà Nội",
    "status": "00",
    "status_since": "2015-04-01",
    "einvoice_stopped": False,
    "registrations": [
        {"template": "1", "series": "C22TAA", "from": "2022-01-01", "to": "2022-12-31"},
        {"template": "1", "series": "C25TAA", "from": "2025-01-01", "to": "2025-12-31"},
    ],
}


def demo_registry() -> dict[str, Any]:
    """The registry file (docs/formats.md "Registry file") for the demo: every seller
    registered for its series in an active status, the cash-register seller with its code
    range, the example seller, and the provider that sends the demo packages."""
    taxpayers = [
        {
            "tax_id": seller,
            "name": name,
            "status": "00",
            "cash_register_code_ranges": (
                [CASH_REGISTER_RANGE] if any(s[3] == "M" for s in series) else []
            ),
            "registrations": [
                {"template": "1", "series": s, "from": f"20{s[1:3]}-01-01"} for s in series
            ],
        }
        for seller, name, series in VN_SELLERS
    ]
    return {
        "taxpayers": [*taxpayers, EXAMPLE_SELLER],
        "providers": [
            {
                "provider_id": PROVIDER,
                "name": "Công ty Cổ phần Truyền nhận Số",
                "valid_from": "2021-07-01",
                "valid_to": "2030-12-31",
            }
        ],
    }


def example_queries(plan: DemoPlan) -> list[tuple[str, dict[str, str]]]:
    """(what it shows, query parameters) for lookups that work on the demo data."""

    def vn_q(inv: dict[str, Any]) -> dict[str, str]:
        return {k: str(inv[k]) for k in ("seller_tax_id", "template", "series", "number")}

    wrong_total = str(Decimal(plan.valid["total_amount"]) + 1000)
    cn_code = plan.cn_code
    lost = next(inv for status, inv in plan.ledger.booked if status == "not_found")
    return [
        (
            "valid (VN key, total matches)",
            vn_q(plan.valid) | {"total_amount": plan.valid["total_amount"]},
        ),
        ("mismatch (VN key, wrong total)", vn_q(plan.valid) | {"total_amount": wrong_total}),
        ("valid (VN authority code)", {"authority_code": plan.authority_code}),
        ("cancelled", vn_q(plan.cancelled)),
        ("replaced", vn_q(plan.replaced)),
        ("replaced (a replacement, replaced in turn)", vn_q(plan.ledger.chain[1])),
        ("adjusted", vn_q(plan.adjusted)),
        ("not_found (a number missing from its series, in a buyer's ledger)", vn_q(lost)),
        (
            "valid (CN code + number, check code last 6)",
            {
                "code": cn_code["invoice_code"],
                "number": cn_code["invoice_number"],
                "check_code": cn_code["check_code"][-6:],
            },
        ),
        (
            "valid (CN 20-digit number, total)",
            {
                "number": plan.cn_digital["invoice_number"],
                "total_amount": plan.cn_digital["total_amount"],
            },
        ),
    ]
