from datetime import timedelta
from pathlib import Path

import pytest

from indexer.rules import Severity
from verify.settings import Settings, SettingsError


def test_defaults_are_the_embedded_service() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.data_dir) == ("127.0.0.1", 8080, Path("data"))
    assert settings.backend == "sqlite"
    assert settings.es_url is None
    assert settings.redis_url is None
    assert settings.sqlite_path == Path("data/invoices.sqlite3")


def test_environment_is_read_once_into_typed_fields() -> None:
    settings = Settings.from_env({
        "INVOICE_HOST": "0.0.0.0", "INVOICE_PORT": "9000", "INVOICE_DATA_DIR": "/srv/inv",
        "INVOICE_ES_URL": "http://127.0.0.1:9200", "INVOICE_MAX_PACKAGE_BYTES": "2048",
        "INVOICE_RULE_SEVERITY": "vn.series.letter_f=error, invoice.totals.inconsistent=off",
        "INVOICE_FUTURE_TOLERANCE_SECONDS": "60", "INVOICE_LOG_FORMAT": "TEXT",
    })
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 9000,
                                                                 Path("/srv/inv"))
    assert settings.backend == "elasticsearch"
    assert settings.max_package_bytes == 2048
    assert settings.log_format == "text"
    assert settings.rules.severity_of("vn.series.letter_f") is Severity.ERROR
    assert settings.rules.severity_of("invoice.totals.inconsistent") is Severity.OFF
    assert settings.rules.severity_of("vn.tax_id.invalid") is Severity.ERROR
    assert settings.rules.future_tolerance == timedelta(seconds=60)


@pytest.mark.parametrize(("env", "message"), [
    ({"INVOICE_PORT": "http"}, "INVOICE_PORT"),
    ({"INVOICE_PORT": "0"}, "at least 1"),
    ({"INVOICE_MAX_PACKAGE_BYTES": "10"}, "at least 1024"),
    ({"INVOICE_RECONCILE_BATCH_ENTRIES": "0"}, "INVOICE_RECONCILE_BATCH_ENTRIES"),
    ({"INVOICE_RECONCILE_BATCH_BYTES": "many"}, "INVOICE_RECONCILE_BATCH_BYTES"),
    ({"INVOICE_LOG_FORMAT": "xml"}, "INVOICE_LOG_FORMAT"),
    ({"INVOICE_RULE_SEVERITY": "no.such.rule=error"}, "unknown rule"),
    ({"INVOICE_RULE_SEVERITY": "vn.series.letter_f=fatal"}, "severity must be one of"),
    ({"INVOICE_RULE_SEVERITY": "vn.series.letter_f"}, "code=severity"),
])
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_cli_overrides_keep_unset_values() -> None:
    settings = Settings.from_env({"INVOICE_PORT": "9000"}).with_overrides(port=None, host="::1")
    assert (settings.port, settings.host) == (9000, "::1")
