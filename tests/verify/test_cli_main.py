"""The root of `invoice-verify`: `--version`, and `--help` texts shown whole."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from verify.cli.main import DISTRIBUTION, app

runner = CliRunner()


def test_version_is_the_installed_packages() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"invoice-verify {version(DISTRIBUTION)}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version(DISTRIBUTION))


def test_version_through_python_m_verify() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "verify", "--version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"invoice-verify {version(DISTRIBUTION)}\n")


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # wrapping aside


def test_serve_help_shows_the_environment_hints() -> None:
    """Rich's markup took "[env INVOICE_HOST]" for a style tag: --host and --port had no help
    at all, the other options lost their hint."""
    text = _help("serve")
    for shown in [
        "--host <str> [env INVOICE_HOST]",
        "--port <int> [env INVOICE_PORT]",
        "--data-dir <path> Data directory [env INVOICE_DATA_DIR]",
        "--insecure-local no API keys (loopback only) [env INVOICE_INSECURE_LOCAL]",
    ]:
        assert shown in text, text


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (("reconcile",), "[env INVOICE_RECONCILE_INTERVAL_SECONDS]"),
        (("journal", "list"), "[env INVOICE_DATA_DIR]"),
        (("report", "missing"), "[env INVOICE_DATA_DIR]"),
    ],
)
def test_every_group_shows_its_hints(command: tuple[str, ...], hint: str) -> None:
    assert hint in _help(*command)
