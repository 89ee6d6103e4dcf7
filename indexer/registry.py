"""The taxpayer and transmission-provider registry, and the intake rules that read it.

What the authority knows and our intake must check against (vn-einvoice §2.2, §4, §8 step 1):
each taxpayer's status (with the date it took effect, and the statuses before it), whether
e-invoice use is stopped (feed 506: from / until), the 5-character cash-register code ranges
issued to it (form 01/TB-ĐKĐT), and the templates and series it registered with their dates;
each provider's contract.

Status history: an invoice is judged by the status in force on its issue date
(`Taxpayer.status_on`), so the registry keeps the statuses a taxpayer had. An import states
one status and the day it took effect (`status_since`); `record_status` takes it as "from that
day on", over whatever was recorded from that day, after the statuses before it. A status
without a date holds on every date.

An empty registry means "no registry checks" (demos, tests); once it holds anything, a
seller absent from it is rejected.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from indexer import vn
from indexer.rules import RuleConfig, Violation
from indexer.text import text_problem

#: Every status code of vn-einvoice §4. Which of them may issue is `RuleConfig.active_statuses`
#: (00, 02, 04 per the provider's summary of Decision 1391; whether 02 counts in every check
#: is unconfirmed, hence configurable: `INVOICE_ACTIVE_TAXPAYER_STATUSES`).
KNOWN_STATUSES = frozenset({"00", "01", "02", "03", "04", "05", "06", "07", "09"})


class RegistryError(ValueError):
    """A registry file that cannot be imported; the message names the record and field."""


@dataclass(frozen=True, slots=True)
class Registration:
    template: str
    series: str
    valid_from: date
    valid_to: date | None = None

    def covers(self, template: str, series: str, day: date) -> bool:
        return (self.template == template and self.series == series
                and self.valid_from <= day and (self.valid_to is None or day <= self.valid_to))


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status and the day it took effect (`None`: before any date the registry knows)."""

    status: str
    since: date | None = None


@dataclass(frozen=True, slots=True)
class Taxpayer:
    tax_id: str
    name: str
    status: str
    status_since: date | None = None
    einvoice_stopped: bool = False
    stopped_from: date | None = None
    stopped_until: date | None = None
    cash_register_code_ranges: tuple[str, ...] = ()
    registrations: tuple[Registration, ...] = field(default=())
    #: The statuses before `status`, oldest first, each until the next one's `since`.
    status_history: tuple[StatusChange, ...] = ()

    @property
    def statuses(self) -> tuple[StatusChange, ...]:
        """Every status recorded, oldest first; the one in force now last."""
        return (*self.status_history, StatusChange(self.status, self.status_since))

    def status_on(self, day: date) -> str | None:
        """The status in force on `day`; `None` before the first dated status recorded."""
        found = None
        for change in self.statuses:
            if change.since is not None and change.since > day:
                break
            found = change.status
        return found

    def stopped_on(self, day: date) -> bool:
        if not self.einvoice_stopped:
            return False
        started = self.stopped_from is None or self.stopped_from <= day
        ongoing = self.stopped_until is None or day <= self.stopped_until
        return started and ongoing


@dataclass(frozen=True, slots=True)
class Provider:
    provider_id: str
    name: str
    valid_from: date
    valid_to: date | None = None

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class RegistryImport:
    taxpayers: tuple[Taxpayer, ...]
    providers: tuple[Provider, ...]


# --- parsing ------------------------------------------------------------------------------
# Every field is checked for its type before its value: a registry file comes from outside,
# and `null`, a number or a list where text belongs is a `RegistryError` naming the record
# and field (HTTP 422 `invalid_registry`), never an AttributeError or a TypeError.

