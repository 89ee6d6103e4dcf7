"""The depth limit of a JSON package body holds whether or not its bracket count lets
`parse_json_package` skip the walk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from indexer.package import (
    MAX_DEPTH,
    PackageError,
    package_from_json,
    parse_json_package,
)
from tests.factories import package, vn_invoice


def _nested_body(depth: int, *, padding: int = 0) -> bytes:
    """A one-invoice package whose invoice carries a field nested so that the whole body is
    `depth` levels deep, plus `padding` extra empty lists beside it (brackets, not depth)."""
    data = package([vn_invoice(1)], package_id="PKG-DEEP")
    data["invoices"][0]["extra"] = {"pad": [[] for _ in range(padding)]} if padding else None
    text = json.dumps(data)
    inner = depth - 3  # envelope, invoices list, invoice: three levels
    return text.replace(
        '"extra": ', '"deep": ' + "[" * inner + "]" * inner + ', "extra": '
    ).encode()


def _verdict(read: Any) -> str:
    try:
        read()
    except PackageError as exc:
        return exc.code
    return "taken"


@pytest.mark.parametrize("padding", [0, 40], ids=["few brackets", "many brackets"])
def test_nesting_up_to_the_limit_is_taken_and_beyond_it_refused(padding: int) -> None:
    assert _verdict(lambda: parse_json_package(_nested_body(MAX_DEPTH, padding=padding))) == "taken"
    assert (
        _verdict(lambda: parse_json_package(_nested_body(MAX_DEPTH + 1, padding=padding)))
        == "package.too_deep"
    )


def test_skipping_the_depth_walk_on_few_brackets_changes_no_verdict() -> None:
    """Bodies of few brackets (the walk skipped) and of many (walked) alike: the verdict is
    the one of always walking."""
    shallow = 0
    for depth in range(4, MAX_DEPTH + 3):
        for padding in (0, 1, 40):
            body = _nested_body(depth, padding=padding)
            shallow += body.count(b"{") + body.count(b"[") <= MAX_DEPTH
            assert _verdict(lambda b=body: parse_json_package(b)) == _verdict(
                lambda b=body: package_from_json(json.loads(b))
            )
    assert shallow > 0  # the skipping road was taken
