"""Step 2 over a month (vn-einvoice §8 step 2: the authority's day 1-10 run over the previous
month): re-check what intake checked against what is known now.

Intake already applies the chain rules when the data is there. A month later the registry may
have changed (a registration withdrawn, a status changed retroactively) and relations may have
been written by other processes, so the run re-applies, per invoice issued in the month:
- 2.1 the template and series are registered for the seller on the issue date (registry);
- 2.3/2.4 a replacement's or adjustment's original exists, is of the same seller, points back
  at it, and was not itself an adjustment (or, for an adjustment, a replacement);
- the relations of an invoice and their targets agree in both directions.
Number uniqueness (2.2) is guaranteed by the store's key and needs no re-check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

from indexer import chain
from indexer.keys import VnKey
from indexer.model import Invoice, Lifecycle, RelationKind
from indexer.registry import seller_violations
from indexer.rules import RuleConfig, Severity
from indexer.store.protocol import InvoiceStore
from indexer.store.registry import RegistryStore
from indexer.validate import external_original

PAGE = 1000
_BACK = {
    RelationKind.REPLACES: RelationKind.REPLACED_BY,
    RelationKind.ADJUSTS: RelationKind.ADJUSTED_BY,
    RelationKind.REPLACED_BY: RelationKind.REPLACES,
    RelationKind.ADJUSTED_BY: RelationKind.ADJUSTS,
    RelationKind.REVERSES: RelationKind.REVERSED_BY,
    RelationKind.REVERSED_BY: RelationKind.REVERSES,
}


@dataclass(frozen=True, slots=True)
class Finding:
    doc_id: str
    rule: str
    message: str
    detail: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "id": self.doc_id,
            "rule": self.rule,
            "message": self.message,
            "detail": self.detail,
        }


def month_bounds(month: str) -> tuple[date, date]:
    """`YYYY-MM` -> [first day, first day of the next month)."""
    try:
        start = date.fromisoformat(f"{month}-01")
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    except ValueError:  # not YYYY-MM, or 9999-12 (whose end is past `date`'s range)
        raise ValueError(f"month must be YYYY-MM, not {month!r}") from None
    return start, end


def _finding(invoice: Invoice, code: str, cfg: RuleConfig, detail: str | None) -> Finding:
    violation = cfg.violation(code, None, detail)
    return Finding(invoice.doc_id, code, violation.message, detail)


async def _chain_findings(invoice: Invoice, store: InvoiceStore, cfg: RuleConfig) -> list[Finding]:
    """The chain table (`indexer.chain`) over what the store holds: the invoice's own history
    replayed, and a correction against its original as it was when it arrived (in force)."""
    out = [_finding(invoice, rule, cfg, detail) for rule, detail in chain.replay(invoice)]
    original_key = None if external_original(invoice) else invoice.original
    if original_key is not None:
        original = await store.get_invoice(original_key.doc_id)
        if original is None:
            out.append(_finding(invoice, "chain.original.not_found", cfg, original_key.doc_id))
        else:
            if (
                original.seller_tax_id
                and invoice.seller_tax_id
                and original.seller_tax_id != invoice.seller_tax_id
            ):
                out.append(_finding(invoice, "chain.original.scheme", cfg, original.doc_id))
            as_issued = dataclasses.replace(original, lifecycle=Lifecycle.ISSUED)
            rule = chain.transition(as_issued, chain.EVENT_OF_KIND[invoice.kind]).rule
            for found in (rule, chain.before_original(invoice, original)):
                if found is not None:
                    out.append(_finding(invoice, found, cfg, original.doc_id))
    for relation in invoice.relations:
        back = _BACK.get(relation.kind)
        if back is None or relation.key is None or relation.external:
            continue
        target = await store.get_invoice(relation.key.doc_id)
        if target is None or not any(
            r.kind is back and r.key == invoice.key for r in target.relations
        ):
            out.append(
                _finding(
                    invoice,
                    "recheck.relation.one_sided",
                    cfg,
                    f"{relation.kind.value} {relation.key.doc_id}",
                )
            )
    return out


async def recheck_month(
    store: InvoiceStore, registry: RegistryStore | None, month: str, cfg: RuleConfig
) -> AsyncIterator[tuple[int, list[Finding]]]:
    """Yield (invoices checked so far, findings of the page) page by page, so callers can
    show progress and stream the report."""
    start, end = month_bounds(month)
    use_registry = registry is not None and not await registry.is_empty()
    checked, after = 0, None
    while True:
        page = await store.scan_invoices(start, end, after=after, limit=PAGE)
        if not page:
            return
        sellers = {i.key.seller_tax_id for i in page if isinstance(i.key, VnKey)}
        taxpayers = (
            await registry.get_taxpayers(sellers) if use_registry and registry is not None else {}
        )
        findings: list[Finding] = []
        for invoice in page:
            if use_registry and isinstance(invoice.key, VnKey):
                for v in seller_violations(
                    taxpayers.get(invoice.key.seller_tax_id),
                    template=invoice.key.template,
                    series=invoice.key.series,
                    issued_on=invoice.issued_on,
                    cash_register_range=None,
                    cfg=cfg,
                ):
                    if v.severity is Severity.ERROR:
                        findings.append(Finding(invoice.doc_id, v.code, v.message, v.detail))
            findings.extend(await _chain_findings(invoice, store, cfg))
        checked += len(page)
        after = page[-1].doc_id
        yield checked, findings
