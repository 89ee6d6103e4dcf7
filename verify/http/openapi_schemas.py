"""The component schemas of `/openapi.json`: every JSON body the service sends or takes.

Objects list what is always there (`required`) and the type of each field; they stay open to
new fields (no `additionalProperties: false` on answers), so adding a field is not a breaking
change. Request bodies that the service checks strictly say so."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str] | None = None, **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}
ANY_OBJECT: Schema = {"type": "object"}
TIME: Schema = {"type": "string", "description": "ISO 8601 date-time, UTC (Z)"}
DAY: Schema = {"type": "string", "description": "YYYY-MM-DD"}
BINARY: Schema = {"type": "string", "format": "binary"}

ANSWER_STATUSES = [
    "valid",
    "cancelled",
    "replaced",
    "adjusted",
    "partially_reversed",
    "reversed",
    "mismatch",
    "not_found",
    "unconfirmed",
    "outside_window",
]

ERROR = obj(
    ["error"],
    error=obj(
        ["code", "message", "details"],
        code=STR,
        message=STR,
        details={
            **ANY_OBJECT,
            "description": "what was wrong; `parameter`/`parameters` name "
            "the query parameters, `field` the body field",
        },
    ),
)

SELLER_WARNING = obj(
    ["code", "when", "status"],
    code={
        "type": "string",
        "enum": ["seller_closed", "seller_suspended", "seller_not_at_registered_address"],
    },
    when=STR,
    status=STR,
)

ANSWER = obj(
    [
        "status",
        "scheme",
        "key",
        "invoice",
        "mismatches",
        "related",
        "source",
        "degraded",
        "as_of",
        "gap_id",
    ],
    status={"type": "string", "enum": ANSWER_STATUSES},
    scheme={"type": "string", "enum": ["vn", "cn"]},
    key=nullable({**ANY_OBJECT, "description": "the key as asked or as found"}),
    invoice=nullable(
        {
            **ANY_OBJECT,
            "description": "summary: dates, amounts, parties, "
            "authority code, relations (parties redacted by tenancy); vn: seller_status "
            "{known, on_issue_date, today}, the seller's registry status codes",
        }
    ),
    mismatches={
        "type": "array",
        "items": obj(["field"], field=STR, given=nullable(STR), recorded=nullable(STR)),
    },
    related={"type": "array", "items": ANY_OBJECT},
    source=STR,
    degraded=BOOL,
    as_of=TIME,
    gap_id=nullable(STR),
    withheld={
        "type": "array",
        "items": {"type": "string", "enum": ["amounts", "parties"]},
        "description": "cn: what the answer withholds because the lookup lacks the "
        "platform's second factor for the type (docs/cn-rules.md §4.1)",
    },
    missing_factor={
        "type": "string",
        "enum": ["issued_on", "amount", "check_code_last6", "total_amount"],
        "description": "cn: the input the lookup lacks (with `withheld`)",
    },
    mismatched_factor={
        "type": "string",
        "enum": ["issued_on", "amount", "check_code_last6", "total_amount"],
        "description": "cn: the input the lookup gave that differs from the record (with "
        "`withheld`; the answer is `mismatch` and echoes no recorded value)",
    },
    required_factors={
        "type": "array",
        "items": STR,
        "description": "cn: the inputs the type asks for (with `withheld`)",
    },
    warnings={
        "type": "array",
        "items": SELLER_WARNING,
        "description": "vn, on a valid answer: the seller was or is closed (01, 03), "
        "suspended (05) or not at its registered address (06)",
    },
    check_count={
        **INT,
        "description": "to keys scoped to the invoice's seller or buyer: how often it was "
        "checked (查验次数), this check included, from the audit trail (at most 1000)",
    },
    window_years={
        **INT,
        "description": "outside_window: the authority's verification window in years",
    },
    window_start={**DAY, "description": "outside_window: the window's first day"},
    receipt={
        "type": "string",
        "description": "with receipt=true: this answer's signed "
        "receipt, a compact JWS (docs/receipts.md)",
    },
    watch={
        **ANY_OBJECT,
        "nullable": True,
        "description": "with watch=true: the watch made of the invoice answered (or, "
        "unconfirmed, of the key asked); null when nothing is watched (docs/watches.md)",
    },
    watch_error={
        **ANY_OBJECT,
        "description": "a batch row with watch=true whose watch was refused: the error",
    },
)

ITEM_RESULT = obj(
    ["index", "item", "result", "errors", "warnings"],
    index=INT,
    item={"type": "string", "enum": ["invoice", "notice"]},
    id=nullable(STR),
    key=nullable(ANY_OBJECT),
    notice_id=nullable(STR),
    result=STR,
    errors={"type": "array", "items": ANY_OBJECT},
    warnings={"type": "array", "items": ANY_OBJECT},
)
NOTICE = obj(
    ["package_id", "result", "items"],
    package_id=STR,
    sender=STR,
    received_at=TIME,
    declared_count=INT,
    result={
        "type": "string",
        "description": "accepted, partially_accepted, "
        "rejected, or queued (durable in the intake journal, not yet applied)",
    },
    accepted=INT,
    rejected=INT,
    items={"type": "array", "items": ITEM_RESULT},
)

PACKAGE_REQUEST = obj(
    ["package_id", "sender", "declared_count"],
    package_id={"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"},
    sender={
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "description": "the transmission provider (T-VAN) sending the package",
    },
    declared_count={
        "type": "integer",
        "minimum": 0,
        "description": "invoices + notices in the package",
    },
    invoices={"type": "array", "items": ANY_OBJECT},
    notices={"type": "array", "items": ANY_OBJECT},
)

LOOKUP_ROW = {
    **ANY_OBJECT,
    "description": "the lookup's query parameters as an object",
    "additionalProperties": {"anyOf": [STR, NUM]},
}
BATCH_ROW = {
    **ANY_OBJECT,
    "description": "`{row, ...verification answer}` or "
    "`{row, error: {code, message, details}}`, one JSON object per line",
    "required": ["row"],
    "properties": {"row": INT},
}

QR_RESULT = obj(
    ["payload"],
    payload=obj(["raw"], raw=STR, format=nullable(STR)),
    result=nullable(ANSWER),
    error=nullable(ERROR["properties"]["error"]),
)
QR_PHOTO = obj(["outcome", "codes"], outcome=STR, codes={"type": "array", "items": QR_RESULT})

KEY_RECORD = obj(
    ["key_id", "role", "scopes", "name", "created_at"],
    key_id=STR,
    role={"type": "string", "enum": ["intake", "verify", "audit", "admin"]},
    scopes={"type": "array", "items": STR},
    name=STR,
    created_at=TIME,
    created_by=nullable(STR),
    revoked_at=nullable(TIME),
)
KEY_REQUEST = {
    **obj(
        ["role"],
        role={"type": "string", "enum": ["intake", "verify", "audit", "admin"]},
        scopes={"type": "array", "items": STR, "maxItems": 1000},
        name={"type": "string", "maxLength": 200},
    )
}
AUDIT_ENTRY = obj(
    ["at", "key_id", "action"],
    at=TIME,
    key_id=nullable(STR),
    role=nullable(STR),
    action=STR,
    target=nullable(STR),
    outcome=nullable(STR),
    client=nullable(STR),
)

COUNTS = obj(["taxpayers", "providers"], taxpayers=INT, providers=INT)
REGISTRY_REQUEST = obj(
    taxpayers={"type": "array", "items": ANY_OBJECT},
    providers={"type": "array", "items": ANY_OBJECT},
)

GAP = obj(
    ["id", "status", "reason"],
    id=STR,
    status={"type": "string", "enum": ["open", "resolved"]},
    reason=STR,
)
OUTAGE = obj(
    ["id", "system", "kind", "start"],
    id=INT,
    system=STR,
    kind={"type": "string", "enum": ["detected", "declared"]},
    start=TIME,
    end=nullable(TIME),
    reason=nullable(STR),
)
OUTAGE_REQUEST = {
    **obj(
        ["system", "start", "end"],
        system={"type": "string", "enum": ["primary", "upstream"]},
        start={"type": "string", "format": "date-time"},
        end={"type": "string", "format": "date-time"},
        reason={"type": "string", "maxLength": 500},
    ),
    "additionalProperties": False,
}

RECONCILE_STATUS = obj(
    ["running", "run", "journal", "open_gaps"],
    running=BOOL,
    run=obj(["state"], state=STR, errors={"type": "array"}),
    journal={**ANY_OBJECT, "description": "entries per state", "additionalProperties": INT},
    open_gaps=INT,
)
RECONCILE_STARTED = {"allOf": [RECONCILE_STATUS, obj(["started"], started=BOOL)]}

REPORT_MISSING = obj(
    ["scope", "sequences", "outage_gaps", "totals"],
    scope=ANY_OBJECT,
    sequences={"type": "array", "items": ANY_OBJECT},
    outage_gaps={"type": "array", "items": ANY_OBJECT},
    totals=ANY_OBJECT,
)
REPORT_LEDGER = obj(
    ["scope", "lines", "not_in_ledger", "totals"],
    scope=ANY_OBJECT,
    lines={"type": "array", "items": obj(["row", "status"], row=INT, status=STR)},
    not_in_ledger={"type": "array", "items": ANY_OBJECT},
    not_in_ledger_checked=BOOL,
    totals=ANY_OBJECT,
)

READY = obj(
    ["status", "checks"],
    status={"type": "string", "enum": ["ready", "not_ready"]},
    checks={
        **ANY_OBJECT,
        "additionalProperties": obj(
            ["backend", "ok", "state"],
            backend=STR,
            ok=BOOL,
            error=STR,
            state={"type": "string", "enum": ["ok", "unavailable", "maintenance"]},
            window=obj(["id", "end"], id=INT, start=STR, end=STR, reason=STR),
        ),
    },
)

TAXPAYER = obj(
    ["tax_id", "name", "status", "on", "status_on", "statuses", "einvoice_stopped", "warnings"],
    tax_id=STR,
    name=STR,
    status=nullable(STR),
    on=nullable(DAY),
    status_on=nullable(STR),
    statuses={"type": "array", "items": obj(["status", "since"], status=STR, since=nullable(DAY))},
    einvoice_stopped=BOOL,
    warnings={"type": "array", "items": SELLER_WARNING},
)

LINE = obj(
    ["number", "name", "unit", "quantity", "unit_price", "amount", "tax_rate"],
    **{
        name: nullable(STR)
        for name in ("number", "nature", "code", "name", "unit", "quantity", "unit_price",
                     "discount_rate", "discount_amount", "amount", "tax_rate")
    },
)

INVOICE_LINES = obj(["id", "lines"], id=STR, lines={"type": "array", "items": LINE})

FILE_CHECK = {
    "allOf": [
        ANSWER,
        obj(
            ["file", "signature", "lines"],
            file=obj(["format", "id", "violations"], format=STR, id=STR,
                     violations={"type": "array", "items": ANY_OBJECT}),
            signature=obj(
                ["status", "violations"],
                status={"type": "string", "enum": ["valid", "invalid", "unsigned",
                                                   "not_checked", "not_applicable"]},
                reason=STR,
                violations={"type": "array", "items": ANY_OBJECT},
            ),
            lines=obj(["compared"], compared=BOOL, reason=nullable(STR),
                      count=nullable(INT)),
        ),
    ]
}

SCHEMAS: dict[str, Schema] = {
    "FileCheck": FILE_CHECK,
    "InvoiceLines": INVOICE_LINES,
    "Error": ERROR,
    "Answer": ANSWER,
    "Taxpayer": TAXPAYER,
    "Notice": NOTICE,
    "PackageRequest": PACKAGE_REQUEST,
    "BatchRow": BATCH_ROW,
    "QrResult": QR_RESULT,
    "QrPhoto": QR_PHOTO,
    "ApiKey": KEY_RECORD,
    "AuditEntry": AUDIT_ENTRY,
    "Gap": GAP,
    "Outage": OUTAGE,
    "ReconcileStatus": RECONCILE_STATUS,
    "MissingReport": REPORT_MISSING,
    "LedgerReport": REPORT_LEDGER,
    "Ready": READY,
}
