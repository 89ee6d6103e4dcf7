"""What the pages keep per app: the session cookie's storage (its key made once in the data
directory, or given), the language catalogs and the results of this process's recent
batch and ledger runs (`verify.web.runs`). Built in the app's start-up (`web_ctx`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from indexer.store.sqlite_files import private_dir
from verify.keys import SETTINGS
from verify.web.i18n import Catalogs
from verify.web.runs import Runs

COOKIE = "ivsession"


@dataclass(frozen=True, slots=True)
class WebState:
    sessions: EncryptedCookieStorage
    catalogs: Catalogs
    runs: Runs


WEB = web.AppKey("web", WebState)


def session_key(path: Path) -> bytes:
    """The key in `path`, made (mode 600) when there is none: the first process to start
    makes it, the others read it (O_EXCL), so every process of a host shares it."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


async def web_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    web_settings = settings.web
    key = (
        web_settings.session_key.encode()
        if web_settings.session_key
        else session_key(settings.data_dir / "web-session.key")
    )
    storage = EncryptedCookieStorage(
        Fernet(key),
        cookie_name=COOKIE,
        max_age=web_settings.session_hours * 3600,
        path="/web/",
        httponly=True,
        samesite="Strict",
        secure=web_settings.secure_cookie,
    )
    app[WEB] = WebState(storage, Catalogs(), Runs())
    yield
