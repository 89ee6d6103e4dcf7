"""The flat document codec and the JSON text the SQLite files keep."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from indexer.codec import invoice_from_doc, invoice_to_doc, json_text
from indexer.model import Invoice
from indexer.rules import RuleConfig
from indexer.validate import validate_invoice
from tests.factories import vn_invoice


def _invoice(number: int) -> Invoice:
    invoice, problems = validate_invoice(vn_invoice(number), RuleConfig(), package_id="P",
                                         now=datetime.now(UTC))
    assert problems == []
    assert invoice is not None
    return invoice


def test_every_encoding_is_a_new_document_of_the_same_content() -> None:
    invoice = _invoice(1)
    first = invoice_to_doc(invoice)
    first["replicated_at"] = "2026-01-01T00:00:00Z"  # what the replica adds to its copy
    second = invoice_to_doc(invoice)
    assert "replicated_at" not in second
    assert invoice_from_doc(second) == invoice
    assert invoice_to_doc(_invoice(2))["number"] == 2


def test_json_text_reads_back_as_json_dumps_would() -> None:
    notice = {"package_id": "P", "items": [{"index": 0, "errors": [], "id": None,
                                            "message_vi": "Thiếu trường bắt buộc."}],
              "ok": True, "huge": 2**70}
    text = json_text(notice)
    assert json.loads(text) == notice
    assert "Thiếu" in text  # kept as UTF-8, not escaped
    assert json.loads(json_text({"n": 1})) == {"n": 1}
