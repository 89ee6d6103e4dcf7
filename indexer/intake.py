"""Intake: validate a package, apply the chain rules, commit it, answer the acceptance notice.

The notice mirrors the authority's result notice: package id, receipt time, and per item
either `accepted` (with any warnings) or `rejected` with the failed rules. A package id is
committed once; posting it again returns the stored notice and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from indexer import chain, vn
from indexer.keys import InvoiceKey, VnKey
from indexer.model import Invoice, Kind, Lifecycle, Relation, RelationKind
from indexer.package import Package, PackageError
from indexer.registry import Provider, Taxpayer, provider_violations, seller_violations
from indexer.rules import RuleConfig, Severity, Violation
from indexer.store.originals import OriginalStore
from indexer.store.protocol import (
    DuplicateInvoiceError,
    InvoiceStore,
    PackageCommit,
    PackageExistsError,
    StoredPackage,
)
from indexer.store.registry import RegistryStore
from indexer.validate import (
    SCHEME_TZ,
    CancelNotice,
    Explanation,
    external_original,
    is_fatal,
    validate_invoice,
    validate_notice,
)

log = logging.getLogger("indexer.intake")

#: After the registry failed a queued package's checks, later ones skip it this long.
REGISTRY_RETRY_SECONDS = 5.0

#: `ingest_many` gives the event loop a turn after this many packages of a step (a few
#: milliseconds of work): a reconciler batch of thousands inside the service would
#: otherwise hold every lookup of that process for a large part of a second.
YIELD_EVERY = 64

#: Called with every invoice a package created or changed, once it is committed: how the
#: service keeps its read replica written through without this package importing it.
AfterCommit = Callable[[Sequence[Invoice]], Awaitable[None]]


@dataclass(slots=True)
class ItemResult:
    index: int
    item: str  # "invoice" | "notice"
    key: InvoiceKey | None
    violations: list[Violation] = field(default_factory=list)
    notice_id: str | None = None

    @property
    def accepted(self) -> bool:
        return not is_fatal(self.violations)

    def as_dict(self) -> dict[str, Any]:
        errors = [v.as_dict() for v in self.violations if v.severity is Severity.ERROR]
        warnings = [v.as_dict() for v in self.violations if v.severity is Severity.WARNING]
        return {
            "index": self.index,
            "item": self.item,
            "id": self.key.doc_id if self.key else None,
            "key": self.key.as_dict() if self.key else None,
            "notice_id": self.notice_id,
            "result": "accepted" if self.accepted else "rejected",
            "errors": errors,
            "warnings": warnings,
        }


@dataclass(frozen=True, slots=True)
class IntakeResult:
    notice: dict[str, Any]
    replayed: bool
    #: Ids of the invoices this package created or changed, handed in their committed
    #: state to the after-commit hook, which took them without raising; empty for a replay.
    written: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Provisional:
    """A queued notice and the invoices as they would stand once the package is applied."""

    notice: dict[str, Any]
    invoices: list[Invoice]


class InvoiceReads(Protocol):
    """What the rules read: the store, or while it is down, the replica and the journal."""

    async def get_invoices(self, doc_ids: Iterable[str]) -> dict[str, Invoice]: ...

    async def existing_authority_codes(self, codes: Iterable[str]) -> set[str]: ...


class _Ledger:
    """What the store holds for the keys a package touches, with this package's changes on top."""

    def __init__(self, stored: dict[str, Invoice], codes: set[str]) -> None:
        self.current = dict(stored)
        self.codes = set(codes)
        self.new: dict[str, Invoice] = {}
        self.changed: set[str] = set()

    @classmethod
    def sharing(cls, current: dict[str, Invoice], codes: set[str]) -> _Ledger:
        """A ledger over `current` and `codes` themselves (not copies): packages of one
        batch see each other's effects; `new` and `changed` stay this package's own."""
        ledger = cls({}, set())
        ledger.current, ledger.codes = current, codes
        return ledger

    def add(self, invoice: Invoice) -> None:
        self.current[invoice.doc_id] = invoice
        self.new[invoice.doc_id] = invoice
        if invoice.authority_code:
            self.codes.add(invoice.authority_code)

    def update(self, invoice: Invoice) -> None:
        self.current[invoice.doc_id] = invoice
        if invoice.doc_id in self.new:
            self.new[invoice.doc_id] = invoice
        else:
            self.changed.add(invoice.doc_id)


