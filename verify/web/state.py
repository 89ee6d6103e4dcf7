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
    makes it (written aside, then linked into place whole), the others read it, so every
    process of a host shares it."""
    private_dir(path.parent)
    try:
        path.chmod(0o600)  # one a looser umask or hand left open is tightened, as the stores are
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(Fernet.generate_key() + b"\n")
    try:
        os.link(draft, path)  # whole or not at all; a process that got there first wins
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_bytes().strip()


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
