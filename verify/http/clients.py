"""The client's address behind a balancer: `X-Forwarded-For`, honoured only from the proxies
the deployment trusts (`INVOICE_TRUSTED_PROXIES`, docs/configuration.md; none by default).

Behind compose's nginx every connection comes from the balancer, so `request.remote` would
name the balancer in the audit trail and put every client in one bucket of the failed-auth
limit. When the peer is a trusted proxy, the header's addresses are read from the right
(the one the nearest proxy appended first) past every trusted one; the first that is not
trusted is the client. Anything else (an untrusted peer, no header, a malformed entry)
keeps the nearest address known to be real, so a client cannot choose its own address
by sending the header: only what a trusted proxy appended is believed, as nginx's
`real_ip_recursive` and aiohttp-remotes' `XForwardedStrict` do.

The request is replaced once, in the access middleware (`resolve`), by a clone whose
`remote` is the client: every later reader (the audit trail, the failed-auth limit) sees
it. Without trusted proxies nothing runs per request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import hdrs, web

from verify.settings import Network

#: Addresses whose trust was decided, kept (a balancer's few, and the peers of others).
_MAX_KNOWN = 10_000


def _address(text: str) -> str | None:
    """An X-Forwarded-For entry as an IP address (nginx writes bare addresses; a port or
    IPv6 brackets are taken off), None when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class ForwardedClients:
    def __init__(self, trusted: Iterable[Network]) -> None:
        self._trusted = tuple(trusted)
        self._known: dict[str, bool] = {}

    def trusts(self, address: str) -> bool:
        known = self._known.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(ip in network for network in self._trusted)
            if len(self._known) >= _MAX_KNOWN:
                self._known.clear()
            self._known[address] = known
        return known

    def client(self, request: web.BaseRequest) -> str | None:
        """The client's address: the peer's, or past the trusted proxies in the header."""
        nearest = request.remote
        if nearest is None or not self.trusts(nearest):
            return nearest
        hops = [hop for value in request.headers.getall(hdrs.X_FORWARDED_FOR, ())
                for hop in value.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return nearest  # garbage after the last trusted hop: believe no further
            nearest = address
            if not self.trusts(address):
                return address
        return nearest

    def resolve(self, request: web.Request) -> web.Request:
        """`request`, or a clone of it whose `remote` is the forwarded client."""
        client = self.client(request)
        if client is None or client == request.remote:
            return request
        return request.clone(remote=client)


#: Set by `create_app` only when trusted proxies are configured.
FORWARDED_CLIENTS = web.AppKey("forwarded_clients", ForwardedClients)
