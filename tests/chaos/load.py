"""Load for the chaos tests: the service's HTTP API, intake and lookup workers, and a record
of every request they made and what came back, so the tests can count.

Keys are Vietnamese invoices of one series (tests.factories), told apart by number: numbers
the test ingested are *held* (the primary and the replica, or the journal, have them);
numbers nobody ever posted are *unknown* (never checked: they must never be answered
`not_found` unless the primary itself answered).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from indexer.keys import VnKey
from tests.chaos.polling import poll
from tests.factories import SELLER, package, vn_invoice, vn_key

API = "/api/v1"
ACKED = (200, 202)
#: A request never waits longer than this (a frozen dependency must not hang a test).
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


def doc_id(number: int) -> str:
    return VnKey(SELLER, "1", "C22TAA", number).doc_id


def make_package(first: int, count: int, tag: str) -> dict[str, Any]:
    """`count` invoices numbered from `first`; the package id names them."""
    return package([vn_invoice(n) for n in range(first, first + count)],
                   package_id=f"PKG-CHAOS-{tag}-{first:07d}")


def numbers_of(body: dict[str, Any]) -> list[int]:
    return [int(inv["number"]) for inv in body["invoices"]]


class Api:
    """The service's endpoints the chaos tests use (insecure local mode: every caller is
    admin, so no key and no rate limit gets in the way of the counts)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """Status, JSON body and whether the answer says `Idempotent-Replayed: true`."""
        async with self.http.post(self.base + f"{API}/packages", json=body,
                                  timeout=REQUEST_TIMEOUT) as resp:
            return (resp.status, await resp.json(),
                    resp.headers.get("Idempotent-Replayed") == "true")

    async def lookup(self, number: int) -> tuple[int, dict[str, Any]]:
        params = {k: str(v) for k, v in vn_key(number).items()}
        async with self.http.get(self.base + f"{API}/invoices/lookup", params=params,
                                 timeout=REQUEST_TIMEOUT) as resp:
            return resp.status, await resp.json()

    async def get_json(self, path: str, **params: str) -> dict[str, Any]:
        async with self.http.get(self.base + path, params=params,
                                 timeout=REQUEST_TIMEOUT) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, (path, resp.status, body)
            return body

    async def gap(self, gap_id: str) -> dict[str, Any]:
        return await self.get_json(f"{API}/gaps/{gap_id}")

    async def open_gaps(self) -> list[dict[str, Any]]:
        gaps: list[dict[str, Any]] = (await self.get_json(
            f"{API}/gaps", status="open", limit="1000"))["gaps"]
        return gaps

    async def metrics(self) -> dict[str, float]:
        """Prometheus lines as `name{labels}` -> value."""
        async with self.http.get(self.base + "/metrics", timeout=REQUEST_TIMEOUT) as resp:
            text = await resp.text()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    async def primary_closed(self) -> bool:
        """The primary's breaker is closed (lookups read it again)."""
        metrics = await self.metrics()
        return metrics.get('invoice_breaker_state{state="closed",system="primary"}') == 1

    async def declare_maintenance(self, start: datetime, end: datetime) -> dict[str, Any]:
        body = {"system": "primary", "start": start.isoformat(), "end": end.isoformat(),
                "reason": "chaos test maintenance"}
        async with self.http.post(self.base + f"{API}/outages", json=body,
                                  timeout=REQUEST_TIMEOUT) as resp:
            window: dict[str, Any] = await resp.json()
            assert resp.status == 201, window
            return window

    async def reconcile_status(self) -> dict[str, Any]:
        return await self.get_json(f"{API}/reconcile/status")

    async def reconcile(self, within: float = 45.0) -> dict[str, Any]:
        """Run the reconciler (`POST /reconcile`) until a finished run leaves the journal
        drained and no gap open (a run the primary stopped, or gaps recorded meanwhile,
        get another run); the last status."""
        last: dict[str, Any] = {}

        async def start() -> None:
            async with self.http.post(self.base + f"{API}/reconcile",
                                      timeout=REQUEST_TIMEOUT) as resp:
                assert resp.status == 202, await resp.text()

        async def clean() -> bool:
            nonlocal last
            last = await self.reconcile_status()
            if last["running"]:
                return False
            if last["journal"]["pending"] == 0 and last["open_gaps"] == 0:
                return True
            await start()
            return False

        await start()
        await poll(clean, within, "the reconciler to drain the journal and close every gap",
                   interval=0.1, detail=lambda: f"last status: {last}")
        return last


@dataclass(slots=True)
class Posted:
    """One package post and its answer (`status` None: no answer, `error` says why)."""

    body: dict[str, Any]
    phase: str
    status: int | None = None
    notice: dict[str, Any] | None = None
    error: str | None = None

    @property
    def package_id(self) -> str:
        return str(self.body["package_id"])

    @property
    def numbers(self) -> list[int]:
        return numbers_of(self.body)

    @property
    def acked(self) -> bool:
        return self.status in ACKED


