"""The example files of docs/examples work as docs/formats.md says: the registry imports, every
item of every package is accepted (registry checks on), the batches and both ledgers answer
what their rows are written to show; over HTTP and through the CLI."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
import json
import re
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from typer.testing import CliRunner

from indexer.registry import parse_registry_csv, parse_registry_json
from indexer.rules import RULES
from tests.conftest import Client
from verify.cli.main import app
from verify.demo import EXAMPLE_SELLER, build_demo, ledger_csv

EXAMPLES = Path(__file__).parents[1] / "docs" / "examples"
PACKAGES = {
    "package-vn.json": "application/json",
    "package-cn.json": "application/json",
    "package-vn.xml": "application/xml",
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
VN_BUYER = "0312345673"
CN_BUYER = "91310115MA1K3XYZ2P"

runner = CliRunner()


def _example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


async def _load(cli: Client) -> list[dict[str, Any]]:
    """The registry imported through the admin API, then every package posted."""
    resp = await cli.post(
        "/api/v1/admin/registry",
        data=_example("registry.json"),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["imported"] == {"taxpayers": 5, "providers": 1}
    notices = []
    for name, content_type in PACKAGES.items():
        resp = await cli.post(
            "/api/v1/packages", data=_example(name), headers={"Content-Type": content_type}
        )
        assert resp.status == 200, (name, await resp.text())
        notices.append(await resp.json())
    return notices


async def test_every_item_of_every_example_package_is_accepted(cli: Client) -> None:
    notices = await _load(cli)
    assert [(n["package_id"], n["result"], n["accepted"], n["rejected"]) for n in notices] == [
        ("PKG-EXAMPLE-VN-2025-0001", "accepted", 9, 0),
        ("PKG-EXAMPLE-CN-2025-0001", "accepted", 4, 0),
        ("V0101300842C3E83A4B1B4DB2D90AB616841A099947", "accepted", 4, 0),
    ]
    for notice in notices:
        for item in notice["items"]:
            assert (item["errors"], item["warnings"]) == ([], []), item
    ids = [item["id"] for item in notices[2]["items"]]
    assert ids == [
        "vn:0102671977:1:C25TBB:1",
        "vn:0102671977:1:C25TBB:2",
        "vn:0102671977:1:C25TBB:3",
        "vn:0102671977:1:C25TBB:1",
    ]


async def test_the_examples_pass_the_registry_checks_they_are_written_for(cli: Client) -> None:
    """Without the registry's entries, the same packages are refused: the registry example
    is what lets them in (a check that the test above is not vacuous)."""
    resp = await cli.post(
        "/api/v1/admin/registry",
        headers={"Content-Type": "application/json"},
        json={"providers": [{"provider_id": "0101300842", "valid_from": "2021-07-01"}]},
    )
    assert resp.status == 200
    resp = await cli.post(
        "/api/v1/packages",
        data=_example("package-vn.json"),
        headers={"Content-Type": "application/json"},
    )
    rules = {e["rule"] for item in (await resp.json())["items"] for e in item["errors"]}
    assert "registry.seller.unknown" in rules


async def test_the_lookups_show_each_lifecycle(cli: Client) -> None:
    await _load(cli)
    expected = {1: "replaced", 2: "adjusted", 3: "cancelled", 4: "valid", 5: "valid", 6: "valid"}
    for number, status in expected.items():
        resp = await cli.get(
            "/api/v1/invoices/lookup",
            params={
                "seller_tax_id": "0100109106",
                "template": "1",
                "series": "C25TAA",
                "number": str(number),
            },
        )
        answer = await resp.json()
        assert answer["status"] == status, (number, answer)
    resp = await cli.get(
        "/api/v1/invoices/lookup",
        params={"seller_tax_id": "0100109106", "template": "1", "series": "C25TAA", "number": "3"},
    )
    related = (await resp.json())["related"]
    assert [(r["relation"], r["notice_id"]) for r in related] == [
        ("cancelled_by", "04SS-2025-0001")
    ]
    resp = await cli.get(
        "/api/v1/invoices/lookup",
        params={"seller_tax_id": "0102671977", "template": "1", "series": "C25TBB", "number": "1"},
    )
    assert [r["notice_id"] for r in (await resp.json())["related"]] == ["04SS-2025-0002/1"]


async def _batch(cli: Client, name: str, content_type: str) -> list[dict[str, Any]]:
    resp = await cli.post(
        "/api/v1/verify/batch", data=_example(name), headers={"Content-Type": content_type}
    )
    assert resp.status == 200, await resp.text()
    return [json.loads(line) for line in (await resp.text()).splitlines()]


async def test_the_batch_examples_answer_row_by_row(cli: Client) -> None:
    await _load(cli)
    rows = await _batch(cli, "batch.csv", "text/csv")
    assert [r["status"] for r in rows] == [
        "valid",
        "replaced",
        "valid",
        "valid",
        "valid",
        "mismatch",
        "not_found",
    ]
    assert rows[5]["mismatches"] == [{"field": "total_amount", "given": "1000", "recorded": "1060"}]
    rows = await _batch(cli, "batch.json", "application/json")
    assert [r.get("status") or r["error"]["code"] for r in rows] == [
        "cancelled",
        "valid",
        "valid",
        "valid",
        "invalid_key",
    ]


def _statuses(report: dict[str, Any]) -> dict[int, str]:
    return {
        line["row"]: line.get("error", {}).get("code") or line["status"] for line in report["lines"]
    }


async def test_the_csv_ledger_shows_every_line_status(cli: Client) -> None:
    await _load(cli)
    resp = await cli.post(
        "/api/v1/reports/ledger",
        data=_example("ledger.csv"),
        headers={"Content-Type": "text/csv"},
        params={"buyer_tax_id": VN_BUYER, "from": "2025-03-01", "to": "2025-03-31"},
    )
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["scope"]["ledger"]["ignored_columns"] == ["note"]
    assert _statuses(report) == {
        2: "valid",
        3: "replaced",
        4: "adjusted",
        5: "cancelled",
        6: "mismatch",
        7: "not_found",
        8: "cancelled",
        9: "valid",
        10: "invalid_key",
        11: "duplicate_line",
    }
    mismatch = report["lines"][4]
    assert mismatch["mismatches"] == [
        {"field": "total_amount", "given": "1230000", "recorded": "1320000"}
    ]
    assert [e["id"] for e in report["not_in_ledger"]] == [
        "vn:0102671977:1:K25TEK:1",
        "vn:0100109106:1:C25TAA:6",
        "vn:0102671977:1:C25TBB:2",
    ]
    assert report["totals"] == {
        "lines": 10,
        "valid": 2,
        "mismatch": 1,
        "cancelled": 2,
        "replaced": 1,
        "adjusted": 1,
        "not_found": 1,
        "outside_window": 0,
        "unconfirmed": 0,
        "error": 2,
        "not_in_ledger": 3,
    }


async def test_the_xlsx_ledger_of_a_chinese_buyer(cli: Client) -> None:
    await _load(cli)
    resp = await cli.post(
        "/api/v1/reports/ledger",
        data=_example("ledger.xlsx"),
        headers={"Content-Type": XLSX},
        params={"buyer_tax_id": CN_BUYER, "year": "2025"},
    )
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["scope"]["ledger"]["format"] == "xlsx"
    assert report["scope"]["ledger"]["ignored_columns"] == ["备注"]
    assert _statuses(report) == {2: "valid", 3: "mismatch", 4: "valid", 5: "not_found"}
    assert report["lines"][1]["mismatches"] == [
        {"field": "amount", "given": "250", "recorded": "205.3"}
    ]
    assert [e["id"] for e in report["not_in_ledger"]] == ["cn:25442000000098765432"]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_ledger_xlsx", EXAMPLES / "make_ledger_xlsx.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_committed_xlsx_is_what_its_script_writes() -> None:
    written: bytes = _load_script().xlsx_bytes()
    assert _members(_example("ledger.xlsx")) == _members(written), (
        "docs/examples/ledger.xlsx is stale: run .venv/bin/python docs/examples/make_ledger_xlsx.py"
    )


def test_the_demo_ledger_is_what_the_demo_writes() -> None:
    """ledger-demo.csv books the demo buyer's invoices (docs/reports.md runs it against
    `serve --demo`)."""
    assert _example("ledger-demo.csv").decode() == ledger_csv(build_demo()), (
        "docs/examples/ledger-demo.csv is stale: run .venv/bin/python -c 'from verify.demo "
        'import build_demo, ledger_csv; print(ledger_csv(build_demo()), end="")\' '
        "> docs/examples/ledger-demo.csv"
    )


def test_the_registry_examples_agree_with_each_other_and_the_demo() -> None:
    """taxpayers.csv is registry.json's taxpayers as CSV; the demo registers the example
    seller as registry.json does, so importing the examples on the demo changes it not."""
    registry = json.loads(_example("registry.json"))
    as_json = parse_registry_json(registry)
    assert parse_registry_csv(_example("taxpayers.csv").decode()).taxpayers == as_json.taxpayers
    seller = next(t for t in registry["taxpayers"] if t["tax_id"] == EXAMPLE_SELLER["tax_id"])
    assert seller == EXAMPLE_SELLER
    assert EXAMPLE_SELLER in build_demo(per_series=100).registry["taxpayers"]


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


async def test_the_cli_imports_ingests_and_reconciles_the_examples(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    # Each command runs its own event loop (asyncio.run): give it a thread of its own.
    result = await asyncio.to_thread(
        _run, "registry", "import", str(EXAMPLES / "registry.json"), "--data-dir", data
    )
    assert result.exit_code == 0, result.output
    assert "imported 5 taxpayers and 1 providers" in result.output
    files = [str(EXAMPLES / name) for name in PACKAGES]
    result = await asyncio.to_thread(_run, "ingest", *files, "--data-dir", data)
    assert result.exit_code == 0, result.output
    for package_id, count in (
        ("PKG-EXAMPLE-VN-2025-0001", 9),
        ("PKG-EXAMPLE-CN-2025-0001", 4),
        ("V0101300842C3E83A4B1B4DB2D90AB616841A099947", 4),
    ):
        assert f"{package_id} accepted: {count} accepted, 0 rejected" in result.output
    answers = tmp_path / "answers.csv"
    result = await asyncio.to_thread(
        _run,
        "verify",
        "--batch",
        str(EXAMPLES / "batch.csv"),
        "--out",
        str(answers),
        "--data-dir",
        data,
    )
    assert result.exit_code == 0, result.output
    with answers.open(newline="") as sink:
        assert [row["status"] for row in csv.DictReader(sink)] == [
            "valid",
            "replaced",
            "valid",
            "valid",
            "valid",
            "mismatch",
            "not_found",
        ]
    out = tmp_path / "reconciled.json"
    result = await asyncio.to_thread(
        _run,
        "report",
        "ledger",
        str(EXAMPLES / "ledger.xlsx"),
        "--buyer-tax-id",
        CN_BUYER,
        "--year",
        "2025",
        "--format",
        "json",
        "--out",
        str(out),
        "--data-dir",
        data,
    )
    assert result.exit_code == 0, result.output
    assert _statuses(json.loads(out.read_text())) == {
        2: "valid",
        3: "mismatch",
        4: "valid",
        5: "not_found",
    }


DOCS = EXAMPLES.parent
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but `-` and `_` dropped, spaces `-`."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add("".join(c for c in title if c.isalnum() or c in "-_ ").replace(" ", "-"))
    return out


def test_every_link_of_the_format_and_rule_pages_resolves() -> None:
    for page in ("formats.md", "vn-rules.md", "cn-rules.md"):
        for target in _LINK.findall((DOCS / page).read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (DOCS / path) if path else DOCS / page
            assert linked.exists(), (page, target)
            if anchor:
                assert anchor in _anchors(linked.read_text(encoding="utf-8")), (page, target)


_PAGES = {"vn-einvoice": "vn-rules.md", "cn-invoice": "cn-rules.md"}
_SECTION = re.compile(r"§(\d+(?:\.\d+)?)")


def _numbered_headings(page: str) -> set[str]:
    """`1.2` for `### 1.2 Series`, `8` for `## 8. Intake steps`."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = re.findall(r"^#+ (\d+(?:\.\d+)?)\.? ", text, flags=re.MULTILINE)
    return set(found)


def test_every_rule_cites_a_section_the_docs_have() -> None:
    """A rule's `spec` (in docs/rules.md and every acceptance notice) names a section of
    docs/vn-rules.md, docs/cn-rules.md or docs/formats.md that exists."""
    headings = {page: _numbered_headings(page) for page in _PAGES.values()}
    formats = {
        title.replace("-", " ")
        for title in _anchors((DOCS / "formats.md").read_text(encoding="utf-8"))
    }
    for rule in RULES.values():
        for part in rule.spec.split(";"):
            doc, _, rest = part.strip().partition(" ")
            if doc == "formats.md":
                assert rest.lower() in formats, (rule.code, rule.spec)
                continue
            assert doc in _PAGES, (rule.code, rule.spec)
            sections = _SECTION.findall(rest)
            assert sections, (rule.code, rule.spec)
            for section in sections:
                assert section in headings[_PAGES[doc]], (rule.code, section)
