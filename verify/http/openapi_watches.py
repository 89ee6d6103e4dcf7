"""`/openapi.json` on watches (docs/watches.md): what the watch routes take and answer, and
the `watch` flag of `GET /invoices/lookup` and `POST /verify/batch`. Their operations are
listed in `verify.http.openapi`."""

from __future__ import annotations

from typing import Any

from verify.http import openapi_schemas as s
from verify.http.openapi_receipts import RECEIPT_PARAM

#: A true-or-false flag, as `receipt` is.
WATCH_PARAM: dict[str, Any] = {
    **RECEIPT_PARAM,
    "name": "watch",
    "description": "true: watch the invoice answered (each row's, for a batch) for 90 days; "
    "the answer carries `watch` (docs/watches.md)",
}

_KEY_TEXT = {
    "type": "string",
    "maxLength": 200,
    "description": "an invoice id (vn:..., cn:...) or authority_code:<code>",
}
WATCH = s.obj(
    ["id", "key", "created_at", "expires_at", "callback_url"],
    id=s.STR,
    key=_KEY_TEXT,
    created_at=s.TIME,
    expires_at=s.TIME,
    callback_url=s.nullable(s.STR),
)
WATCH_REQUEST = {
    **s.obj(
        ["keys"],
        keys={
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "items": {"anyOf": [_KEY_TEXT, s.LOOKUP_ROW]},
            "description": "invoice ids, authority_code:<code>, or objects of a lookup's "
            "key parameters",
        },
        days={"type": "integer", "minimum": 1, "maximum": 366, "default": 90},
        callback_url=s.nullable({"type": "string", "maxLength": 2048}),
    ),
}
WATCH_EVENT = s.obj(
    ["event", "id", "cursor", "watch_id", "key", "status", "at"],
    event={"type": "string", "enum": ["invoice.changed", "gap.resolved"]},
    id={**s.STR, "description": "the event's id: the idempotency key of its callback"},
    cursor=s.STR,
    watch_id=s.STR,
    key=_KEY_TEXT,
    invoice_id=s.nullable(s.STR),
    status={
        **s.STR,
        "description": "invoice.changed: cancelled, replaced or adjusted; gap.resolved: "
        "the final answer's status",
    },
    at=s.TIME,
    by={**s.ANY_OBJECT, "description": "invoice.changed: the notice or invoice that did it"},
    red_letter={**s.BOOL, "description": "adjusted: by a Chinese red-letter invoice (红字)"},
    gap_id=s.STR,
    resolution={"type": "string", "enum": ["found", "missing"]},
    callback=s.nullable(s.obj(
        ["state", "attempts"],
        state={"type": "string", "enum": ["sent", "pending", "failed"]},
        attempts=s.INT,
        sent_at=s.nullable(s.TIME),
        error=s.nullable(s.STR),
    )),
)
WATCHES = s.obj(["watches"], watches={"type": "array", "items": s.ref("Watch")},
                limit={**s.INT, "description": "watches a key may hold in force"})
EVENTS = s.obj(
    ["events", "next", "more"],
    events={"type": "array", "items": s.ref("WatchEvent")},
    next={**s.STR, "description": "the cursor to ask `after` for the next page"},
    more=s.BOOL,
)
ERRORS = {"409": "the key's watches would pass its limit (details.limit)"}

SCHEMAS: dict[str, Any] = {"Watch": WATCH, "WatchEvent": WATCH_EVENT, "Watches": WATCHES,
                           "WatchEvents": EVENTS}
