"""The pages' settings, part of `verify.settings.Settings` (`web`), read from the
environment with the same helpers (docs/pages.md lists the variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.fernet import Fernet


@dataclass(frozen=True, slots=True)
class WebSettings:
    #: The address people reach the service at (`INVOICE_PUBLIC_URL`, e.g.
    #: https://verify.example.vn): link QR codes point at it. None: no link QRs.
    public_url: str | None = None
    #: How long a sign-in lasts (`INVOICE_WEB_SESSION_HOURS`).
    session_hours: int = 12
    #: The session cookie's Fernet key (`INVOICE_WEB_SESSION_KEY`), for several processes
    #: behind one address; None: a key made on first start in the data directory.
    session_key: str | None = None
    #: Whether the session cookie is sent over HTTPS only (`INVOICE_WEB_SECURE_COOKIE`;
    #: default: when the public URL is https).
    secure_cookie: bool = False


def _public_url(raw: str) -> str | None:
    from verify.settings import SettingsError

    url = raw.strip().rstrip("/")
    if not url:
        return None
    parts = urlsplit(url)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise SettingsError(f"INVOICE_PUBLIC_URL={raw!r}: give http(s)://host[:port][/path]")
    return url


def web_settings(env: Mapping[str, str]) -> WebSettings:
    from verify.settings import SettingsError, _flag, _int

    public_url = _public_url(env.get("INVOICE_PUBLIC_URL", ""))
    key = env.get("INVOICE_WEB_SESSION_KEY", "").strip() or None
    if key is not None:
        try:
            Fernet(key)
        except ValueError:
            raise SettingsError(
                "INVOICE_WEB_SESSION_KEY must be a Fernet key (32 bytes, url-safe base64)"
            ) from None
    secure = bool(public_url and public_url.startswith("https://"))
    return WebSettings(
        public_url=public_url,
        session_hours=_int(env, "INVOICE_WEB_SESSION_HOURS", 12, minimum=1),
        session_key=key,
        secure_cookie=_flag(env, "INVOICE_WEB_SECURE_COOKIE", default=secure),
    )
