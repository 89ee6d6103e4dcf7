"""Callbacks to requesters of resolved gaps, delivered at least once, with retries.

A requester that left a `callback_url` on an unconfirmed lookup gets one POST when its gap
is resolved:

    {"event": "gap.resolved", "gap_id": "gap_...", "lookup_key": "vn:...", "key": {...},
     "resolution": "found" | "missing", "status": "valid" | ... | "not_found",
     "resolved_at": "2026-11-23T02:40:00Z"}

plus, as a lookup would answer when the callback is sent (`facts`, wired with
`fallback.lookup.gap_facts.GapFacts.answer`): `reason` when the status is `outside_window`
(the invoice predates the verification window), and `warnings` (the seller closed,
suspended or not at its registered address) on a `valid` Vietnamese invoice.

The body names the final status, not the invoice: the requester asks again (a normal
lookup, under its own key's tenancy and limits) for the full answer. Any 2xx is delivery.
Anything else (a refused connection, a timeout, a 5xx, a redirect: redirects are not
followed) is retried with exponential backoff (`backoff_base` x 2^attempts, at most
`backoff_cap`) on later reconciler runs, up to `max_attempts`; the last error stays with the
requester (`GET /gaps/{id}` shows it to admins). A crash between the POST and recording it
sends it again: receivers should treat `gap_id` as the idempotency key.

Signed: with a `secret` (`INVOICE_CALLBACK_SECRET`), every POST carries
`X-Invoice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` (`sign`), so a
receiver can tell our callbacks from forged ones and refuse replays of old ones (compare `t`
with its clock). Without a secret the header is absent.

Not a way into our own network: unless `allow_private` (`INVOICE_CALLBACK_ALLOW_PRIVATE`),
a callback to an address that is not globally routable (loopback, private, link-local,
carrier-grade NAT, reserved, multicast) is refused, whether the URL names the address or a
host name resolves to it. The check is made on the addresses the connection then uses
(`PublicOnlyResolver`), so a name that resolves differently the second time (DNS rebinding)
cannot slip past it. A refused callback fails like any other, with the reason recorded.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from fallback.breaker import Clock, utc_now
from fallback.gaps import DueCallback, Gap, ReconcileLedger

log = logging.getLogger("fallback.callbacks")

SIGNATURE_HEADER = "X-Invoice-Signature"


class CallbackBlocked(OSError):
    """The callback's address is not globally routable and private callbacks are off."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)  # aiohttp quotes `strerror` when it wraps it


#: IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64, IPv4-compatible):
#: such an address is as public as the IPv4 address it carries.
_EMBEDDING_V4 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::/96"))


def is_public(address: str) -> bool:
    """A globally routable unicast address (`ipaddress`'s `is_global`, minus multicast). An
    IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64, IPv4-compatible) is judged
    by that IPv4 address; IPv6 site-local (deprecated, private in practice) is not public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour or next(
            (ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF) for net in _EMBEDDING_V4
             if ip in net), None)
        if carried is not None:
            return is_public(str(carried))
        if ip.is_site_local:
            return False
    return ip.is_global and not ip.is_multicast


def callback_host(url: str) -> str:
    """The host a callback to `url` connects to, as aiohttp will see it (yarl's IDNA
    normalisation: fullwidth digits and ideographic full stops become ASCII), without a
    trailing dot. Raises ValueError for a URL yarl refuses."""
    return (URL(url).raw_host or "").rstrip(".")


def literal_host(url: str) -> str | None:
    """The address a callback to `url` goes to when its host is an IP address in any
    spelling a resolver would accept (`127.1`, `2130706433`, `0x7f.1`, `017700000001`, as
    well as the standard forms), normalised; None for a host name (the resolver is asked,
    `PublicOnlyResolver`). Connections to standard IP literals skip the resolver."""
    host = callback_host(url)
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))  # the legacy IPv4 spellings
    except OSError:
        return None


class PublicOnlyResolver(AbstractResolver):
    """Resolves as aiohttp would, then keeps only globally routable addresses."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public(r["host"])]
        if not public:
            raise CallbackBlocked(f"{host} resolves only to addresses that are not globally "
                                  "routable (INVOICE_CALLBACK_ALLOW_PRIVATE is off)")
        return public

    async def close(self) -> None:
        await self._inner.close()


def sign(secret: str, body: bytes, at: int) -> str:
    """The `X-Invoice-Signature` value for `body` sent at unix time `at`."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256)
    return f"t={at},v1={mac.hexdigest()}"


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    timeout: float = 5.0
    max_attempts: int = 8
    backoff_base: float = 30.0
    backoff_cap: float = 3600.0
    concurrency: int = 8
    secret: str | None = None  # signs every POST (`sign`) when set
    allow_private: bool = False  # callbacks to loopback or private addresses


@asynccontextmanager
async def callback_session(policy: CallbackPolicy) -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP session callbacks are sent through: the policy's timeout, and unless
    `allow_private` the resolver that keeps only public addresses (`PublicOnlyResolver`).
    Shared by the gap callbacks here and the watches' (verify/watches/delivery.py)."""
    timeout = aiohttp.ClientTimeout(total=policy.timeout)
    resolver = None if policy.allow_private else PublicOnlyResolver()
    connector = aiohttp.TCPConnector(resolver=resolver)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            yield session
    finally:
        if resolver is not None:  # a resolver handed to the connector is ours to close
            await resolver.close()