@dataclass(frozen=True, slots=True)
class Seen:
    """One lookup and its answer."""

    phase: str
    number: int
    held: bool
    status: int | None
    body: dict[str, Any] | None
    error: str | None = None

    def problem(self) -> str | None:
        """What is wrong with this answer, if anything (docs/outages.md#the-four-states)."""
        what = f"[{self.phase}] {'held' if self.held else 'unknown'} #{self.number}"
        if self.status != 200 or self.body is None:
            return f"{what}: HTTP {self.status} {self.error or self.body}"
        status, body = self.body["status"], self.body
        if self.held:
            return None if status == "valid" else f"{what}: {status} ({body})"
        if status == "not_found":
            if body["source"] != "primary" or body["degraded"]:
                return f"{what}: not_found without the primary ({body})"
            return None
        if status == "unconfirmed":
            return None if body.get("gap_id") else f"{what}: unconfirmed without a gap ({body})"
        return f"{what}: {status} for an invoice nobody posted ({body})"


@dataclass(slots=True)
class Load:
    """Intake and lookup workers against one service; the test moves `phase` on."""

    api: Api
    held: list[int]
    unknown: Sequence[int]
    first: int
    per_package: int = 4
    tag: str = "L"
    pause: float = 0.01
    stop_on_error: bool = False
    phase: str = "before"
    posted: list[Posted] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(20220515))
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    # -- counting -----------------------------------------------------------------------

    def acked(self) -> list[Posted]:
        return [p for p in self.posted if p.acked]

    def unanswered(self) -> list[Posted]:
        return [p for p in self.posted if p.status is None]

    def answers(self, phase: str | None = None, *, held: bool | None = None,
                source: str | None = None, status: str | None = None) -> list[Seen]:
        return [s for s in self.seen
                if (phase is None or s.phase == phase) and (held is None or s.held == held)
                and (source is None or (s.body or {}).get("source") == source)
                and (status is None or (s.body or {}).get("status") == status)]

    def problems(self) -> list[str]:
        return [p for p in (s.problem() for s in self.seen) if p is not None]

    def gap_ids(self) -> set[str]:
        return {str(s.body["gap_id"]) for s in self.seen if s.body and s.body.get("gap_id")}

    def summary(self) -> str:
        intake = Counter((p.phase, p.status if p.status is not None else "no answer")
                         for p in self.posted)
        answers = Counter(
            (s.phase, "held" if s.held else "unknown",
             (s.body or {}).get("source", "-"), (s.body or {}).get("status", s.status))
            for s in self.seen)
        lines = ["intake (phase, HTTP status): count"]
        lines += [f"  {k}: {n}" for k, n in sorted(intake.items(), key=str)]
        lines.append("lookups (phase, key, source, status): count")
        lines += [f"  {k}: {n}" for k, n in sorted(answers.items(), key=str)]
        lines.append(f"gaps seen: {len(self.gap_ids())}")
        return "\n".join(lines)

    async def until(self, what: str, check: Callable[[], bool | Awaitable[bool]],
                    within: float = 30.0) -> None:
        await poll(check, within, what, detail=self.summary)

    # -- workers ------------------------------------------------------------------------

    async def _intake(self) -> None:
        while not self._stop.is_set():
            first, self.first = self.first, self.first + self.per_package
            posted = Posted(make_package(first, self.per_package, self.tag), self.phase)
            self.posted.append(posted)
            try:
                posted.status, posted.notice, _ = await self.api.post(posted.body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                posted.error = repr(exc)
                if self.stop_on_error:
                    return
            if posted.acked:
                self.held.extend(posted.numbers)
            await asyncio.sleep(self.pause)

    async def _lookups(self) -> None:
        while not self._stop.is_set():
            held = bool(self.held) and self._rng.random() < 0.7
            number = self._rng.choice(self.held if held else self.unknown)
            phase = self.phase
            try:
                status, body = await self.api.lookup(number)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.seen.append(Seen(phase, number, held, None, None, repr(exc)))
                if self.stop_on_error:
                    return
            else:
                self.seen.append(Seen(phase, number, held, status, body))
            await asyncio.sleep(self.pause)

    @asynccontextmanager
    async def running(self, intake_workers: int = 2,
                      lookup_workers: int = 3) -> AsyncIterator[Load]:
        """The workers run inside the block and finish their current request after it."""
        self._stop.clear()
        tasks = [asyncio.create_task(self._intake()) for _ in range(intake_workers)]
        tasks += [asyncio.create_task(self._lookups()) for _ in range(lookup_workers)]
        try:
            yield self
        finally:
            self._stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def seed(api: Api, numbers: Iterable[int], *, per_package: int = 5,
               tag: str = "SEED") -> list[int]:
    """Post packages of these numbers while everything is healthy; all must be accepted."""
    wanted = sorted(numbers)
    for start in range(0, len(wanted), per_package):
        chunk = wanted[start:start + per_package]
        body = package([vn_invoice(n) for n in chunk], package_id=f"PKG-CHAOS-{tag}-{chunk[0]}")
        status, notice, _ = await api.post(body)
        assert (status, notice["result"]) == (200, "accepted"), notice
    return wanted


async def lookup_many(api: Api, numbers: Iterable[int], *, held: bool, phase: str,
                      concurrency: int = 8) -> list[Seen]:
    """Look every number up (a few at a time); the answers, in the order of `numbers`."""
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> Seen:
        async with gate:
            status, body = await api.lookup(number)
        return Seen(phase, number, held, status, body)

    return list(await asyncio.gather(*(one(n) for n in numbers)))
