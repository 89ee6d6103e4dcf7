"""The Elasticsearch store: the primary index of the distributed deployment.

Layout, mappings and the document shape are in `indexer.store.es_mappings`; this module is
the `InvoiceStore` over them, with the same semantics as `SqliteStore` (the contract suite in
tests/indexer/store runs against both).

Two clients. The request path (every read, and `ping`) uses a fail-fast client: 1 s per
request, one retry on a broken connection, none on a timeout; the coalesced reads by id
(`es_support`) send a timed-out `_mget` once more, so a stalled cluster costs a lookup
about two seconds (the lookup's own `INVOICE_PRIMARY_TIMEOUT_MS`, 2 s, bounds it) and the
circuit breaker opens instead of requests piling up, while one slow answer opens nothing. Writes
and maintenance use a patient client: 30 s, three retries on connection errors and on
429/502/503/504. It does not retry a timed-out request either: a `create` that did land
would come back from its retry as a conflict and be reported as a duplicate.
Transport failures, 429/5xx answers and a missing index are raised as
`ElasticsearchUnavailable`.

Starting while the cluster is down: the service must come up and answer from the replica,
so `open_elasticsearch_store` tries to create the missing templates, indices and aliases for
at most `startup_timeout`, and if the cluster does not answer it logs that and yields the
store anyway. Reads then raise `ElasticsearchUnavailable` (readiness fails, the breaker
opens); `ping` (the readiness and breaker probe) and `commit_package` finish the layout as
soon as the cluster answers. Creating the layout is idempotent, so any process may do it.

Refresh policy: nothing is written with `refresh`. Every read the service makes is a realtime
GET/mget by `_id`: invoices by doc id; authority codes through the codes index, whose `_id`
is the code (so `find_by_authority_code` and `existing_authority_codes` need no search and see
a commit at once); packages by package id. Only `count_invoices`, an operator's statistic,
is a search, and it refreshes the invoices index first.

Version guard. ES has no transactions, and several service processes may write, so each
document carries a version: `state_version` = 1 + the number of relations, which grows by one
with every change intake makes and is identical when the same state is replayed. New invoices
are written with `op_type=create` (Elasticsearch's internal version 1; create refuses explicit
versions), changed ones with `version=state_version`, `version_type=external`, which the
cluster refuses unless it is strictly greater than the stored `_version`. A replayed or
concurrent older state (an "issued" invoice over its cancellation) is therefore refused, never
applied. `if_seq_no` would also guard, but needs the seq_no of the read the change was based
on threaded through intake; a version derived from content needs nothing.

commit_package, as close to all-or-nothing as ES allows:
  1. GET the package id: present -> `PackageExistsError`, nothing written.
  2. mget the changed invoices: any stored state not older than ours (or gone) ->
     `StaleInvoiceError`, nothing written.
  3. One bulk of creates: the authority codes of the new invoices, then the invoices. Any
     conflict -> every document this call created is deleted (by its exact `_seq_no`, so
     nothing written since by anyone else is touched) -> `DuplicateInvoiceError`.
  4. One bulk of the changed invoices, version-guarded. A conflict here means another process
     changed the same invoice between steps 2 and 4 -> undo step 3 -> `StaleInvoiceError`.
  5. Create the package record LAST (`op_type=create`): a conflict -> `PackageExistsError`
     (another commit of this package id finished first; nothing is undone, see (c)). A
     package that is visible is therefore complete.
What is not atomic: (a) changed invoices applied in step 4 before a later item or step 5
fails stay applied (a version-guarded state cannot be rolled back without breaking the
guard), and may then point at a new invoice that the undo removed; (b) a crash or lost
connection between steps 3 and 5 leaves documents without their package record (the undo is
attempted but cannot run if the cluster is gone; the ids left behind are added as a note to
the exception). Both need two processes changing one invoice at the same moment or a crash
mid-commit; the durable intake journal replays such packages, and the replay takes documents
that already carry its package id as its own rather than as duplicates (`_not_ours` here,
`forget_own_leftovers` and `authority_code_packages` in intake). Within one process `Intake`
serialises commits. (c) a failure of step 5 itself (the package record) undoes nothing: the
create may have landed although its answer never came (a stalled cluster), and a record
whose invoices were deleted would be taken by a replay as done. Until a replay (or the
record landing) the invoices stand without their record; `invoice-verify ingest` reports
the failure and a re-run completes it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import date, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError

from indexer.model import Invoice
from indexer.store.es_bulk import BulkFailure, BulkOutcome, BulkWriteError, run_bulk
from indexer.store.es_mappings import (
    IndexLayout,
    invoice_from_source,
    invoice_source,
    source_version,
    state_version,
)
from indexer.store.es_support import (
    MGET_CHUNK,
    PATIENT,
    REQUEST_PATH,
    AliasedStore,
    ClientFactory,
    ClientOptions,
    ElasticsearchUnavailable,
    default_client,
    open_aliased_store,
    unavailable_on_failure,
)
from indexer.store.numbering_reports import NumberingScope, NumberRun, es_numbering_runs
from indexer.store.protocol import (
    DuplicateInvoiceError,
    IssuedPosition,
    PackageCommit,
    PackageExistsError,
    StoredPackage,
)

#: The clients and the unavailable error live in `es_support` (shared by the three stores),
#: and are named here too, where the service and the tests have always found them.
__all__ = ["MGET_CHUNK", "PATIENT", "REQUEST_PATH", "ClientFactory", "ClientOptions",
           "ElasticsearchStore", "ElasticsearchUnavailable", "StaleInvoiceError",
           "default_client", "open_elasticsearch_store"]

logger = logging.getLogger(__name__)

class StaleInvoiceError(DuplicateInvoiceError):
    """A changed invoice is not newer than the stored one: another intake changed it first.

    A `DuplicateInvoiceError` because, to the caller, it is the same event (a concurrent
    intake got there first; post the package again) and `Intake` already answers it so.
    """


class ElasticsearchStore(AliasedStore):
    backend = "elasticsearch"
    layout: IndexLayout
    reads_inline = False  # every read is a request over the network

    def __init__(self, fast: AsyncElasticsearch, patient: AsyncElasticsearch,
                 layout: IndexLayout) -> None:
        super().__init__(fast, patient, layout)

    async def ping(self) -> None:
        """A realtime GET on the invoices alias: fails if the cluster, the alias or the
        index's shard cannot answer, which a bare `info()` would not notice. Finishes the
        layout first if the store was opened while the cluster was down (fail-fast client:
        a probe must not hang; an index creation that outlives it is seen done next time)."""
        await self.ensure_layout(self.fast)
        with unavailable_on_failure("ping"):
            await self.get_source(self.layout.invoices, "ping")

    async def get_invoice(self, doc_id: str) -> Invoice | None:
        with unavailable_on_failure("get_invoice"):
            source = await self.get_source(self.layout.invoices, doc_id)
        return invoice_from_source(source) if source is not None else None

    async def get_invoices(self, doc_ids: Iterable[str]) -> dict[str, Invoice]:
        with unavailable_on_failure("get_invoices"):
            sources = await self.mget_sources(self.layout.invoices, doc_ids)
        return {doc_id: invoice_from_source(src) for doc_id, src in sources.items()}

    async def find_by_authority_code(self, code: str) -> Invoice | None:
        with unavailable_on_failure("find_by_authority_code"):
            entry = await self.get_source(self.layout.codes, code)
            if entry is None:
                return None
            source = await self.get_source(self.layout.invoices, str(entry["doc_id"]))
        return invoice_from_source(source) if source is not None else None

    async def existing_authority_codes(self, codes: Iterable[str]) -> set[str]:
        with unavailable_on_failure("existing_authority_codes"):
            return set(await self.mget_sources(self.layout.codes, codes))

    async def authority_code_packages(self, codes: Iterable[str]) -> dict[str, str]:
        with unavailable_on_failure("authority_code_packages"):
            found = await self.mget_sources(self.layout.codes, codes, self.patient)
        return {code: str(source.get("package_id")) for code, source in found.items()}

    async def get_package(self, package_id: str) -> StoredPackage | None:
        with unavailable_on_failure("get_package"):
            source = await self.get_source(self.layout.packages, package_id)
        if source is None:
            return None
        return StoredPackage(source["package_id"], source["sender"], source["digest"],
                             datetime.fromisoformat(source["received_at"]), source["notice"])

    async def scan_invoices(self, issued_from: date, issued_until: date, *,
                            after: str | None = None, limit: int = 1000) -> list[Invoice]:
        """A range query sorted on the keyword `doc_id`, paged with `search_after` (works on
        Elasticsearch and on osmem-server, which has no point-in-time). Refreshes first: a
        scan is batch work and must see every acknowledged write."""
        body: dict[str, Any] = {
            "query": {"range": {"issued_on": {"gte": issued_from.isoformat(),
                                              "lt": issued_until.isoformat()}}},
            "sort": [{"doc_id": "asc"}], "size": limit}
        if after:
            body["search_after"] = [after]
        with unavailable_on_failure("scan_invoices"):
            await self.patient.indices.refresh(index=self.layout.invoices)
            resp = await self.patient.search(index=self.layout.invoices, body=body)
        return [invoice_from_source(hit["_source"]) for hit in resp["hits"]["hits"]]

    async def count_invoices(self) -> int:
        with unavailable_on_failure("count_invoices"):
            await self.patient.indices.refresh(index=self.layout.invoices)
            resp = await self.patient.count(index=self.layout.invoices)
        return int(resp["count"])

    async def numbering_runs(self, scope: NumberingScope, *,
                             page_size: int = 5_000) -> AsyncGenerator[list[NumberRun], None]:
        """A composite aggregation over (sequence, number, lifecycle) paged by `after_key`
        on the patient client, after a refresh (batch work sees every acknowledged write)."""
        with unavailable_on_failure("numbering_runs"):
            await self.patient.indices.refresh(index=self.layout.invoices)
            async with aclosing(es_numbering_runs(self.patient, self.layout.invoices, scope,
                                                  page_size=page_size)) as pages:
                async for page in pages:
                    yield page

    async def commit_package(self, package: StoredPackage, new: Sequence[Invoice],
                             changed: Sequence[Invoice]) -> None:
        """See the module docstring for the order of writes and what is not atomic."""
        await self.ensure_layout()
        with unavailable_on_failure("commit_package"):
            if await self.get_source(self.layout.packages, package.package_id) is not None:
                raise PackageExistsError(package.package_id)
            await self._refuse_stale(changed)
            created = BulkOutcome()
            try:
                await self._create_new(package, new, created)
                await self._write_changed(changed)
            except BaseException as exc:
                await self._undo(created, exc)
                raise
            # Never undone: a record create that failed may land all the same (a request
            # timed out by a stalled cluster is not a request refused), and deleting the
            # invoices under it would leave a record without them, which a replay takes as
            # done: acknowledged invoices lost. Left in place, they carry this package's id,
            # and a replay of the package takes them as its own ("What is not atomic" (c)).
            await self._create_package_record(package)

    async def commit_packages(self, batch: Sequence[PackageCommit]) -> None:
        """Package by package, in order (there are no multi-document transactions)."""
        for commit in batch:
            await self.commit_package(commit.package, commit.new, commit.changed)

    async def get_packages(self, package_ids: Iterable[str]) -> dict[str, StoredPackage]:
        with unavailable_on_failure("get_packages"):
            sources = await self.mget_sources(self.layout.packages, package_ids,
                                              self.patient)
        return {pid: StoredPackage(s["package_id"], s["sender"], s["digest"],
                                   datetime.fromisoformat(s["received_at"]), s["notice"])
                for pid, s in sources.items()}

    async def _refuse_stale(self, changed: Sequence[Invoice]) -> None:
        stored = await self.mget_sources(self.layout.invoices,
                                         (inv.doc_id for inv in changed), self.patient)
        stale = [inv.doc_id for inv in changed if inv.doc_id not in stored
                 or source_version(stored[inv.doc_id]) >= state_version(inv)]
        if stale:
            raise StaleInvoiceError(f"changed since read (or gone): {', '.join(stale)}")

    async def _create_new(self, package: StoredPackage, new: Sequence[Invoice],
                          outcome: BulkOutcome) -> None:
        actions: list[dict[str, Any]] = [
            {"_op_type": "create", "_index": self.layout.codes, "_id": inv.authority_code,
             "_source": {"authority_code": inv.authority_code, "doc_id": inv.doc_id,
                         "package_id": package.package_id}}
            for inv in new if inv.authority_code]
        actions += [{"_op_type": "create", "_index": self.layout.invoices, "_id": inv.doc_id,
                     "_source": invoice_source(inv)} for inv in new]
        await run_bulk(self.patient, actions, outcome)
        if outcome.failed and all(f.status == 409 for f in outcome.failed):
            theirs = await self._not_ours(package.package_id, outcome.failed)
            if not theirs:  # left by an interrupted commit of this very package: ours
                return
            codes = self.layout.codes
            taken = ", ".join(
                f"{f.doc_id} ({'authority code' if f.index.startswith(codes) else 'key'})"
                for f in theirs)
            raise DuplicateInvoiceError(f"already stored: {taken}")
        if outcome.failed:
            raise BulkWriteError(outcome.failed)

    async def _not_ours(self, package_id: str,
                        conflicts: Sequence[BulkFailure]) -> list[BulkFailure]:
        """The conflicting documents another package wrote. Documents carrying
        `package_id` are what an interrupted commit of this same package left behind (see
        "What is not atomic" (b)): replaying it takes them as its own."""
        by_index: dict[str, list[BulkFailure]] = {}
        for failure in conflicts:
            by_index.setdefault(failure.index, []).append(failure)
        theirs: list[BulkFailure] = []
        for index, failures in by_index.items():
            stored = await self.mget_sources(index, (f.doc_id for f in failures),
                                             self.patient)
            theirs += [f for f in failures
                       if stored.get(f.doc_id, {}).get("package_id") != package_id]
        return theirs

    async def _write_changed(self, changed: Sequence[Invoice]) -> None:
        actions: list[dict[str, Any]] = [
            {"_op_type": "index", "_index": self.layout.invoices, "_id": inv.doc_id,
             "version": state_version(inv), "version_type": "external",
             "_source": invoice_source(inv)} for inv in changed]
        outcome = BulkOutcome()
        await run_bulk(self.patient, actions, outcome)
        if outcome.failed and all(f.status == 409 for f in outcome.failed):
            raise StaleInvoiceError(
                "changed by another intake meanwhile: "
                + ", ".join(f.doc_id for f in outcome.failed))
        if outcome.failed:
            raise BulkWriteError(outcome.failed)

    async def _create_package_record(self, package: StoredPackage) -> None:
        try:
            await self.patient.create(
                index=self.layout.packages, id=package.package_id,
                document={"package_id": package.package_id, "sender": package.sender,
                          "digest": package.digest,
                          "received_at": package.received_at.isoformat(),
                          "notice": package.notice})
        except ConflictError as exc:
            raise PackageExistsError(package.package_id) from exc

    async def _undo(self, created: BulkOutcome, cause: BaseException) -> None:
        """Delete what this commit created, each at the exact seq_no it was written with."""
        if not created.written:
            return
        actions: list[dict[str, Any]] = [
            {"_op_type": "delete", "_index": w.index, "_id": w.doc_id,
             "if_seq_no": w.seq_no, "if_primary_term": w.primary_term}
            for w in created.written]
        undone = BulkOutcome()
        try:
            await run_bulk(self.patient, actions, undone, ignore_status=(404,))
        except Exception as exc:  # the cause is what the caller must see; this goes beside it
            logger.warning("undo of a failed commit did not finish", exc_info=exc)
            left = sorted({w.doc_id for w in created.written}
                          - {w.doc_id for w in undone.written})
        else:
            left = [f.doc_id for f in undone.failed]
        if left:
            logger.warning("a failed commit left behind: %s", ", ".join(left))
            cause.add_note("left behind by a failed commit: " + ", ".join(left))

    async def scan_buyer_invoices(self, buyer_tax_id: str, issued_from: date,
                                  issued_until: date, *, after: IssuedPosition | None = None,
                                  limit: int = 1000) -> list[Invoice]:
        """A filter query sorted on (issued_on, doc_id), a unique pair, paged with
        `search_after` (no point-in-time: osmem-server has none). A date sorts as its epoch
        milliseconds (UTC midnight, `strict_date`). The first page refreshes the index, so
        the scan sees every acknowledged write."""
        body: dict[str, Any] = {
            "query": {"bool": {"filter": [
                {"term": {"buyer_tax_id": buyer_tax_id}},
                {"range": {"issued_on": {"gte": issued_from.isoformat(),
                                         "lt": issued_until.isoformat()}}}]}},
            "sort": [{"issued_on": "asc"}, {"doc_id": "asc"}], "size": limit}
        if after is not None:
            days = (after.issued_on - date(1970, 1, 1)).days
            body["search_after"] = [days * 86_400_000, after.doc_id]
        with unavailable_on_failure("scan_buyer_invoices"):
            if after is None:
                await self.patient.indices.refresh(index=self.layout.invoices)
            resp = await self.patient.search(index=self.layout.invoices, body=body)
        return [invoice_from_source(hit["_source"]) for hit in resp["hits"]["hits"]]


@asynccontextmanager
async def open_elasticsearch_store(
        url: str, *, index_prefix: str = "invoices", client_factory: ClientFactory | None = None,
        startup_timeout: float = 10.0) -> AsyncIterator[ElasticsearchStore]:
    """Connect both clients, create the templates, indices and aliases that are missing, and
    close both clients after. A cluster that does not answer within `startup_timeout` does
    not stop the store from opening (see the module docstring); it is logged."""
    layout = IndexLayout(index_prefix)
    async with open_aliased_store(
            url, lambda fast, patient: ElasticsearchStore(fast, patient, layout),
            client_factory=client_factory, startup_timeout=startup_timeout) as store:
        yield store
