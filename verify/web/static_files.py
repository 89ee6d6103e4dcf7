"""The pages' scripts, styles and icons, served from the package (nothing from another
site: the machines that run the service may have no internet). Only files present at start
are served, by exact name."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from verify.http.errors import ApiError

TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


class StaticFiles:
    def __init__(self) -> None:
        folder = resources.files("verify.web") / "static"
        self.files: dict[str, tuple[bytes, str]] = {}
        for entry in folder.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in TYPES:
                self.files[entry.name] = (entry.read_bytes(), TYPES[suffix])

    async def serve(self, request: web.Request) -> web.StreamResponse:
        found = self.files.get(request.path.rsplit("/", 1)[-1])
        if found is None:
            raise ApiError(404, "page_not_found", "there is no such file")
        body, kind = found
        return web.Response(
            body=body, headers={"Content-Type": kind, "Cache-Control": "public, max-age=300"}
        )
