"""The `callback_url` a lookup may give, checked before its gap keeps it: where the
reconciler tells the caller that an unconfirmed answer's gap was resolved."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fallback.callbacks import callback_host, is_public, literal_host
from verify.http.params import invalid

MAX_CALLBACK_URL = 2048
_NOT_A_URL = ("callback_url must be an absolute http or https URL (at most "
              f"{MAX_CALLBACK_URL} characters)")


def validate_callback_url(raw: str, *, allow_private: bool) -> str:
    """An absolute http(s) URL with a host, stored with the gap for the reconciler. An IP
    address that is not globally routable is refused here already unless `allow_private`;
    a host name is checked when the callback is sent (`fallback/callbacks.py`)."""
    try:
        parts = urlsplit(raw)
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in {"http", "https"} or not parts.hostname
            or len(raw) > MAX_CALLBACK_URL or any(c.isspace() for c in raw)):
        raise invalid("callback_url", _NOT_A_URL)
    try:
        host, literal = callback_host(raw), literal_host(raw)
    except ValueError:
        raise invalid("callback_url", _NOT_A_URL) from None
    if literal is not None and not _is_ip(host):  # a legacy spelling of an IPv4 address
        raise invalid("callback_url", "callback_url must name its host, or give an IP "
                      "address in the standard dotted or IPv6 form (not 127.1, 2130706433 "
                      "or 0x7f.1)")
    if literal is not None and not allow_private and not is_public(literal):
        raise invalid("callback_url",
                      "callback_url must not point at a loopback or private address")
    return raw


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
