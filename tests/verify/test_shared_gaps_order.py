"""The deployment's gap ledger never moves a gap back from resolved to open, whatever the
order in which late writes land (docs/deployment.md#many-processes, "Never open again").

On a real Elasticsearch (osmem-server in CI, or INVOICE_ES_URL). What a frozen cluster does
to a forward (our client times out, the cluster applies the write when it resumes, the
process sends it again since it never saw the answer) is played here write by write, in the
orders that reopened a resolved gap: the forward landed and resolved, then sent again; a
create read before the resolution landing after it. The chaos test with a SIGSTOPped
osmem-server (tests/chaos/test_heal.py) shows the same through real processes.
"""

from __future__ import annotations

from pathlib import Path

from fallback.gaps import GapOutcome, GapStatus, Resolution
from fallback.shared_gaps import new_doc, open_doc_id, settled
from tests.conftest import EsTarget
from tests.verify.test_shared_state import miss, prefix, shared_ledger  # noqa: F401

MISSING = {"status": "not_found"}


async def test_a_forward_sent_again_after_its_gap_was_resolved_does_not_reopen_it(
    tmp_path: Path, es_target: EsTarget, prefix: str  # noqa: F811 (the fixture)
) -> None:
    async with (
        shared_ledger(tmp_path, "one", es_target, prefix) as one,
        shared_ledger(tmp_path, "two", es_target, prefix) as two,
    ):
        gap = await one.record(miss("key_a"))
        # The forward the cluster applied late: its answer was lost, so no mark was kept.
        await one._forward_one(gap, None)
        [shared] = await two.list(status=GapStatus.OPEN)
        assert (shared.id, shared.count) == (gap.id, 1)
        resolution = Resolution(gap.id, GapOutcome.MISSING, MISSING, gap.lookup_key)
        assert await two.resolve_many([resolution]) == 1

        await one.forward()  # the resend, once the cluster answers again
        assert await two.list(status=GapStatus.OPEN) == []
        assert await two.count(GapStatus.OPEN) == 0
        [listed] = await two.list()
        assert (listed.id, listed.status, listed.count) == (gap.id, GapStatus.RESOLVED, 1)
        await one.forward()  # the next forward learns the resolution of what it sent
        assert (await one.local.get(gap.id)).status is GapStatus.RESOLVED  # type: ignore[union-attr]

        # Another process's miss of the key after that is a new gap, with its own count.
        fresh = await two.record(miss("key_b"))
        await two.forward()
        [opened] = await one.list(status=GapStatus.OPEN)
        assert (opened.id, opened.count) == (fresh.id, 1)
        # And the first forward sent once more (an older write landing again) stays out.
        await one._forward_one(gap, None)
        [still] = await one.list(status=GapStatus.OPEN)
        assert (still.id, still.count) == (fresh.id, 1)
        resolved = await one.get(gap.id)
        assert resolved is not None
        assert resolved.status is GapStatus.RESOLVED


async def test_a_create_read_before_the_resolution_and_landing_after_it_is_refused(
    tmp_path: Path, es_target: EsTarget, prefix: str  # noqa: F811 (the fixture)
) -> None:
    async with shared_ledger(tmp_path, "one", es_target, prefix) as one:
        gap = await one.record(miss("key_a"))
        await one.forward()
        late = settled(new_doc(gap), 3, 0.0)  # what a forward that found no document sends
        resolution = Resolution(gap.id, GapOutcome.MISSING, MISSING, gap.lookup_key)
        assert await one.resolve_many([resolution]) == 1

        store = one._store
        assert not await store.create(store.layout.gaps, open_doc_id(gap.lookup_key), late)
        await store.refresh(store.layout.gaps)
        assert await one.list(status=GapStatus.OPEN) == []
        [listed] = await one.list()
        assert (listed.id, listed.status) == (gap.id, GapStatus.RESOLVED)


async def test_a_gap_resolved_before_its_forward_landed_is_resolved_in_the_deployment(
    tmp_path: Path, es_target: EsTarget, prefix: str  # noqa: F811 (the fixture)
) -> None:
    """The reconciler read the gaps from the local ledger (the cluster had failed a moment
    before) and resolved one the shared ledger did not hold yet: its resolution holds there,
    also for a gap merged into another process's gap of the key."""
    async with (
        shared_ledger(tmp_path, "one", es_target, prefix) as one,
        shared_ledger(tmp_path, "two", es_target, prefix) as two,
    ):
        gap = await one.record(miss("key_a"))  # not forwarded yet
        resolution = Resolution(gap.id, GapOutcome.MISSING, MISSING, gap.lookup_key)
        assert await one.resolve_many([resolution]) == 1
        await one.forward()
        assert await two.list(status=GapStatus.OPEN) == []
        [listed] = await two.list()
        assert (listed.id, listed.status) == (gap.id, GapStatus.RESOLVED)

        first = await two.record(miss("key_b"))  # the key's next gap, sent by two
        await two.forward()
        mine = await one.record(miss("key_a"))  # one's ask of it, not forwarded yet
        again = Resolution(mine.id, GapOutcome.MISSING, MISSING, mine.lookup_key)
        assert await one.resolve_many([again]) == 1
        assert await two.list(status=GapStatus.OPEN) == []
        resolved = await two.get(first.id)
        assert resolved is not None
        assert (resolved.status, resolved.count) == (GapStatus.RESOLVED, 2)
