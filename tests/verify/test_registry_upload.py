"""`POST /api/v1/admin/registry` and `invoice-verify registry import` with files of the wrong
shape: 422 `invalid_registry` (exit 1 on the command line) naming the record and field,
never a 500, and nothing imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import Client
from verify.cli.main import app as cli_app

URL = "/api/v1/admin/registry"
GOOD = {"tax_id": "0100109106", "name": "A", "status": "00"}
WRONG_SHAPES = [
    {"taxpayers": [None]}, {"taxpayers": [1]}, {"taxpayers": ["0100109106"]},
    {"providers": [None]}, {"providers": [[]]}, {"taxpayers": [GOOD, None]},
    {"taxpayers": [{**GOOD, "registrations": [None]}]},
    {"taxpayers": [{**GOOD, "registrations": [{"template": 1, "series": ["C22TAA"]}]}]},
    {"taxpayers": [{**GOOD, "cash_register_code_ranges": 12345}]},
    {"taxpayers": [{**GOOD, "status_since": 20220101}]},
    {"taxpayers": [{**GOOD, "name": {"first": "x"}}]},
]


@pytest.mark.parametrize("data", WRONG_SHAPES)
async def test_wrong_shapes_are_422_and_import_nothing(cli: Client, data: object) -> None:
    resp = await cli.post(URL, json=data)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_registry"
    resp = await cli.post(URL, json={"taxpayers": []})
    assert (await resp.json())["totals"]["taxpayers"] == 0


async def test_hostile_csv_is_422(cli: Client) -> None:
    for body in (b"tax_id,name,status\n0100109106,\x00,00\n",
                 b"tax_id,name,status\n0100109106,A,00,extra\n",
                 b"tax_id,status,registrations\n0100109106,00,1:C22TAA:\xd9\xa3\n"):
        resp = await cli.post(URL, data=body, headers={"Content-Type": "text/csv"})
        assert resp.status == 422, await resp.text()


def test_cli_registry_import_refuses_wrong_shapes(tmp_path: Path) -> None:
    runner = CliRunner()
    for n, data in enumerate(WRONG_SHAPES):
        path = tmp_path / f"registry-{n}.json"
        path.write_text(json.dumps(data))
        result = runner.invoke(cli_app, ["registry", "import", str(path), "--data-dir",
                                         str(tmp_path / "data")])
        assert result.exit_code == 1, (data, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
