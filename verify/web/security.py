"""The headers every page and asset is sent with. The policy allows only the service's own
scripts, styles and images: no inline script or style, no other origin, no framing. The
camera is allowed to this origin only (the scan page)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def secure(response: web.StreamResponse) -> None:
    """The page headers, unless the response is already on its way (a streamed download
    carries the API's own: `verify.http.responses.SECURITY_HEADERS`)."""
    if response.prepared:
        return
    response.headers.update(PAGE_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