#: Longest name kept (the authority's registry holds up to 400 characters).
MAX_NAME = 400
#: Longest code or date text examined; anything longer is refused before it is parsed.
MAX_FIELD = 64
#: Most cash-register code ranges and registrations one taxpayer may list.
MAX_ITEMS = 10_000
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _record(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{where}: must be an object, not {_kind(raw)}")
    return raw


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _text(raw: Mapping[str, Any], name: str, where: str, *, max_len: int = MAX_FIELD) -> str:
    """The field as stripped text ("" when absent, null or empty)."""
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RegistryError(f"{where}: {name} must be text, not {_kind(value)}")
    if len(value) > max_len:
        raise RegistryError(f"{where}: {name} is longer than {max_len} characters")
    problem = text_problem(value)
    if problem is not None:
        raise RegistryError(f"{where}: {name} {problem}")
    return value.strip()


def _list(raw: Mapping[str, Any], name: str, where: str) -> list[Any]:
    value = raw.get(name)
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise RegistryError(f"{where}: {name} must be a list, not {_kind(value)}")
    if len(value) > MAX_ITEMS:
        raise RegistryError(f"{where}: {name} holds more than {MAX_ITEMS} entries")
    return value


def _date(raw: Mapping[str, Any], name: str, where: str, *,
          required: bool = False) -> date | None:
    text = _text(raw, name, where)
    if not text:
        if required:
            raise RegistryError(f"{where}: {name}: a date is required")
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise RegistryError(f"{where}: {name} {text!r} is not a YYYY-MM-DD date") from None


def _bool(raw: Mapping[str, Any], name: str, where: str) -> bool:
    value = raw.get(name)
    if isinstance(value, bool):
        return value
    if value is not None and not isinstance(value, str):
        raise RegistryError(f"{where}: {name} must be true or false, not {_kind(value)}")
    text = _text(raw, name, where).lower()
    if text in {"", "0", "false", "no"}:
        return False
    if text in {"1", "true", "yes"}:
        return True
    raise RegistryError(f"{where}: {name} {text!r} is not true/false")


def _code_ranges(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("cash_register_code_ranges")
    if isinstance(value, str):
        value = [r for r in _text(raw, "cash_register_code_ranges", where,
                                  max_len=6 * MAX_ITEMS).split(";") if r.strip()]
        raw = {"cash_register_code_ranges": value}
    codes = []
    for code in _list(raw, "cash_register_code_ranges", where):
        text = code.strip() if isinstance(code, str) else ""
        if not (len(text) == 5 and text.isascii() and text.isalnum()):
            raise RegistryError(f"{where}: cash register code range {code!r} is not 5 letters "
                                "or digits")
        codes.append(text.upper())
    return tuple(codes)


def _registration(reg: object, at: str) -> Registration:
    reg = _record(reg, at)
    template, series = _text(reg, "template", at), _text(reg, "series", at)
    if template not in vn.TEMPLATES or vn.parse_series(series) is None:
        raise RegistryError(f"{at}: template {template!r} / series {series!r} invalid")
    return Registration(template, series, _date(reg, "from", at, required=True) or date.min,
                        _date(reg, "to", at))


def _status(raw: Mapping[str, Any], where: str) -> str:
    status = _text(raw, "status", where)
    if status not in KNOWN_STATUSES:
        raise RegistryError(f"{where}: status {status!r} is not one of "
                            f"{', '.join(sorted(KNOWN_STATUSES))}")
    return status


def _status_history(raw: Mapping[str, Any], where: str, *,
                    stored: bool) -> tuple[StatusChange, ...]:
    """A stored record's earlier statuses (`taxpayer_to_dict`). A file does not give them:
    the registry keeps them from the imports it took (`record_status`)."""
    if not stored:
        if raw.get("status_history") is not None:
            raise RegistryError(f"{where}: status_history is kept by the registry from the "
                                "imports it takes; give status and status_since")
        return ()
    history = []
    for n, item in enumerate(_list(raw, "status_history", where)):
        at = f"{where}.status_history[{n}]"
        change = _record(item, at)
        history.append(StatusChange(_status(change, at), _date(change, "since", at)))
    return tuple(history)


def _taxpayer(raw: object, where: str, *, stored: bool = False) -> Taxpayer:
    raw = _record(raw, where)
    tax_id = _text(raw, "tax_id", where)
    if not vn.tax_id_valid(tax_id):
        raise RegistryError(f"{where}: tax_id {tax_id!r} is not a valid MST or personal id")
    status = _status(raw, where)
    registrations = tuple(_registration(reg, f"{where}.registrations[{n}]")
                          for n, reg in enumerate(_list(raw, "registrations", where)))
    return Taxpayer(
        tax_id=vn.normalise_tax_id(tax_id), name=_text(raw, "name", where, max_len=MAX_NAME),
        status=status, status_since=_date(raw, "status_since", where),
        einvoice_stopped=_bool(raw, "einvoice_stopped", where),
        stopped_from=_date(raw, "stopped_from", where),
        stopped_until=_date(raw, "stopped_until", where),
        cash_register_code_ranges=_code_ranges(raw, where),
        registrations=registrations,
        status_history=_status_history(raw, where, stored=stored))


def _provider(raw: object, where: str) -> Provider:
    raw = _record(raw, where)
    provider_id = _text(raw, "provider_id", where)
    if not provider_id or len(provider_id) > 20:
        raise RegistryError(f"{where}: provider_id is required (at most 20 characters)")
    return Provider(provider_id, _text(raw, "name", where, max_len=MAX_NAME),
                    _date(raw, "valid_from", where, required=True) or date.min,
                    _date(raw, "valid_to", where))


def parse_registry_json(data: Any) -> RegistryImport:
    """The registry file of docs/formats.md#registry-file:
    `{"taxpayers": [...], "providers": [...]}`."""
    if not isinstance(data, Mapping):
        raise RegistryError("a registry file is a JSON object with taxpayers and providers")
    unknown = sorted(str(k) for k in data if k not in {"taxpayers", "providers"})
    if unknown:
        raise RegistryError(f"unknown field(s) {', '.join(unknown)}: a registry file holds "
                            "taxpayers and providers")
    for name in ("taxpayers", "providers"):
        if data.get(name) is not None and not isinstance(data[name], list):
            raise RegistryError("taxpayers and providers must be lists")
    return RegistryImport(
        tuple(_taxpayer(t, f"taxpayers[{n}]") for n, t in enumerate(data.get("taxpayers") or [])),
        tuple(_provider(p, f"providers[{n}]") for n, p in enumerate(data.get("providers") or [])))


def _csv_registrations(text: str, where: str) -> list[dict[str, str]]:
    """`1:C22TAA:2022-01-01[:2022-12-31];2:...` -> registration dicts."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        parts = item.split(":")
        if len(parts) not in (3, 4):
            raise RegistryError(f"{where}: registration {item!r} is not template:series:from[:to]")
        out.append({"template": parts[0], "series": parts[1], "from": parts[2],
                    "to": parts[3] if len(parts) == 4 else ""})
    return out


def parse_registry_csv(text: str) -> RegistryImport:
    """A CSV of taxpayers (header has `tax_id`) or of providers (header has `provider_id`).

    Taxpayer columns: tax_id, name, status, status_since, einvoice_stopped, stopped_from,
    stopped_until, cash_register_code_ranges (`A1B2C;D3E4F`), registrations
    (`template:series:from[:to];...`)."""
    try:
        return _parse_csv(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise RegistryError(f"the registry CSV cannot be read: {exc}") from None


def _csv_record(row: dict[str | None, Any], where: str) -> dict[str, Any]:
    if None in row:  # cells beyond the header (csv.DictReader keeps them under None)
        raise RegistryError(f"{where}: more cells than the header has columns")
    return {str(k): v for k, v in row.items()}


def _parse_csv(reader: csv.DictReader[str]) -> RegistryImport:
    header = set(reader.fieldnames or [])
    if "tax_id" in header:
        rows = []
        for n, row in enumerate(reader, start=2):
            where = f"line {n}"
            record = _csv_record(row, where)
            record["registrations"] = _csv_registrations(
                _text(record, "registrations", where, max_len=40 * MAX_ITEMS), where)
            rows.append(_taxpayer(record, where))
        return RegistryImport(tuple(rows), ())
    if "provider_id" in header:
        return RegistryImport((), tuple(_provider(_csv_record(row, f"line {n}"), f"line {n}")
                                        for n, row in enumerate(reader, start=2)))
    raise RegistryError("a registry CSV needs a tax_id or a provider_id column")


def parse_registry(body: bytes, content_type: str) -> RegistryImport:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RegistryError("a registry file must be UTF-8") from None
    if content_type == "text/csv":
        return parse_registry_csv(text)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # also a number of more than 4,300 digits
        raise RegistryError("the registry file is not valid JSON") from None
    return parse_registry_json(data)


def taxpayer_to_dict(t: Taxpayer) -> dict[str, Any]:
    """The import format, so a stored taxpayer parses back with the same checks."""
    return {
        "tax_id": t.tax_id, "name": t.name, "status": t.status,
        "status_since": t.status_since.isoformat() if t.status_since else None,
        "einvoice_stopped": t.einvoice_stopped,
        "stopped_from": t.stopped_from.isoformat() if t.stopped_from else None,
        "stopped_until": t.stopped_until.isoformat() if t.stopped_until else None,
        "cash_register_code_ranges": list(t.cash_register_code_ranges),
        "registrations": [{"template": r.template, "series": r.series,
                           "from": r.valid_from.isoformat(),
                           "to": r.valid_to.isoformat() if r.valid_to else None}
                          for r in t.registrations],
        "status_history": [{"status": c.status,
                            "since": c.since.isoformat() if c.since else None}
                           for c in t.status_history],
    }


def taxpayer_from_dict(data: Mapping[str, Any]) -> Taxpayer:
    """A stored record (`taxpayer_to_dict`), its status history included."""
    return _taxpayer(data, f"taxpayer {data.get('tax_id')!r}", stored=True)


def record_status(stored: Taxpayer | None, imported: Taxpayer) -> Taxpayer:
    """`imported` (a record of a registry file) as the registry keeps it, its status added to
    the statuses `stored` has (see the module docstring):

    - no `status_since`: the status holds on every date; the same status as now keeps its
      recorded start and history, another one replaces them;
    - with `status_since`: the statuses in force before that day are kept, the new one holds
      from it (what was recorded from that day on is superseded); a status equal to the one
      in force the day before just goes on, from its earlier start.
    """
    if stored is None:
        return imported
    since = imported.status_since
    if since is None:
        if imported.status != stored.status:
            return imported
        return replace(imported, status_since=stored.status_since,
                       status_history=stored.status_history)
    before = [c for c in stored.statuses if c.since is None or c.since < since]
    if before and before[-1].status == imported.status:
        since = before.pop().since
    return replace(imported, status_since=since, status_history=tuple(before))


def recorded_taxpayers(stored: Mapping[str, Taxpayer],
                       imported: Iterable[Taxpayer]) -> dict[str, Taxpayer]:
    """The records an import writes, by tax id: each imported record through `record_status`
    over what is stored, in file order (an id given twice builds on its first record)."""
    out: dict[str, Taxpayer] = {}
    for taxpayer in imported:
        out[taxpayer.tax_id] = record_status(
            out.get(taxpayer.tax_id, stored.get(taxpayer.tax_id)), taxpayer)
    return out


def provider_to_dict(p: Provider) -> dict[str, Any]:
    return {"provider_id": p.provider_id, "name": p.name,
            "valid_from": p.valid_from.isoformat(),
            "valid_to": p.valid_to.isoformat() if p.valid_to else None}


def provider_from_dict(data: Mapping[str, Any]) -> Provider:
    return _provider(data, f"provider {data.get('provider_id')!r}")


# --- rules ----------------------------------------------------------------------------------

def seller_violations(taxpayer: Taxpayer | None, *, template: str | None, series: str | None,
                      issued_on: date, cash_register_range: str | None,
                      cfg: RuleConfig) -> list[Violation]:
    """Step 1 (status, stop, code range) and step 2.1 (registration) for one VN invoice,
    each as it stood on `issued_on`, the invoice's day (`Invoice.issued_on`)."""
    if taxpayer is None:
        return [cfg.violation("registry.seller.unknown", "seller_tax_id")]
    out = []
    status = taxpayer.status_on(issued_on)
    if status is not None and status not in cfg.active_statuses:
        out.append(cfg.violation("registry.seller.inactive", "seller_tax_id",
                                 f"status {status} on {issued_on.isoformat()}"))
    if taxpayer.stopped_on(issued_on):
        out.append(cfg.violation("registry.seller.einvoice_stopped", "seller_tax_id",
                                 issued_on.isoformat()))
    if cash_register_range is not None and \
            cash_register_range not in taxpayer.cash_register_code_ranges:
        out.append(cfg.violation("registry.authority_code.range", "authority_code",
                                 cash_register_range))
    if template and series and taxpayer.registrations and not any(
            r.covers(template, series, issued_on) for r in taxpayer.registrations):
        out.append(cfg.violation("registry.registration.missing", "series",
                                 f"{template}{series} on {issued_on}"))
    return out


def provider_violations(provider: Provider | None, received_on: date,
                        cfg: RuleConfig) -> list[Violation]:
    if provider is None:
        return [cfg.violation("registry.provider.unknown", "sender")]
    if not provider.valid_on(received_on):
        return [cfg.violation("registry.provider.contract_invalid", "sender",
                              f"contract {provider.valid_from} to {provider.valid_to or '-'}")]
    return []