@dataclass(slots=True)
class _Checked:
    """A package after step 1: its items, and the invoices and notices that parsed."""

    package: Package
    items: list[ItemResult] = field(default_factory=list)
    invoices: list[tuple[ItemResult, Invoice | None]] = field(default_factory=list)
    notices: list[tuple[ItemResult, CancelNotice | Explanation | None]] = field(
        default_factory=list
    )

    def wanted(self) -> set[str]:
        """Document ids the chain rules read: its invoices, their originals, the targets."""
        ids = {inv.doc_id for _, inv in self.invoices if inv}
        ids |= {
            inv.original.doc_id
            for _, inv in self.invoices
            if inv and inv.original and not external_original(inv)
        }
        ids |= {n.key.doc_id for _, n in self.notices if isinstance(n, CancelNotice)}
        return ids

    def codes(self) -> set[str]:
        return {inv.authority_code for _, inv in self.invoices if inv and inv.authority_code}

    def forget_own_leftovers(self, current: dict[str, Invoice], codes: set[str]) -> None:
        """Drop from what the store returned the invoices of this package that already
        carry its package id: an interrupted commit of this same package left them (on
        Elasticsearch, whose commit is not atomic), and replaying it takes them as its own,
        not as duplicates of itself. Only this package's own new invoices qualify."""
        package_id = self.package.package_id
        for _, invoice in self.invoices:
            if invoice is None:
                continue
            stored = current.get(invoice.doc_id)
            if stored is not None and stored.package_id == package_id:
                del current[invoice.doc_id]
                if stored.authority_code:
                    codes.discard(stored.authority_code)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One package of `Intake.ingest_many`, with what `ingest` takes beside it."""

    package: Package
    received_at: datetime
    originals: Mapping[int, bytes] = field(default_factory=dict)
    extra: Mapping[int, list[Violation]] = field(default_factory=dict)


def _same_seller(inv: Invoice, original_key: InvoiceKey, original: Invoice | None) -> bool:
    """Same scheme and, where known, the same seller (a CN key carries no seller, so the
    stored original's seller tax id is compared)."""
    if inv.key.scheme != original_key.scheme:
        return False
    if isinstance(inv.key, VnKey) and isinstance(original_key, VnKey):
        return inv.key.seller_tax_id == original_key.seller_tax_id
    if original is not None and inv.seller_tax_id and original.seller_tax_id:
        return inv.seller_tax_id == original.seller_tax_id
    return True


def _link(invoice: Invoice, rel: Relation, lifecycle: Lifecycle | None = None) -> Invoice:
    return dataclasses.replace(
        invoice, relations=(*invoice.relations, rel), lifecycle=lifecycle or invoice.lifecycle
    )


def _chain_invoice(
    inv: Invoice, ledger: _Ledger, cfg: RuleConfig, now: datetime
) -> list[Violation]:
    """Chain rules (vn-einvoice §8 step 2) for one invoice; applies it to `ledger` if it passes."""
    if inv.doc_id in ledger.current:
        return [cfg.violation("chain.duplicate_key", None, inv.doc_id)]
    if inv.authority_code and inv.authority_code in ledger.codes:
        return [
            cfg.violation("chain.duplicate_authority_code", "authority_code", inv.authority_code)
        ]
    if inv.original is None:
        ledger.add(inv)
        return []
    external = external_original(inv)
    original = None if external else ledger.current.get(inv.original.doc_id)
    problem: str | None = None
    step: chain.Transition | None = None
    field, detail = "original", inv.original.doc_id
    if not _same_seller(inv, inv.original, original):
        problem = "chain.original.scheme"
    elif external:  # not in this index: linked one way when it was validated
        ledger.add(inv)
        return []
    elif original is None:
        problem = "chain.original.not_found"
    elif inv.kind is Kind.RED_LETTER:
        event, exceeds = chain.reversal(original, inv.amounts.total)
        step = chain.transition(original, event)
        problem = step.rule or chain.before_original(inv, original)
        if problem is None and exceeds:
            problem = "chain.red_letter.exceeds_blue"
            field, detail = "total_amount", _left(original)
    else:
        step = chain.transition(original, chain.EVENT_OF_KIND[inv.kind])
        problem = step.rule or chain.before_original(inv, original)
    if problem:
        return [cfg.violation(problem, field, detail)]
    assert original is not None
    assert step is not None
    assert step.result is not None
    if inv.kind is Kind.RED_LETTER:  # its `reverses` link was made when it was validated
        [reverses] = inv.relations
        ledger.add(inv)
        back = dataclasses.replace(reverses, kind=RelationKind.REVERSED_BY, key=inv.key, at=now)
        ledger.update(_link(original, back, step.result))
        return []
    replacing = inv.kind is Kind.REPLACEMENT
    forward = RelationKind.REPLACES if replacing else RelationKind.ADJUSTS
    backward = RelationKind.REPLACED_BY if replacing else RelationKind.ADJUSTED_BY
    ledger.add(_link(inv, Relation(forward, key=original.key, at=now)))
    ledger.update(_link(original, Relation(backward, key=inv.key, at=now), step.result))
    return []


def _left(blue: Invoice) -> str:
    """What is left of a blue invoice to reverse, as a refusal's detail shows it."""
    whole = abs(blue.amounts.total)
    return f"{whole - chain.reversed_amount(blue)} of {whole} left to reverse"


def _chain_notice(
    notice: CancelNotice, ledger: _Ledger, cfg: RuleConfig, now: datetime
) -> list[Violation]:
    target = ledger.current.get(notice.key.doc_id)
    if target is None:
        return [cfg.violation("notice.target.not_found", "key", notice.key.doc_id)]
    step = chain.transition(target, chain.Event.CANCEL)
    if step.rule is not None:
        detail = f"{target.kind.value}, {target.lifecycle.value}"
        return [cfg.violation(step.rule, "key", detail)]
    rel = Relation(
        RelationKind.CANCELLED_BY, notice_id=notice.notice_id, reason=notice.reason, at=now
    )
    ledger.update(_link(target, rel, step.result))
    return []


class RegistryReads(Protocol):
    """What the step-1 rules read of the registry (`RegistryStore` has it)."""

    async def is_empty(self) -> bool: ...

    async def get_taxpayers(self, tax_ids: Iterable[str]) -> dict[str, Taxpayer]: ...

    async def get_provider(self, provider_id: str) -> Provider | None: ...


class _BatchRegistry:
    """The registry as one batch of `ingest_many` sees it: each provider and taxpayer read
    once for the whole batch (a drained batch has a few senders and sellers, read thousands
    of times over otherwise)."""

    def __init__(self, registry: RegistryStore) -> None:
        self.registry = registry
        self._providers: dict[str, Provider | None] = {}
        self._taxpayers: dict[str, Taxpayer | None] = {}

    async def is_empty(self) -> bool:
        return False  # asked by ingest_many before it builds one

    async def get_provider(self, provider_id: str) -> Provider | None:
        if provider_id not in self._providers:
            self._providers[provider_id] = await self.registry.get_provider(provider_id)
        return self._providers[provider_id]

    async def get_taxpayers(self, tax_ids: Iterable[str]) -> dict[str, Taxpayer]:
        wanted = set(tax_ids)
        missing = wanted - self._taxpayers.keys()
        if missing:
            found = await self.registry.get_taxpayers(missing)
            self._taxpayers.update({t: found.get(t) for t in missing})
        return {t: p for t in wanted if (p := self._taxpayers[t]) is not None}


async def _registry_checks(
    registry: RegistryReads, checked: _Checked, now: datetime, cfg: RuleConfig
) -> None:
    """Step 1 against the registry: the sender's contract on the receipt date, for every
    item it sends (a cancel notice as much as an invoice: vn-einvoice §8 step 1.5), and each
    VN seller's status, e-invoice stop, cash-register code range and registration."""
    if await registry.is_empty():
        return
    received_on = now.astimezone(SCHEME_TZ["vn"]).date()
    sender = await registry.get_provider(checked.package.sender)
    provider = provider_violations(sender, received_on, cfg)
    for item, notice in checked.notices:
        if notice is not None:
            item.violations.extend(provider)
    invoices = checked.invoices
    sellers = {inv.key.seller_tax_id for _, inv in invoices if inv and isinstance(inv.key, VnKey)}
    taxpayers = await registry.get_taxpayers(sellers)
    for item, inv in invoices:
        if inv is None:
            continue
        item.violations.extend(provider)
        if not isinstance(inv.key, VnKey):
            continue
        register = (
            vn.CASH_REGISTER_CODE_RE.fullmatch(inv.authority_code) if inv.authority_code else None
        )
        item.violations.extend(
            seller_violations(
                taxpayers.get(inv.key.seller_tax_id),
                template=inv.key.template,
                series=inv.key.series,
                issued_on=inv.issued_at.astimezone(SCHEME_TZ["vn"]).date(),
                cash_register_range=register["range"] if register else None,
                cfg=cfg,
            )
        )


class Intake:
    """Applies packages to a store, one at a time per process (chain rules read then write).
    With a registry, step-1 rules check senders and sellers against it."""

    def __init__(
        self,
        store: InvoiceStore,
        rules: RuleConfig,
        registry: RegistryStore | None = None,
        originals: OriginalStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        after_commit: AfterCommit | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.registry = registry
        self.originals = originals
        self.after_commit = after_commit
        self.clock = clock
        self._lock = asyncio.Lock()
        self._registry_retry_at = 0.0

    async def _replay(self, package: Package) -> IntakeResult | None:
        stored = await self.store.get_package(package.package_id)
        if stored is None:
            return None
        result = _replayed(package, stored)
        if isinstance(result, PackageError):
            raise result
        return result

    async def ingest(
        self,
        package: Package,
        originals: Mapping[int, bytes] | None = None,
        extra_violations: Mapping[int, list[Violation]] | None = None,
        *,
        received_at: datetime | None = None,
    ) -> IntakeResult:
        """`originals` maps an invoice's index in the package to its original document.
        `extra_violations` maps an item's index to violations found outside this class
        (the seller signature, computed off the event loop by the caller); they join the
        item's own before the chain rules, so a fatal one rejects the item and stores nothing
        of it. `received_at`: when the package was received, if before now (a package
        drained from the intake journal keeps its receipt time)."""
        async with self._lock:
            replay = await self._replay(package)
            if replay:
                return replay
            result = await self._apply(
                package, originals or {}, extra_violations or {}, received_at or self.clock()
            )
        return result

    async def provisional(
        self,
        package: Package,
        reads: InvoiceReads,
        extra_violations: Mapping[int, list[Violation]] | None = None,
        *,
        received_at: datetime,
        registry_timeout: float = 1.0,
    ) -> Provisional:
        """The notice for a package taken while the primary cannot be written (it goes to
        the intake journal; the reconciler applies it later with `ingest`). Step 1 rules
        decide: an item that fails them is rejected for good. Chain rules are evaluated
        against `reads` (the replica and the journal: the best knowledge without the
        primary) and reported as warnings only, since the primary decides them when the
        package is applied. Accepted items are `queued`. The registry is asked within
        `registry_timeout` (all its reads together); if it cannot answer, its checks are
        deferred too, and for `REGISTRY_RETRY_SECONDS` after a failure it is not asked again
        (each queued package would otherwise wait out the timeout in turn)."""
        extra = extra_violations or {}
        deferred: list[str] = []
        checked: _Checked | None = None
        if self.registry is not None and time.monotonic() >= self._registry_retry_at:
            try:
                async with asyncio.timeout(registry_timeout):
                    checked = await self._check(package, extra, received_at, self.registry)
            except Exception as exc:  # any failure: the drain applies these rules later
                log.warning(
                    "registry unavailable; its checks are deferred", extra={"error": repr(exc)}
                )
                self._registry_retry_at = time.monotonic() + REGISTRY_RETRY_SECONDS
        if checked is None:
            if self.registry is not None:
                deferred = ["registry"]
            checked = await self._check(package, extra, received_at, None)
        ledger = _Ledger(
            await reads.get_invoices(checked.wanted()),
            await reads.existing_authority_codes(checked.codes()),
        )
        self._chain(checked, ledger, received_at, lenient=True)
        notice = _notice_body(package, received_at, checked.items, queued=True)
        if deferred:
            notice["deferred_checks"] = deferred
        docs = [*ledger.new.values(), *(ledger.current[d] for d in sorted(ledger.changed))]
        return Provisional(notice, docs)

    async def _evaluate(
        self,
        package: Package,
        extra: Mapping[int, list[Violation]],
        reads: InvoiceReads,
        now: datetime,
        registry: RegistryStore | None,
        *,
        lenient: bool,
    ) -> tuple[list[ItemResult], _Ledger]:
        """Every rule, in order, for every item; the ledger holds the effects of the items
        that passed. `lenient`: chain-rule findings become warnings (see `provisional`)."""
        checked = await self._check(package, extra, now, registry)
        current = await reads.get_invoices(checked.wanted())
        codes = await reads.existing_authority_codes(checked.codes())
        checked.forget_own_leftovers(current, codes)
        if reads is self.store:
            await self._forget_own_codes([checked], codes)
        ledger = _Ledger(current, codes)
        self._chain(checked, ledger, now, lenient=lenient)
        return checked.items, ledger

    async def _check(
        self,
        package: Package,
        extra: Mapping[int, list[Violation]],
        now: datetime,
        registry: RegistryReads | None,
    ) -> _Checked:
        """Step 1: each item on its own, then against the registry."""
        cfg = self.rules
        checked = _Checked(package)
        for index, raw in enumerate(package.invoices):
            invoice, problems = validate_invoice(raw, cfg, package_id=package.package_id, now=now)
            item = ItemResult(index, "invoice", invoice.key if invoice else None, problems)
            checked.items.append(item)
            checked.invoices.append((item, invoice))
        for offset, raw in enumerate(package.notices):
            notice, problems = validate_notice(raw, cfg)
            item = ItemResult(
                len(package.invoices) + offset,
                "notice",
                notice.key if isinstance(notice, CancelNotice) else None,
                problems,
                notice.notice_id if notice else None,
            )
            checked.items.append(item)
            checked.notices.append((item, notice))
        for item in checked.items:
            for found in package.findings.get(item.index, ()):
                violation = cfg.violation(found.rule, found.field, found.detail)
                if violation.severity is not Severity.OFF:
                    item.violations.append(violation)
            item.violations.extend(extra.get(item.index, ()))
        if registry is not None:
            await _registry_checks(registry, checked, now, cfg)
        return checked

    def _chain(self, checked: _Checked, ledger: _Ledger, now: datetime, *, lenient: bool) -> None:
        """Step 2: the chain rules against `ledger`, which takes the effects."""
        cfg = self.rules
        for item, invoice in checked.invoices:
            if invoice is not None and item.accepted:
                found = _chain_invoice(invoice, ledger, cfg, now)
                if lenient and found:
                    if found[0].code.startswith("chain.original."):
                        ledger.add(invoice)  # its original is unknown here, not absent
                    found = [_as_warning(v) for v in found]
                item.violations.extend(found)
        for item, notice in checked.notices:
            if isinstance(notice, CancelNotice) and item.accepted:
                found = _chain_notice(notice, ledger, cfg, now)
                item.violations.extend([_as_warning(v) for v in found] if lenient else found)

    async def ingest_many(self, batch: Sequence[BatchItem]) -> list[IntakeResult | PackageError]:
        """`ingest` for several packages in order, sharing one read of the store and one
        commit (`InvoiceStore.commit_packages`): how the reconciler drains the intake journal
        at thousands of packages a second instead of one fsync'd commit each. Each package
        is judged as if ingested alone after the ones before it. Per package: its result, or
        the `PackageError` that refused it whole (an id reused for other content). If the
        shared commit collides with a concurrent writer, the batch is applied one by one."""
        async with self._lock:
            stored = await self.store.get_packages(b.package.package_id for b in batch)
            registry: RegistryReads | None = None  # asked once per batch
            if self.registry is not None and not await self.registry.is_empty():
                registry = _BatchRegistry(self.registry)
            results: list[IntakeResult | PackageError | None] = [None] * len(batch)
            todo: list[tuple[int, _Checked]] = []
            for n, entry in enumerate(batch):
                package = entry.package
                previous = stored.get(package.package_id)
                if previous is not None:
                    results[n] = _replayed(package, previous)
                    continue
                todo.append(
                    (n, await self._check(package, entry.extra, entry.received_at, registry))
                )
                if len(todo) % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            if todo:
                try:
                    for n, result in await self._apply_checked(batch, todo):
                        results[n] = result
                except (PackageExistsError, DuplicateInvoiceError):
                    for n, _ in todo:
                        entry = batch[n]
                        results[n] = await self._apply_or_refusal(entry)
        done = [r for r in results if r is not None]
        assert len(done) == len(batch)
        return done

    async def _apply_or_refusal(self, entry: BatchItem) -> IntakeResult | PackageError:
        replay = await self._replay_or_refusal(entry.package)
        if replay is not None:
            return replay
        try:
            return await self._apply(entry.package, entry.originals, entry.extra, entry.received_at)
        except PackageError as exc:
            return exc

    async def _replay_or_refusal(self, package: Package) -> IntakeResult | PackageError | None:
        try:
            return await self._replay(package)
        except PackageError as exc:
            return exc

    async def _apply_checked(
        self,
        batch: Sequence[BatchItem],
        todo: list[tuple[int, _Checked]],
    ) -> list[tuple[int, IntakeResult]]:
        wanted: set[str] = set()
        codes: set[str] = set()
        for _, checked in todo:
            wanted |= checked.wanted()
            codes |= checked.codes()
        current = await self.store.get_invoices(wanted)
        taken = await self.store.existing_authority_codes(codes)
        for _, checked in todo:
            checked.forget_own_leftovers(current, taken)
        await self._forget_own_codes([checked for _, checked in todo], taken)
        commits: list[PackageCommit] = []
        kept: list[tuple[str, str, bytes]] = []
        out: list[tuple[int, IntakeResult]] = []
        touched: set[str] = set()
        for done, (n, checked) in enumerate(todo, 1):
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            entry = batch[n]
            ledger = _Ledger.sharing(current, taken)
            self._chain(checked, ledger, entry.received_at, lenient=False)
            notice = _notice_body(entry.package, entry.received_at, checked.items, queued=False)
            record = StoredPackage(
                entry.package.package_id,
                entry.package.sender,
                entry.package.digest,
                entry.received_at,
                notice,
            )
            commits.append(
                PackageCommit(
                    record,
                    list(ledger.new.values()),
                    [ledger.current[d] for d in sorted(ledger.changed)],
                )
            )
            written = frozenset(ledger.new).union(ledger.changed)
            touched |= written
            kept.extend(_originals_kept(entry.package, checked.items, entry.originals))
            out.append((n, IntakeResult(notice, replayed=False, written=written)))
        if kept and self.originals is not None:
            await self.originals.put_many(kept)
        await self.store.commit_packages(commits)
        if not await self._after_commit([current[d] for d in sorted(touched)], "batch"):
            out = [(n, dataclasses.replace(r, written=frozenset())) for n, r in out]
        return out

    async def _forget_own_codes(self, packages: list[_Checked], taken: set[str]) -> None:
        """Authority codes an interrupted commit of the same package left without their
        invoices (on Elasticsearch the codes are written first) are the package's own, not
        taken. Asked only when one of the packages' codes is taken: rare."""
        own = {
            code: checked.package.package_id
            for checked in packages
            for code in checked.codes()
            if code in taken
        }
        if not own:
            return
        owners = await self.store.authority_code_packages(own)
        for code, package_id in owners.items():
            if own.get(code) == package_id:
                taken.discard(code)

    async def _after_commit(self, invoices: list[Invoice], package_id: str) -> bool:
        """False when the hook raised (the invoices may not have reached it)."""
        if self.after_commit is None or not invoices:
            return True
        try:
            await self.after_commit(invoices)
        except Exception:  # the package is committed: acknowledge it whatever happens here
            log.exception("after-commit hook failed", extra={"package_id": package_id})
            return False
        return True

    async def _apply(
        self,
        package: Package,
        originals: Mapping[int, bytes],
        extra: Mapping[int, list[Violation]],
        now: datetime,
    ) -> IntakeResult:
        items, ledger = await self._evaluate(
            package, extra, self.store, now, self.registry, lenient=False
        )
        notice_body = _notice_body(package, now, items, queued=False)
        record = StoredPackage(package.package_id, package.sender, package.digest, now, notice_body)
        kept = _originals_kept(package, items, originals)
        if kept and self.originals is not None:
            await self.originals.put_many(kept)
        new = list(ledger.new.values())
        changed = [ledger.current[d] for d in sorted(ledger.changed)]
        try:
            await self.store.commit_package(record, new, changed)
        except PackageExistsError:
            replay = await self._replay(package)
            assert replay is not None
            return replay
        except DuplicateInvoiceError as exc:
            raise PackageError(
                "package.concurrent_conflict",
                "another intake stored one of these invoices at the same time; "
                "post the package again",
                status=409,
                details={"reason": str(exc)},
            ) from exc
        handed = await self._after_commit([*new, *changed], package.package_id)
        written = frozenset(ledger.new).union(ledger.changed) if handed else frozenset()
        return IntakeResult(notice_body, replayed=False, written=written)


def _replayed(package: Package, stored: StoredPackage) -> IntakeResult | PackageError:
    """A package id already committed: the same content is a replay, other content a 409."""
    if stored.digest != package.digest:
        return PackageError(
            "package.id_conflict",
            "this package id was already used for a package with different content",
            status=409,
            details={
                "package_id": package.package_id,
                "received_at": stored.received_at.isoformat(),
            },
        )
    return IntakeResult(stored.notice, replayed=True)


def _originals_kept(
    package: Package, items: list[ItemResult], originals: Mapping[int, bytes]
) -> list[tuple[str, str, bytes]]:
    if not originals:  # JSON packages
        return []
    return [
        (item.key.doc_id, package.package_id, originals[item.index])
        for item in items
        if item.item == "invoice"
        and item.key is not None
        and item.accepted
        and item.index in originals
    ]


def _as_warning(violation: Violation) -> Violation:
    return dataclasses.replace(violation, severity=Severity.WARNING)


def _notice_body(
    package: Package, now: datetime, items: list[ItemResult], *, queued: bool
) -> dict[str, Any]:
    """The acceptance notice. A queued one (`result: queued`, items `queued` or `rejected`)
    is replaced by the final one when the reconciler applies the package."""
    accepted = sum(item.accepted for item in items)
    body = [item.as_dict() for item in items]
    if queued:
        for entry in body:
            if entry["result"] == "accepted":
                entry["result"] = "queued"
        result = "queued" if accepted or not items else "rejected"
    else:
        result = (
            "accepted"
            if accepted == len(items)
            else "rejected"
            if accepted == 0
            else "partially_accepted"
        )
    notice: dict[str, Any] = {
        "package_id": package.package_id,
        "sender": package.sender,
        "received_at": now.isoformat().replace("+00:00", "Z"),
        "declared_count": package.declared_count,
        "result": result,
        "accepted": 0 if queued else accepted,
        "rejected": len(items) - accepted,
        "items": body,
    }
    if queued:
        notice["queued"] = accepted
    return notice
