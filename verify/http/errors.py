"""The one error type handlers raise; the middleware turns it into the JSON envelope."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class QueryError(ApiError):
    """A query string (or a batch row or ledger line read as one) the route cannot take:
    400 with `details.parameter` or `details.parameters` naming what was wrong. An `ApiError`,
    so every place that answers a row's error in place (batch, ledger) answers this one too."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(400, code, message, details)
