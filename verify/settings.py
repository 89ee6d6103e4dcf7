"""Settings: one frozen dataclass read from the environment, here and nowhere else."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from indexer.package import MAX_ITEMS
from indexer.registry import KNOWN_STATUSES
from indexer.rules import RuleConfig, parse_severity_overrides
from indexer.signature import TrustAnchorError, TrustAnchors
from verify.web.settings import WebSettings, web_settings


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


@dataclass(frozen=True, slots=True)
class KeyBudget:
    """A key's own token bucket: a steady rate and a burst (docs/access.md)."""

    per_minute: int
    burst: int


#: Each role's key budget by default, sized for its real use (docs/access.md has the
#: reasoning): a provider drains a backlog of packages back to back; a scanner or a business
#: system verifies one invoice at a time, or a batch whose rows each spend a token; an
#: auditor's reports and batches are larger still. Every batch row and ledger line spends
#: the misses and per-invoice budgets below as well, which are what stop enumeration.
ROLE_KEY_BUDGETS = {
    "intake": KeyBudget(per_minute=3000, burst=2000),
    "verify": KeyBudget(per_minute=1200, burst=1000),
    "audit": KeyBudget(per_minute=3000, burst=5000),
    "admin": KeyBudget(per_minute=6000, burst=5000),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits (token buckets). Per key: a steady rate with a burst, per role
    (`ROLE_KEY_BUDGETS`). Per invoice: how often one invoice may be verified per day by
    anyone (the national platforms cap this too), one bucket per invoice whatever key form
    asks, of which one key may spend `invoice_per_key_per_day` (the invoice's parties are
    never locked out by others: verify/access/service.py `settle`). Misses: not_found answers
    per key per hour, which is what enumeration produces. Auth failures: per client address
    per minute, against brute force. Receipts: signed per key per hour, the hour's worth as
    its burst (docs/receipts.md)."""

    key_budgets: tuple[tuple[str, KeyBudget], ...] = tuple(ROLE_KEY_BUDGETS.items())
    invoice_per_day: int = 100
    invoice_per_key_per_day: int = 25
    misses_per_hour: int = 600
    auth_failures_per_minute: int = 30
    receipts_per_hour: int = 36_000

    def key_budget(self, role: str) -> KeyBudget:
        return dict(self.key_budgets)[role]


def _limits(env: Mapping[str, str]) -> Limits:
    """`INVOICE_RATE_<ROLE>_PER_MINUTE` / `_BURST` per role; `INVOICE_RATE_KEY_PER_MINUTE` /
    `INVOICE_RATE_KEY_BURST` set every role's at once (a role's own variable wins)."""
    budgets = []
    for role, default in ROLE_KEY_BUDGETS.items():
        per_minute = _int(env, "INVOICE_RATE_KEY_PER_MINUTE", default.per_minute, minimum=1)
        burst = _int(env, "INVOICE_RATE_KEY_BURST", default.burst, minimum=1)
        name = f"INVOICE_RATE_{role.upper()}"
        budgets.append(
            (
                role,
                KeyBudget(
                    per_minute=_int(env, f"{name}_PER_MINUTE", per_minute, minimum=1),
                    burst=_int(env, f"{name}_BURST", burst, minimum=1),
                ),
            )
        )
    per_day = _int(env, "INVOICE_RATE_INVOICE_PER_DAY", 100, minimum=1)
    return Limits(
        key_budgets=tuple(budgets),
        invoice_per_day=per_day,
        # A quarter of the invoice's day, but never below 25 (or the whole day if smaller).
        invoice_per_key_per_day=_int(
            env,
            "INVOICE_RATE_INVOICE_PER_KEY_PER_DAY",
            max(per_day // 4, min(per_day, 25)),
            minimum=1,
        ),
        misses_per_hour=_int(env, "INVOICE_RATE_MISSES_PER_HOUR", 600, minimum=1),
        auth_failures_per_minute=_int(env, "INVOICE_RATE_AUTH_FAILURES_PER_MINUTE", 30, minimum=1),
        receipts_per_hour=_int(env, "INVOICE_RATE_RECEIPTS_PER_HOUR", 36_000, minimum=1),
    )


#: What the Chinese QR's amount field is compared with (verify/qr/payload.py `CnAmount`).
QR_CN_AMOUNT_CHOICES = frozenset({"auto", "amount", "total_amount", "off"})


@dataclass(frozen=True, slots=True)
class QrSettings:
    """QR photo decoding. Uploads are capped in bytes and in pixels (the header is checked
    before decoding, so a bomb costs nothing); decoding runs on `workers` threads and at most
    `max_pending` photos may wait or run at once, beyond which the endpoint answers 503, so
    a burst of photos queues neither memory nor time in front of lookups. `cn_amount`: see
    docs/qr.md#amount-of-a-chinese-qr (the meaning of the amount field is unconfirmed)."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    workers: int = 2
    max_pending: int = 8
    cn_amount: str = "auto"
    #: Bytes a decoded upload may take (width x height x bytes per pixel), checked from the
    #: header before any pixel is decoded: a 7071x7071 RGBA PNG is 200 MB decoded.
    max_decoded_bytes: int = 160 * 1024 * 1024