async def post_callback(session: aiohttp.ClientSession, policy: CallbackPolicy, url: str,
                        body: bytes) -> str | None:
    """One signed POST of `body` to `url` (`sign`, with the policy's secret); None when it
    was delivered (any 2xx), else why not (the error recorded for the retry)."""
    headers = {"Content-Type": "application/json"}
    if policy.secret:
        headers[SIGNATURE_HEADER] = sign(policy.secret, body, int(time.time()))
    try:
        literal = literal_host(url)
        if literal is not None and not policy.allow_private and not is_public(literal):
            raise CallbackBlocked(f"{literal} is an address that is not globally routable "
                                  "(INVOICE_CALLBACK_ALLOW_PRIVATE is off)")
        async with session.post(url, data=body, headers=headers,
                                allow_redirects=False) as response:
            if not 200 <= response.status < 300:
                return f"HTTP {response.status}"
    except CallbackBlocked as exc:
        return f"blocked: {exc.strerror}"
    except aiohttp.ClientConnectorError as exc:
        return (f"blocked: {exc.os_error.strerror}" if isinstance(exc.os_error, CallbackBlocked)
                else f"{type(exc).__name__}: {exc}")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass(slots=True)
class Delivery:
    sent: int = 0
    failed: int = 0


#: A resolved gap's answer with what a lookup adds to it now (the window's reason, the
#: seller's warnings): `fallback.lookup.gap_facts.GapFacts.answer`.
AnswerFacts = Callable[[Gap], Awaitable[dict[str, Any] | None]]
#: The answer's fields a callback carries besides its status (no amounts, no parties).
_FACT_FIELDS = ("reason", "warnings")


def payload(due: DueCallback, answer: dict[str, Any] | None = None) -> dict[str, Any]:
    """`answer`: the gap's answer with its facts (default: as recorded)."""
    gap = due.gap.as_dict(requesters=())
    final = (due.gap.answer if answer is None else answer) or {}
    body = {"event": "gap.resolved", "gap_id": due.answered_id or gap["id"],
            "lookup_key": gap["lookup_key"],
            "key": gap["key"], "resolution": gap["resolution"],
            "status": final.get("status"), "resolved_at": gap["resolved_at"]}
    body.update({name: final[name] for name in _FACT_FIELDS if name in final})
    return body


class CallbackNotifier:
    def __init__(self, gaps: ReconcileLedger, policy: CallbackPolicy | None = None, *,
                 clock: Clock = utc_now, facts: AnswerFacts | None = None) -> None:
        self.gaps = gaps
        self.policy = policy or CallbackPolicy()
        self._clock = clock
        self.facts = facts

    async def _answer(self, gap: Gap) -> dict[str, Any] | None:
        """The gap's answer with its facts; as recorded when they cannot be had (the
        callback is not held back for the registry)."""
        if self.facts is None:
            return gap.answer
        try:
            return await self.facts(gap) or gap.answer
        except Exception:
            log.exception("could not add the lookup's facts to a gap callback",
                          extra={"gap_id": gap.id})
            return gap.answer

    def next_attempt_delay(self, attempts: int) -> timedelta:
        """After the `attempts`-th failed attempt (1 for the first)."""
        p = self.policy
        return timedelta(seconds=min(p.backoff_cap, p.backoff_base * 2 ** (attempts - 1)))

    async def deliver_due(self) -> Delivery:
        """Every callback due now, each attempted once in this call, and only once claimed
        (`ReconcileLedger.claim_callback`: on the shared ledger one process of the
        deployment sends it)."""
        done = Delivery()
        seen: set[tuple[str, str]] = set()
        p = self.policy
        limit = asyncio.Semaphore(p.concurrency)
        async with callback_session(p) as session:
            while True:
                due = [d for d in await self.gaps.due_callbacks(
                    max_attempts=p.max_attempts, limit=100)
                    if (d.gap.id, d.key_id) not in seen]
                if not due:
                    return done
                seen.update((d.gap.id, d.key_id) for d in due)
                results = await asyncio.gather(*(self._one(session, limit, d) for d in due))
                done.sent += sum(r is True for r in results)
                done.failed += sum(r is False for r in results)

    async def _one(self, session: aiohttp.ClientSession, limit: asyncio.Semaphore,
                   due: DueCallback) -> bool | None:
        """Sent (True), failed (False), or another process is sending it (None)."""
        async with limit:
            if not await self.gaps.claim_callback(due.gap.id, due.key_id):
                return None
            error = await post_callback(session, self.policy, due.callback_url,
                                        orjson.dumps(payload(due, await self._answer(due.gap))))
            if error is None:
                await self.gaps.callback_sent(due.gap.id, due.key_id)
                return True
            attempts = due.attempts + 1
            log.warning("gap callback failed", extra={
                "gap_id": due.gap.id, "attempt": attempts, "error": error})
            await self.gaps.callback_failed(due.gap.id, due.key_id, error,
                                            self._clock() + self.next_attempt_delay(attempts))
            return False
