"""CSV written by the command line goes through the same cell rule as the service's
(`verify.http.csv_cells`): JSON's false and null, never Python's `False` and `None`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from tests.factories import package, vn_invoice, vn_key
from verify.cli.main import app as cli_app


def test_cli_batch_csv_writes_false_not_python_reprs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pkg = tmp_path / "p.json"
    pkg.write_text(json.dumps(package([vn_invoice(1)])))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["ingest", str(pkg), "--data-dir", str(data)]).exit_code == 0
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([vn_key(1), vn_key(2)]))
    out = tmp_path / "answers.csv"
    result = runner.invoke(cli_app, ["verify", "--batch", str(batch), "--out", str(out),
                                     "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["degraded"] for r in rows] == ["false", "false"]
    assert not {"True", "False", "None"} & {v for r in rows for v in r.values()}
