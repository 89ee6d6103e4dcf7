"""`verify.http.csv_cells`: the one cell rule every CSV the service writes goes through."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from verify.http.csv_cells import FORMULA_START, cell, dict_writer


def test_formula_starts_are_quoted_and_numbers_are_not() -> None:
    assert [cell(v) for v in ("=1+1", "+1", "-1+2", "@A1", "\tx", "\rx", "-", "=")] == [
        "'=1+1", "'+1", "'-1+2", "'@A1", "'\tx", "'\rx", "'-", "'="]
    assert [cell(v) for v in ("-1500", "-1500.25", "1500", "a=b", "", "0100109106")] == [
        "-1500", "-1500.25", "1500", "a=b", "", "0100109106"]
    assert [cell(v) for v in (None, True, False, 0, -3, 2.5)] == [
        "", "true", "false", "0", "-3", "2.5"]


@given(st.text())
def test_no_written_cell_starts_a_formula(text: str) -> None:
    buffer = io.StringIO()
    writer = dict_writer(buffer, ["a", "b"])
    writer.writeheader()
    writer.writerows([{"a": text, "b": None}])
    row = next(csv.DictReader(io.StringIO(buffer.getvalue(), newline="")))
    assert not row["a"].startswith(FORMULA_START) or row["a"].lstrip("-").replace(
        ".", "", 1).isdigit()
    assert row["a"].removeprefix("'") == text or row["a"] == text
