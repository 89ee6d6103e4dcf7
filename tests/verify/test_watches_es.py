"""The watches' tests through the real app on the distributed deployment's store
(`verify.watches.es_store`, on osmem-server or INVOICE_ES_URL): the same answers as on the
embedded default's file. The feed's settling delay (`SETTLE_S`, which lets another process's
events show before a cursor passes them) is set to none: one process here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import Client, EsTarget, bearer
from tests.indexer.store.conftest import fresh_prefix
from tests.verify import test_watches
from verify.app import create_app
from verify.settings import Settings
from verify.watches import es_store

test_a_cancellation_through_a_later_package_is_one_event_and_one_callback = (
    test_watches.test_a_cancellation_through_a_later_package_is_one_event_and_one_callback)
test_a_second_key_sees_nothing_of_the_first_keys_watches = (
    test_watches.test_a_second_key_sees_nothing_of_the_first_keys_watches)
test_a_deleted_watch_is_told_nothing = test_watches.test_a_deleted_watch_is_told_nothing
test_limits_refuse_clearly_and_are_audited = test_watches.test_limits_refuse_clearly_and_are_audited
test_watch_true_on_a_batch_watches_each_answered_invoice = (
    test_watches.test_watch_true_on_a_batch_watches_each_answered_invoice)
test_watch_true_on_a_ledger_check_watches_each_answered_line = (
    test_watches.test_watch_true_on_a_ledger_check_watches_each_answered_line)
test_a_red_letter_invoice_is_an_adjustment_said_so = (
    test_watches.test_a_red_letter_invoice_is_an_adjustment_said_so)
test_the_same_change_committed_again_is_one_event = (
    test_watches.test_the_same_change_committed_again_is_one_event)
receiver = test_watches.receiver


@pytest.fixture
def settings(tmp_path: Path, es_target: EsTarget, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(es_store, "SETTLE_S", 0.0)
    return Settings.from_env({"INVOICE_DATA_DIR": str(tmp_path / "data"),
                              "INVOICE_ES_URL": es_target.url,
                              "INVOICE_ES_INDEX_PREFIX": fresh_prefix(),
                              "INVOICE_CALLBACK_SECRET": test_watches.SECRET,
                              "INVOICE_CALLBACK_ALLOW_PRIVATE": "1",
                              "INVOICE_GAP_GRACE_HOURS": "0",
                              "INVOICE_RECONCILE_INTERVAL_SECONDS": "3600",
                              "INVOICE_WATCHES_PER_KEY": "3"})


@pytest.fixture
async def cli(aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings,
              admin_token: str, es_target: EsTarget) -> Client:
    app = create_app(settings, es_client_factory=es_target.client_factory)
    return await aiohttp_client(app, headers=bearer(admin_token))