def _qr_settings(env: Mapping[str, str]) -> QrSettings:
    cn_amount = env.get("INVOICE_QR_CN_AMOUNT", "auto").strip().lower() or "auto"
    if cn_amount not in QR_CN_AMOUNT_CHOICES:
        raise SettingsError(
            f"INVOICE_QR_CN_AMOUNT={cn_amount!r}: use one of "
            f"{', '.join(sorted(QR_CN_AMOUNT_CHOICES))}"
        )
    return QrSettings(
        max_upload_bytes=_int(env, "INVOICE_QR_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024),
        max_pixels=_int(env, "INVOICE_QR_MAX_PIXELS", 50_000_000, minimum=10_000),
        workers=_int(env, "INVOICE_QR_WORKERS", 2, minimum=1),
        max_pending=_int(env, "INVOICE_QR_MAX_PENDING", 8, minimum=1),
        cn_amount=cn_amount,
        max_decoded_bytes=_int(
            env, "INVOICE_QR_MAX_DECODED_BYTES", 160 * 1024 * 1024, minimum=1024 * 1024
        ),
    )


@dataclass(frozen=True, slots=True)
class FallbackSettings:
    """Health, circuit breaking and outage rules (docs/outages.md#breakers). The breaker around the
    primary (and the one around the replica) opens after `breaker_failures` failed calls in a
    row and lets a trial call through after `breaker_open_seconds`; `primary_timeout_ms`
    bounds one read of the primary on the request path; the health monitor probes every
    `probe_interval_seconds`. `intake_lag_hours`: how long an invoice may take to reach us
    after it was issued (after an upstream outage: after the window's end).

    Intake and reconciliation: `primary_write_timeout_ms` bounds applying one package to the
    primary (beyond it the package stays queued in the journal); the reconciler checks for
    work every `reconcile_interval_seconds` and applies the journal `reconcile_batch_entries`
    at a time, fewer once their bodies reach `reconcile_batch_bytes`; a gap the primary
    still cannot answer is resolved `missing` once `gap_grace_hours` have passed since it
    was first seen; callbacks are tried `callback_max_attempts` times,
    `callback_backoff_seconds` apart, doubling, signed with `callback_secret` when set, and
    never sent to loopback or private addresses unless `callback_allow_private`
    (`fallback/callbacks.py`); applied journal entries are kept `journal_retention_days`
    (re-posts answered from them); a journal entry that fails to apply for any reason but
    the primary being unavailable is quarantined after `journal_max_attempts` tries
    (docs/journal.md).
    `replica_warm_up`: fill the in-memory replica from the primary at start.

    Misses: for `miss_memory_ms` a requester's repeated miss of a key whose open gap is on
    disk is answered with it at once (its count written a fraction of a second later), the
    unconfirmed answer of a key is built once, and a key the replica lacked is not read
    again (docs/outages.md#misses-under-load; 0: never). A gap's memory lasts up to
    `miss_memory_quiet_s` while no other connection writes the ledger's file (one process
    alone on its data directory; never with the shared ledger; 0: the moment only).
    """

    breaker_failures: int = 5
    breaker_open_seconds: int = 30
    primary_timeout_ms: int = 2000
    probe_interval_seconds: int = 5
    intake_lag_hours: int = 24
    primary_write_timeout_ms: int = 30_000
    reconcile_interval_seconds: int = 5
    reconcile_batch_entries: int = 2000
    reconcile_batch_bytes: int = 16 * 1024 * 1024
    gap_grace_hours: int = 24
    callback_max_attempts: int = 8
    callback_backoff_seconds: int = 30
    callback_secret: str | None = field(default=None, repr=False)
    callback_allow_private: bool = False
    journal_retention_days: int = 7
    journal_max_attempts: int = 3
    replica_warm_up: bool = True
    miss_memory_ms: int = 1000
    miss_memory_quiet_s: int = 600


#: A signing secret shorter than this is refused (HMAC-SHA256 keys: 32 bytes or more).
MIN_CALLBACK_SECRET = 32


def _callback_secret(env: Mapping[str, str]) -> str | None:
    secret = env.get("INVOICE_CALLBACK_SECRET", "").strip()
    if secret and len(secret) < MIN_CALLBACK_SECRET:
        raise SettingsError(
            f"INVOICE_CALLBACK_SECRET must be at least {MIN_CALLBACK_SECRET} "
            "characters (e.g. `openssl rand -hex 32`)"
        )
    return secret or None


def _fallback_settings(env: Mapping[str, str]) -> FallbackSettings:
    return FallbackSettings(
        breaker_failures=_int(env, "INVOICE_BREAKER_FAILURES", 5, minimum=1),
        breaker_open_seconds=_int(env, "INVOICE_BREAKER_OPEN_SECONDS", 30, minimum=1),
        primary_timeout_ms=_int(env, "INVOICE_PRIMARY_TIMEOUT_MS", 2000, minimum=10),
        probe_interval_seconds=_int(env, "INVOICE_PROBE_INTERVAL_SECONDS", 5, minimum=1),
        intake_lag_hours=_int(env, "INVOICE_INTAKE_LAG_HOURS", 24),
        primary_write_timeout_ms=_int(env, "INVOICE_PRIMARY_WRITE_TIMEOUT_MS", 30_000, minimum=100),
        reconcile_interval_seconds=_int(env, "INVOICE_RECONCILE_INTERVAL_SECONDS", 5, minimum=1),
        reconcile_batch_entries=_int(env, "INVOICE_RECONCILE_BATCH_ENTRIES", 2000, minimum=1),
        reconcile_batch_bytes=_int(
            env, "INVOICE_RECONCILE_BATCH_BYTES", 16 * 1024 * 1024, minimum=1
        ),
        gap_grace_hours=_int(env, "INVOICE_GAP_GRACE_HOURS", 24),
        callback_max_attempts=_int(env, "INVOICE_CALLBACK_MAX_ATTEMPTS", 8, minimum=1),
        callback_backoff_seconds=_int(env, "INVOICE_CALLBACK_BACKOFF_SECONDS", 30, minimum=1),
        callback_secret=_callback_secret(env),
        callback_allow_private=_flag(env, "INVOICE_CALLBACK_ALLOW_PRIVATE"),
        journal_retention_days=_int(env, "INVOICE_JOURNAL_RETENTION_DAYS", 7, minimum=1),
        journal_max_attempts=_int(env, "INVOICE_JOURNAL_MAX_ATTEMPTS", 3, minimum=1),
        replica_warm_up=_flag(env, "INVOICE_REPLICA_WARM_UP", default=True),
        miss_memory_ms=_int(env, "INVOICE_MISS_MEMORY_MS", 1000),
        miss_memory_quiet_s=_int(env, "INVOICE_MISS_MEMORY_QUIET_S", 600),
    )


def _flag(environ: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise SettingsError(f"{name}={raw!r}: use 1/0, true/false, yes/no or on/off")


def _receipt_key_file(env: Mapping[str, str]) -> Path | None:
    raw = env.get("INVOICE_RECEIPT_KEY_FILE", "").strip()
    if not raw:
        return None
    if Path(raw).is_dir():
        raise SettingsError(f"INVOICE_RECEIPT_KEY_FILE={raw!r} is a directory; name the key file")
    return Path(raw)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What INVOICE_EVENT_LOOP may name.
EVENT_LOOPS = ("uvloop", "asyncio")
#: `serve`'s event loop when INVOICE_EVENT_LOOP is not set (bench/README.md#the-event-loop-uvloop).
DEFAULT_EVENT_LOOP = "asyncio"


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 172.18.0.5, fd00::/8`: addresses and networks, comma-separated."""
    networks = []
    for entry in (part.strip() for part in env.get(name, "").split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {entry!r} is not an IP address or network") from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    es_url: str | None = None
    es_index_prefix: str = "invoices"
    redis_url: str | None = None
    redis_namespace: str = "inv:v1"
    max_package_bytes: int = 10 * 1024 * 1024
    max_package_items: int = MAX_ITEMS
    #: Seconds a request body (package, photo, batch, ledger) may take to arrive in full;
    #: a slower client is answered 408 and holds nothing longer (docs/limits.md).
    body_read_timeout_s: int = 60
    log_level: str = "INFO"
    log_format: str = "json"
    rules: RuleConfig = field(default_factory=RuleConfig)
    insecure_local: bool = False
    limits: Limits = field(default_factory=Limits)
    audit_retention_days: int = 730
    #: PEM file or directory of CA certificates seller signatures must chain to; None = the
    #: signature rules are off (an empty trust store would reject every real invoice).
    trust_anchors: Path | None = None
    #: The receipts' signing key set, a file mounted into every process (docs/receipts.md);
    #: None: the data directory's `receipt-keys.json`, or the distributed store's.
    receipt_key_file: Path | None = None
    qr: QrSettings = field(default_factory=QrSettings)
    fallback: FallbackSettings = field(default_factory=FallbackSettings)
    #: The pages for people (verify/web, docs/pages.md).
    web: WebSettings = field(default_factory=WebSettings)
    #: This process's intake journal in the data directory: `journal.sqlite3` for one
    #: process; `serve` claims `journal-<n>.sqlite3` for another process or worker sharing
    #: the directory (verify/cli/workers.py, docs/deployment.md#several-workers-on-one-host).
    journal_file: str = "journal.sqlite3"
    #: Chinese lookups must carry the 查验 platform's second factor for the invoice's type
    #: (date + amount before tax, last 6 of the check code, or total) to see amounts and
    #: parties (fallback/lookup/second_factor.py, docs/cn-rules.md §4.1).
    cn_second_factor: bool = True
    #: Years back the authority verifies invoices (cn-rules §4: the last 5 years); an
    #: older invoice is answered `outside_window` (docs/lookups.md). 0: no window.
    verification_window_years: int = 5
    #: Watches (docs/watches.md): how many a key may hold in force, and the longest period
    #: one may be made for, in days.
    watches_per_key: int = 1000
    watch_max_days: int = 366
    #: Proxies whose X-Forwarded-For is believed for the client's address (the audit
    #: trail, the failed-auth limit): compose's balancer network. None by default
    #: (verify/http/clients.py, docs/configuration.md).
    trusted_proxies: tuple[Network, ...] = ()
    #: The event loop of `serve`: `uvloop` (libuv) or Python's own `asyncio`
    #: (verify/cli/workers.py: event_loop; bench/README.md has the measurement).
    event_loop: str = DEFAULT_EVENT_LOOP
    #: `GET /invoices/lookup` answers again with the answer it built for the same key and
    #: query while nothing it was built from can have changed, budgets and audit still per
    #: request (verify/lookup/reuse.py, docs/lookups.md#answers-reused); a replica answer
    #: while the replica's generation read at most `answer_reuse_replica_ms` ago is
    #: unchanged, or that long when it is not known (0: never).
    answer_reuse: bool = True
    answer_reuse_replica_ms: int = 1000

    @property
    def watches_path(self) -> Path:
        return self.data_dir / "watches.sqlite3"

    @property
    def originals_path(self) -> Path:
        return self.data_dir / "originals.sqlite3"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite3"

    @property
    def access_path(self) -> Path:
        return self.data_dir / "access.sqlite3"

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin.key"

    @property
    def gaps_path(self) -> Path:
        return self.data_dir / "gaps.sqlite3"

    @property
    def journal_path(self) -> Path:
        return self.data_dir / self.journal_file

    @property
    def outages_path(self) -> Path:
        return self.data_dir / "outages.sqlite3"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "invoices.sqlite3"

    def load_trust_anchors(self) -> TrustAnchors:
        """Read INVOICE_TRUST_ANCHORS once (at start-up); unusable files stop the start."""
        if self.trust_anchors is None:
            return TrustAnchors.none()
        try:
            return TrustAnchors.load(self.trust_anchors)
        except TrustAnchorError as exc:
            raise SettingsError(f"INVOICE_TRUST_ANCHORS: {exc}") from None

    @property
    def backend(self) -> str:
        return "elasticsearch" if self.es_url else "sqlite"

    def with_overrides(self, **changes: Any) -> Settings:
        """Apply CLI options given explicitly (None means: keep the environment's value)."""
        updated = replace(self, **{k: v for k, v in changes.items() if v is not None})
        updated.check()
        return updated

    def check(self) -> None:
        if self.insecure_local and self.host not in LOOPBACK_HOSTS:
            raise SettingsError(
                "insecure local mode (no API keys) only listens on loopback; "
                f"INVOICE_HOST={self.host} is not loopback"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        log_format = env.get("INVOICE_LOG_FORMAT", "json").lower()
        if log_format not in {"json", "text"}:
            raise SettingsError(f"INVOICE_LOG_FORMAT={log_format!r}: use json or text")
        try:
            severity = parse_severity_overrides(env.get("INVOICE_RULE_SEVERITY", ""))
            statuses = frozenset(
                s.strip()
                for s in env.get("INVOICE_ACTIVE_TAXPAYER_STATUSES", "00,02,04").split(",")
                if s.strip()
            )
            if not statuses or not statuses <= KNOWN_STATUSES:
                raise SettingsError(
                    "INVOICE_ACTIVE_TAXPAYER_STATUSES must list status codes "
                    f"among {', '.join(sorted(KNOWN_STATUSES))}"
                )
            rules = RuleConfig(
                severity=severity,
                active_statuses=statuses,
                future_tolerance=timedelta(
                    seconds=_int(env, "INVOICE_FUTURE_TOLERANCE_SECONDS", 600)
                ),
            )
        except ValueError as exc:
            raise SettingsError(f"INVOICE_RULE_SEVERITY: {exc}") from None
        limits = _limits(env)
        settings = cls(
            host=env.get("INVOICE_HOST", "127.0.0.1"),
            port=_int(env, "INVOICE_PORT", 8080, minimum=1),
            data_dir=Path(env.get("INVOICE_DATA_DIR", "data")),
            es_url=env.get("INVOICE_ES_URL") or None,
            es_index_prefix=env.get("INVOICE_ES_INDEX_PREFIX") or "invoices",
            redis_url=env.get("INVOICE_REDIS_URL") or None,
            redis_namespace=env.get("INVOICE_REDIS_NAMESPACE") or "inv:v1",
            max_package_bytes=_int(
                env, "INVOICE_MAX_PACKAGE_BYTES", 10 * 1024 * 1024, minimum=1024
            ),
            max_package_items=_int(env, "INVOICE_MAX_PACKAGE_ITEMS", MAX_ITEMS, minimum=1),
            body_read_timeout_s=_int(env, "INVOICE_BODY_READ_TIMEOUT_S", 60, minimum=1),
            log_level=env.get("INVOICE_LOG_LEVEL", "INFO").upper(),
            log_format=log_format,
            rules=rules,
            insecure_local=_flag(env, "INVOICE_INSECURE_LOCAL"),
            limits=limits,
            audit_retention_days=_int(env, "INVOICE_AUDIT_RETENTION_DAYS", 730, minimum=1),
            trust_anchors=Path(env["INVOICE_TRUST_ANCHORS"])
            if env.get("INVOICE_TRUST_ANCHORS", "").strip()
            else None,
            receipt_key_file=_receipt_key_file(env),
            qr=_qr_settings(env),
            fallback=_fallback_settings(env),
            web=web_settings(env),
            cn_second_factor=_flag(env, "INVOICE_CN_SECOND_FACTOR", default=True),
            verification_window_years=_int(env, "INVOICE_VERIFICATION_WINDOW_YEARS", 5),
            watches_per_key=_int(env, "INVOICE_WATCHES_PER_KEY", 1000, minimum=1),
            watch_max_days=_int(env, "INVOICE_WATCH_MAX_DAYS", 366, minimum=1),
            trusted_proxies=_networks(env, "INVOICE_TRUSTED_PROXIES"),
            event_loop=_choice(env, "INVOICE_EVENT_LOOP", EVENT_LOOPS, DEFAULT_EVENT_LOOP),
            answer_reuse=_flag(env, "INVOICE_ANSWER_REUSE", default=True),
            answer_reuse_replica_ms=_int(env, "INVOICE_ANSWER_REUSE_REPLICA_MS", 1000),
        )
        settings.check()
        return settings
