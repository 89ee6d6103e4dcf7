"""Named intake rules: one stable code, one severity, messages in English and Vietnamese.

Every check the indexer applies is a `Rule` registered here, so a rule code in an acceptance
notice always resolves to this table, and rules the spec marks *unconfirmed* can be switched
between `error` (reject), `warning` (accept and say so) and `off` by configuration
(`RuleConfig.severity`, fed from `INVOICE_RULE_SEVERITY`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from indexer.text import text_problem


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    severity: Severity
    message_en: str
    message_vi: str
    spec: str
    confirmed: bool = True
    #: May a deployment change this rule's severity? Unconfirmed rules always may. Rules that
    #: decide an invoice's identity or its chain may not: accepting what they refuse would
    #: index an invoice with a malformed key, or acknowledge one that cannot be stored.
    adjustable: bool = False

    @property
    def configurable(self) -> bool:
        return self.adjustable or not self.confirmed


@dataclass(frozen=True, slots=True)
class Violation:
    code: str
    severity: Severity
    field: str | None
    message: str
    message_vi: str
    spec: str
    detail: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "rule": self.code,
            "severity": self.severity.value,
            "field": self.field,
            "message": self.message,
            "message_vi": self.message_vi,
            "spec": self.spec,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Per-deployment rule choices. Only severities and the clock tolerance are configurable."""

    severity: Mapping[str, Severity] = field(default_factory=dict)
    future_tolerance: timedelta = timedelta(minutes=10)
    #: Taxpayer statuses that may issue, of `indexer.registry.KNOWN_STATUSES` (vn-einvoice §4).
    active_statuses: frozenset[str] = frozenset({"00", "02", "04"})

    def __post_init__(self) -> None:
        unknown = sorted(set(self.severity) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule code(s) in severity overrides: {', '.join(unknown)}")
        fixed = sorted(code for code in self.severity if not RULES[code].configurable)
        if fixed:
            raise ValueError(
                "these rules decide identity or the invoice chain and cannot be "
                f"reconfigured: {', '.join(fixed)}"
            )

    def severity_of(self, code: str) -> Severity:
        return self.severity.get(code, RULES[code].severity)

    def violation(
        self, code: str, field: str | None = None, detail: str | None = None
    ) -> Violation:
        rule = RULES[code]
        return Violation(
            code=code,
            severity=self.severity_of(code),
            field=field,
            message=rule.message_en,
            message_vi=rule.message_vi,
            spec=rule.spec,
            detail=shown_detail(detail),
        )


#: A violation's detail echoes the value it refused; this much of it is enough to find it.
MAX_DETAIL = 200


def shown_detail(detail: str | None) -> str | None:
    """The refused value as a notice may carry it: at most `MAX_DETAIL` characters, and
    escaped (`\\x00`, `\\ud800`) when it holds what no encoder downstream takes (a lone
    surrogate makes the whole notice unserialisable)."""
    if detail is None:
        return None
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 3] + "..."
    return detail if text_problem(detail) is None else ascii(detail)[1:-1]


def parse_severity_overrides(text: str) -> dict[str, Severity]:
    """Parse `code=severity,code=severity` (the `INVOICE_RULE_SEVERITY` format)."""
    overrides: dict[str, Severity] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"rule override {item!r} is not of the form code=severity")
        try:
            overrides[code.strip()] = Severity(value.strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in Severity)
            raise ValueError(f"rule override {item!r}: severity must be one of {choices}") from None
    return overrides


E, W = Severity.ERROR, Severity.WARNING

_ALL = (
    # --- fields common to both schemes -----------------------------------------------------
    Rule(
        "invoice.field.required",
        E,
        "A required field is missing.",
        "Thiếu trường bắt buộc.",
        "formats.md invoice",
    ),
    Rule(
        "invoice.field.invalid",
        E,
        "A field has the wrong type or shape.",
        "Trường dữ liệu sai kiểu hoặc sai định dạng.",
        "formats.md invoice",
    ),
    Rule(
        "invoice.scheme.unknown",
        E,
        "Unknown invoice scheme; expected 'vn' or 'cn'.",
        "Loại hóa đơn không xác định; chỉ chấp nhận 'vn' hoặc 'cn'.",
        "formats.md invoice",
    ),
    Rule(
        "invoice.kind.invalid",
        E,
        "Kind must be original, replacement or adjustment (or red_letter, for a Chinese invoice).",
        "Tính chất hóa đơn phải là gốc, thay thế hoặc điều chỉnh (hoặc red_letter, chỉ cho "
        "hóa đơn Trung Quốc).",
        "vn-einvoice §5.6",
    ),
    Rule(
        "invoice.original.required",
        E,
        "A replacement, adjustment or red-letter invoice must name the original invoice.",
        "Hóa đơn thay thế/điều chỉnh/chữ đỏ phải có thông tin hóa đơn gốc.",
        "vn-einvoice §5.6",
    ),
    Rule(
        "invoice.original.unexpected",
        E,
        "Only replacement, adjustment or red-letter invoices name an original.",
        "Chỉ hóa đơn thay thế/điều chỉnh/chữ đỏ mới có hóa đơn gốc.",
        "vn-einvoice §5.6",
    ),
    Rule(
        "invoice.issued_at.invalid",
        E,
        "Issue time must be an ISO 8601 date-time.",
        "Thời điểm lập phải theo định dạng ISO 8601.",
        "vn-einvoice §1.4",
    ),
    Rule(
        "invoice.issued_at.timezone",
        E,
        "Issue time must carry its UTC offset.",
        "Thời điểm lập phải kèm múi giờ.",
        "vn-einvoice §1.4",
    ),
    Rule(
        "invoice.issued_at.future",
        E,
        "Issue time lies in the future.",
        "Thời điểm lập ở tương lai.",
        "cn-invoice §6.2",
        adjustable=True,
    ),
    Rule(
        "invoice.currency.invalid",
        E,
        "Currency must be an ISO 4217 code.",
        "Đơn vị tiền tệ phải theo mã ISO 4217.",
        "vn-einvoice §5.2 DVTTe",
    ),
    Rule(
        "invoice.amount.invalid",
        E,
        "Amounts must be decimal strings.",
        "Số tiền phải là chuỗi số thập phân.",
        "vn-einvoice §5.5",
    ),
    Rule(
        "invoice.amount.precision",
        E,
        "Amount has more decimal places than allowed.",
        "Số tiền có nhiều chữ số thập phân hơn mức cho phép.",
        "vn-einvoice §5.5; cn-invoice §6.5",
    ),
    Rule(
        "invoice.totals.inconsistent",
        W,
        "Total differs from amount before tax plus tax by more than the tolerance.",
        "Tổng thanh toán khác tổng tiền trước thuế cộng tiền thuế.",
        "vn-einvoice §5.5",
        confirmed=False,
    ),
    # --- Vietnamese identity --------------------------------------------------------------
    Rule(
        "vn.tax_id.invalid",
        E,
        "Tax id is not a valid MST (10 or 13 digits with check digit) or 12-digit personal id.",
        "Mã số thuế không hợp lệ.",
        "vn-einvoice §3",
    ),
    Rule(
        "vn.template.invalid",
        E,
        "Template symbol (KHMSHDon) must be one digit 1-9.",
        "Ký hiệu mẫu số hóa đơn phải là một chữ số từ 1 đến 9.",
        "vn-einvoice §1.1",
    ),
    Rule(
        "vn.original.external_key",
        E,
        "The original of a correction that is not a Decree 123 e-invoice (LHDCLQuan 2-4) "
        "keeps its template and series as written: at most 11 and 8 letters, digits or "
        "'/._-'.",
        "Hóa đơn gốc không theo Nghị định 123 (LHDCLQuan 2-4): ký hiệu mẫu số tối đa 11 ký "
        "tự, ký hiệu hóa đơn tối đa 8 ký tự, chỉ gồm chữ, số hoặc '/._-'.",
        "vn-einvoice §1.1, §5.6",
    ),
    Rule(
        "vn.series.invalid",
        E,
        "Series symbol (KHHDon) must match [CK]YY[TDLMNBGHX][A-Z0-9]{2}.",
        "Ký hiệu hóa đơn không đúng định dạng.",
        "vn-einvoice §1.2",
    ),
    Rule(
        "vn.series.year_out_of_range",
        E,
        "Series year (positions 2-3) must be 21 or later: these series began in 2021.",
        "Năm trong ký hiệu hóa đơn phải từ 21 trở đi.",
        "vn-einvoice §1.2",
    ),
    Rule(
        "vn.series.kind_needs_code",
        E,
        "Cash-register (M) and per-occurrence (L) series are always issued with an authority "
        "code: their series starts with C.",
        "Hóa đơn khởi tạo từ máy tính tiền (M) và hóa đơn cấp theo từng lần phát sinh (L) "
        "luôn có mã của cơ quan thuế: ký hiệu bắt đầu bằng C.",
        "vn-einvoice §1.2, §2.2",
        adjustable=True,
    ),
    Rule(
        "vn.series.template_mismatch",
        E,
        "Delivery-note series letters (N internal transfer, B consignment) go with template 6, "
        "and template 6 with them only.",
        "Ký hiệu N (phiếu xuất kho kiêm vận chuyển nội bộ) và B (phiếu xuất kho hàng gửi bán "
        "đại lý) chỉ dùng với mẫu số 6, và mẫu số 6 chỉ dùng với hai ký hiệu này.",
        "vn-einvoice §1.1, §1.2",
        adjustable=True,
    ),
    Rule(
        "vn.series.letter_f",
        W,
        "Series letter F (reported for 2026) is not confirmed.",
        "Ký tự F trong ký hiệu hóa đơn chưa được xác nhận.",
        "vn-einvoice §1.2",
        confirmed=False,
    ),
    Rule(
        "vn.series.year_mismatch",
        E,
        "Series year (positions 2-3) differs from the issue year.",
        "Năm trong ký hiệu hóa đơn khác năm lập hóa đơn.",
        "vn-einvoice §1.2",
    ),
    Rule(
        "vn.number.out_of_range",
        E,
        "Invoice number (SHDon) must be 1 to 99,999,999.",
        "Số hóa đơn phải từ 1 đến 99.999.999.",
        "vn-einvoice §1.3",
    ),
    Rule(
        "vn.authority_code.required",
        E,
        "A series starting with C requires an authority code.",
        "Hóa đơn có mã phải có mã của cơ quan thuế.",
        "vn-einvoice §1.2, §2.1",
    ),
    Rule(
        "vn.authority_code.invalid",
        E,
        "Authority code (MCCQT) must be 34 hex characters or a cash-register code.",
        "Mã của cơ quan thuế không đúng định dạng.",
        "vn-einvoice §2",
    ),
    Rule(
        "vn.authority_code.unexpected",
        W,
        "A series starting with K carries no authority code.",
        "Hóa đơn không có mã nhưng lại có mã của cơ quan thuế.",
        "vn-einvoice §1.2",
        confirmed=False,
    ),
    Rule(
        "vn.authority_code.cash_register_form",
        E,
        "A cash-register series (M) needs a code of the form M1-YY-XXXXX-00000000001.",
        "Hóa đơn máy tính tiền phải có mã dạng M1-YY-XXXXX-00000000001.",
        "vn-einvoice §2.2",
    ),
    Rule(
        "vn.authority_code.cash_register_series",
        E,
        "A cash-register code (M1-YY-XXXXX-...) belongs to a cash-register series (letter M) "
        "only; other coded invoices carry 34 hex characters.",
        "Mã dạng máy tính tiền (M1-YY-XXXXX-...) chỉ dùng cho ký hiệu M; hóa đơn có mã khác "
        "mang mã 34 ký tự thập lục phân.",
        "vn-einvoice §2.1, §2.2",
    ),
    Rule(
        "vn.authority_code.cash_register_year",
        W,
        "The year in the cash-register code differs from the issue year.",
        "Năm trong mã hóa đơn máy tính tiền khác năm lập.",
        "vn-einvoice §2.2",
        confirmed=False,
    ),
    # --- XML data standard (indexer/vn_xml.py) ------------------------------------------------
    Rule(
        "vn.xml.element_required",
        E,
        "An element the XML data standard requires is missing: PBan, THDon, the seller's "
        "name and address, a goods line or the total in words.",
        "Thiếu thành phần bắt buộc theo chuẩn dữ liệu: PBan, THDon, tên và địa chỉ người bán, "
        "dòng hàng hóa hoặc tổng tiền bằng chữ.",
        "vn-einvoice §5.1-§5.5, §8 step 1.2",
        adjustable=True,
    ),
    Rule(
        "vn.cash_register.currency_default",
        W,
        "A cash-register invoice in the reduced form carries no DVTTe; it is taken as VND.",
        "Hóa đơn máy tính tiền dạng rút gọn không có DVTTe; được hiểu là VND.",
        "vn-einvoice §6.3",
        confirmed=False,
    ),
    # --- seller signature (only with INVOICE_TRUST_ANCHORS; indexer/signature.py) -----------
    Rule(
        "vn.signature.missing",
        E,
        "The invoice carries no seller signature (DSCKS/NBan/Signature); only "
        "cash-register invoices may omit it.",
        "Hóa đơn không có chữ ký số của người bán; chỉ hóa đơn khởi tạo từ máy tính tiền "
        "được phép không có.",
        "vn-einvoice §5.8, §7",
        adjustable=True,
    ),
    Rule(
        "vn.signature.invalid",
        E,
        "The seller's signature does not verify, or does not cover the invoice data (DLHDon).",
        "Chữ ký số của người bán không hợp lệ hoặc không ký trên dữ liệu hóa đơn (DLHDon).",
        "vn-einvoice §5.1, §5.8",
        adjustable=True,
    ),
    Rule(
        "vn.signature.untrusted",
        E,
        "The seller's certificate does not chain to a trusted certification authority, or "
        "was not valid when the invoice was signed.",
        "Chứng thư số của người bán không do tổ chức chứng thực tin cậy cấp hoặc không còn "
        "hiệu lực tại thời điểm ký.",
        "vn-einvoice §5.8",
        adjustable=True,
    ),
    Rule(
        "vn.signature.tax_id_mismatch",
        E,
        "The signing certificate's tax id (subject UID MST:...) differs from the seller's.",
        "Mã số thuế trong chứng thư số khác mã số thuế của người bán.",
        "vn-einvoice §5.8",
        adjustable=True,
    ),
    Rule(
        "vn.signature.json_unsigned",
        E,
        "With trust anchors configured, a Vietnamese invoice must arrive as signed XML: a JSON "
        "invoice carries no seller signature to check.",
        "Khi đã cấu hình tổ chức chứng thực tin cậy, hóa đơn phải được gửi dạng XML có chữ ký "
        "số; hóa đơn dạng JSON không có chữ ký của người bán để kiểm tra.",
        "vn-einvoice §5.8",
        adjustable=True,
    ),
    Rule(
        "vn.signature.package_missing",
        W,
        "A cash-register package carries no taxpayer signature (TDiep/CKSNNT).",
        "Gói hóa đơn máy tính tiền không có chữ ký số của người nộp thuế (CKSNNT).",
        "vn-einvoice §6.3",
        confirmed=False,
    ),
    Rule(
        "vn.signature.package_invalid",
        E,
        "The taxpayer's package signature (CKSNNT) does not verify over DLieu, does not chain "
        "to a trusted certification authority, or names another tax id.",
        "Chữ ký số của người nộp thuế trên gói (CKSNNT) không hợp lệ, không do tổ chức chứng "
        "thực tin cậy cấp hoặc mang mã số thuế khác.",
        "vn-einvoice §6.3, §5.8",
        adjustable=True,
    ),
    # --- Chinese identity -------------------------------------------------------------------
    Rule(
        "cn.code.invalid",
        E,
        "Invoice code must be 10 or 12 digits, or empty for a fully digitalised invoice.",
        "Mã hóa đơn (发票代码) không hợp lệ.",
        "cn-invoice §1",
    ),
    Rule(
        "cn.code.unsupported_type",
        E,
        "The invoice code does not belong to a VAT invoice type we can verify.",
        "Mã hóa đơn không thuộc loại hóa đơn VAT có thể xác minh.",
        "cn-invoice §1.4",
    ),
    Rule(
        "cn.code.type_underived",
        W,
        "The invoice code is not one whose type can be derived; the declared type is used.",
        "Không suy ra được loại hóa đơn từ mã; dùng loại đã khai báo.",
        "cn-invoice §1.2, §3.3",
        confirmed=False,
    ),
    Rule(
        "cn.number.invalid",
        E,
        "Invoice number must be 8 digits with a code, or 20 digits without one.",
        "Số hóa đơn (发票号码) không hợp lệ.",
        "cn-invoice §1.3, §2",
    ),
    Rule(
        "cn.number.year_mismatch",
        W,
        "The first two digits of a 20-digit number differ from the issue year.",
        "Hai chữ số đầu của số hóa đơn 20 chữ số khác năm lập.",
        "cn-invoice §2",
        confirmed=False,
    ),
    Rule(
        "cn.type_code.unknown",
        E,
        "Unknown invoice type code.",
        "Mã loại hóa đơn không xác định.",
        "cn-invoice §3.2",
    ),
    Rule(
        "cn.type_code.mismatch",
        W,
        "The type code differs from the type derived from the code.",
        "Mã loại hóa đơn khác loại suy ra từ mã hóa đơn.",
        "cn-invoice §6.3",
        adjustable=True,
    ),
    Rule(
        "cn.qr.type_mismatch",
        E,
        "The type in the QR code differs from the type its invoice code implies.",
        "Loại hóa đơn trong mã QR khác loại suy ra từ mã hóa đơn.",
        "cn-invoice §1.5, §3.2",
        adjustable=True,
    ),
    Rule(
        "cn.check_code.invalid",
        E,
        "Check code (校验码) must be 20 digits.",
        "Mã kiểm tra (校验码) phải gồm 20 chữ số.",
        "cn-invoice §3.1",
    ),
    Rule(
        "cn.check_code.required",
        E,
        "An ordinary invoice (types 04, 10, 11, 14) carries its 20-digit check code (校验码): "
        "the platform checks these by its last 6 digits.",
        "Hóa đơn thông thường (loại 04, 10, 11, 14) phải có mã kiểm tra 20 chữ số (校验码).",
        "cn-invoice §3.1, §4.1",
        adjustable=True,
    ),
    Rule(
        "cn.void.fully_digitalised",
        E,
        "A fully digitalised (数电) invoice cannot be voided (作废): voiding is for paper "
        "invoices; a 数电 invoice is reversed by a red-letter invoice.",
        "Hóa đơn điện tử toàn diện (数电) không thể hủy (作废); chỉ có thể điều chỉnh bằng hóa "
        "đơn chữ đỏ (红字).",
        "cn-invoice §2, §4.4",
        adjustable=True,
    ),
    Rule(
        "cn.void.electronic",
        E,
        "An electronic invoice of the VAT invoice system (types 08, 10, 14) cannot be voided "
        "(作废): voiding is for paper invoices; an e-invoice is reversed by a red-letter "
        "invoice.",
        "Hóa đơn điện tử của hệ thống hóa đơn VAT (loại 08, 10, 14) không thể hủy (作废); chỉ "
        "có thể điều chỉnh bằng hóa đơn chữ đỏ (红字).",
        "cn-invoice §1.2, §4.4",
        adjustable=True,
    ),
    Rule(
        "cn.red_letter.form_required",
        E,
        "A red-letter invoice (红字发票) carries the number of the 红字信息表 or 红字确认单 it "
        "was issued against (red_form_number, at most 64 characters).",
        "Hóa đơn chữ đỏ (红字发票) phải có số của 红字信息表 / 红字确认单 (red_form_number).",
        "cn-invoice §4.4",
    ),
    Rule(
        "cn.red_letter.form_unexpected",
        E,
        "Only a red-letter invoice carries a 红字信息表 / 确认单 number (red_form_number).",
        "Chỉ hóa đơn chữ đỏ mới có số 红字信息表 / 确认单 (red_form_number).",
        "cn-invoice §4.4",
    ),
    Rule(
        "cn.tax_id.invalid",
        E,
        "Chinese taxpayer id must be 15 to 20 digits or capital letters.",
        "Mã số thuế Trung Quốc phải gồm 15 đến 20 chữ số hoặc chữ in hoa.",
        "cn-invoice §4.4",
    ),
    # --- chain rules (against what the store already holds) -------------------------------
    Rule(
        "chain.duplicate_key",
        E,
        "An invoice with this key has already been accepted.",
        "Hóa đơn với khóa này đã được tiếp nhận.",
        "vn-einvoice §1.3, §8 step 2.2",
    ),
    Rule(
        "chain.duplicate_authority_code",
        E,
        "This authority code is already used by another invoice.",
        "Mã của cơ quan thuế đã được dùng cho hóa đơn khác.",
        "vn-einvoice §2.2",
    ),
    Rule(
        "chain.original.not_found",
        E,
        "The original invoice is not in the index.",
        "Không tìm thấy hóa đơn gốc.",
        "vn-einvoice §8 step 2.3-2.4",
    ),
    Rule(
        "chain.original.not_in_force",
        E,
        "The original invoice is cancelled, already replaced or fully reversed (已全额红冲).",
        "Hóa đơn gốc đã bị hủy, đã bị thay thế hoặc đã bị điều chỉnh giảm toàn bộ (红冲).",
        "vn-einvoice §8 step 2.3-2.4",
    ),
    Rule(
        "chain.original.is_adjustment",
        E,
        "An adjustment invoice cannot be replaced, adjusted or red-lettered.",
        "Không được thay thế, điều chỉnh hoặc lập hóa đơn chữ đỏ cho hóa đơn điều chỉnh.",
        "vn-einvoice §8 step 2.3-2.4",
    ),
    Rule(
        "chain.original.is_replacement",
        E,
        "A replacement invoice cannot be adjusted.",
        "Không được điều chỉnh hóa đơn thay thế.",
        "vn-einvoice §8 step 2.4",
    ),
    Rule(
        "chain.original.adjusted",
        E,
        "An adjusted invoice cannot be replaced nor red-lettered.",
        "Không được thay thế hoặc lập hóa đơn chữ đỏ cho hóa đơn đã bị điều chỉnh.",
        "vn-einvoice §8 step 2.3",
    ),
    Rule(
        "chain.original.is_red_letter",
        E,
        "A red-letter invoice (红字发票) cannot be replaced, adjusted or red-lettered itself.",
        "Không được thay thế, điều chỉnh hoặc lập hóa đơn chữ đỏ cho hóa đơn chữ đỏ.",
        "cn-invoice §4.4",
    ),
    Rule(
        "chain.original.reversed",
        E,
        "A partly reversed invoice (部分红冲) cannot be replaced or adjusted: what is left of "
        "it is reversed by further red-letter invoices.",
        "Không được thay thế hoặc điều chỉnh hóa đơn đã bị điều chỉnh giảm một phần (部分红冲).",
        "cn-invoice §4.4",
    ),
    Rule(
        "chain.red_letter.exceeds_blue",
        E,
        "The red-letter invoices of a blue invoice add up to more than its total: a red total "
        "(absolute) reverses at most what is left of the blue invoice.",
        "Tổng các hóa đơn chữ đỏ vượt quá tổng tiền của hóa đơn gốc (hóa đơn xanh).",
        "cn-invoice §4.4",
    ),
    Rule(
        "chain.red_letter.before_original",
        E,
        "A red-letter invoice is dated before the blue invoice it reverses.",
        "Hóa đơn chữ đỏ có ngày lập trước hóa đơn gốc.",
        "cn-invoice §4.4",
    ),
    Rule(
        "chain.replacement.before_original",
        E,
        "A replacement invoice is dated before the invoice it replaces.",
        "Hóa đơn thay thế có ngày lập trước hóa đơn bị thay thế.",
        "vn-einvoice §5.6, §8 step 2.3",
    ),
    Rule(
        "chain.adjustment.before_original",
        E,
        "An adjustment invoice is dated before the invoice it adjusts.",
        "Hóa đơn điều chỉnh có ngày lập trước hóa đơn bị điều chỉnh.",
        "vn-einvoice §5.6, §8 step 2.4",
    ),
    Rule(
        "chain.cancel.has_adjustment",
        E,
        "An adjusted invoice cannot be cancelled: its adjustment stands on it.",
        "Không được hủy hóa đơn đã bị điều chỉnh.",
        "vn-einvoice §5.6, §8 step 2.5",
    ),
    Rule(
        "chain.cancel.is_replacement",
        E,
        "A replacement invoice cannot be cancelled; an error in it is corrected by a further "
        "replacement.",
        "Không được hủy hóa đơn thay thế; sai sót được xử lý bằng hóa đơn thay thế khác.",
        "vn-einvoice §5.6, §8 step 2.5",
    ),
    Rule(
        "chain.cancel.is_adjustment",
        E,
        "An adjustment invoice cannot be cancelled.",
        "Không được hủy hóa đơn điều chỉnh.",
        "vn-einvoice §5.6, §8 step 2.5",
    ),
    Rule(
        "chain.cancel.has_red_letter",
        E,
        "A partly reversed invoice (部分红冲) cannot be voided (作废): its red-letter invoices "
        "stand on it.",
        "Không được hủy hóa đơn đã có hóa đơn chữ đỏ (部分红冲).",
        "cn-invoice §4.4",
    ),
    Rule(
        "chain.cancel.is_red_letter",
        E,
        "A red-letter invoice (红字发票) cannot be voided: the reversal it records stands.",
        "Không được hủy hóa đơn chữ đỏ.",
        "cn-invoice §4.4",
    ),
    Rule(
        "chain.state.inconsistent",
        E,
        "The invoice's state is not the one its recorded history leads to.",
        "Trạng thái hóa đơn không khớp với lịch sử thay thế/điều chỉnh/hủy đã ghi nhận.",
        "vn-einvoice §5.6, §8 step 2",
    ),
    Rule(
        "chain.original.scheme",
        E,
        "The original invoice must be of the same scheme and seller.",
        "Hóa đơn gốc phải cùng loại và cùng người bán.",
        "vn-einvoice §5.6",
    ),
    # --- registry (step 1 at intake; step 2.1 registration) ---------------------------------
    Rule(
        "registry.seller.unknown",
        E,
        "The seller is not in the taxpayer registry.",
        "Người bán không có trong danh sách người nộp thuế.",
        "formats.md registry file",
        adjustable=True,
    ),
    Rule(
        "registry.seller.inactive",
        E,
        "The seller's tax id is not in an active status (00, 02, 04).",
        "Mã số thuế người bán không ở trạng thái hoạt động (00, 02, 04).",
        "vn-einvoice §4, §8 step 1.1",
        adjustable=True,
    ),
    Rule(
        "registry.seller.einvoice_stopped",
        E,
        "The seller was stopped from using e-invoices on the issue date.",
        "Người bán bị ngừng sử dụng hóa đơn điện tử tại ngày lập.",
        "vn-einvoice §4, §8 step 1.3",
        adjustable=True,
    ),
    Rule(
        "registry.authority_code.range",
        E,
        "The cash-register code is outside the ranges issued to the seller.",
        "Mã hóa đơn máy tính tiền không thuộc ký hiệu được cấp cho người bán.",
        "vn-einvoice §2.2, §8 step 1.7",
        adjustable=True,
    ),
    Rule(
        "registry.registration.missing",
        E,
        "The template and series are not registered for the seller on the issue date.",
        "Mẫu số và ký hiệu hóa đơn chưa được đăng ký cho người bán tại ngày lập.",
        "vn-einvoice §8 step 2.1",
        adjustable=True,
    ),
    Rule(
        "registry.provider.unknown",
        E,
        "The sender is not a registered transmission provider.",
        "Đơn vị truyền nhận không có trong danh sách đăng ký.",
        "vn-einvoice §7, §8 step 1.5",
        adjustable=True,
    ),
    Rule(
        "registry.provider.contract_invalid",
        E,
        "The sender's provider contract is not valid on the receipt date.",
        "Hợp đồng của đơn vị truyền nhận không còn hiệu lực tại ngày nhận.",
        "vn-einvoice §8 step 1.5",
        adjustable=True,
    ),
    Rule(
        "recheck.relation.one_sided",
        E,
        "A relation is not recorded on its other invoice.",
        "Quan hệ thay thế/điều chỉnh không được ghi nhận ở hóa đơn còn lại.",
        "vn-einvoice §5.6, §8 step 2",
    ),
    # --- notices (cancellation) ------------------------------------------------------------
    Rule(
        "notice.kind.invalid",
        E,
        "Notice kind must be 'cancel' or 'explain' (a 04/SS notice that cancels nothing).",
        "Loại thông báo phải là 'cancel' (hủy) hoặc 'explain' (giải trình).",
        "vn-einvoice §6.5 TCTBao",
    ),
    Rule(
        "notice.reason.required",
        E,
        "A cancellation needs a reason.",
        "Thông báo hủy phải có lý do.",
        "vn-einvoice §8 step 2.5",
    ),
    Rule(
        "notice.target.not_found",
        E,
        "The invoice to cancel is not in the index.",
        "Không tìm thấy hóa đơn cần hủy.",
        "vn-einvoice §8 step 2.5",
    ),
    Rule(
        "notice.target.not_in_force",
        E,
        "The invoice is already cancelled, replaced or fully reversed (已全额红冲).",
        "Hóa đơn đã bị hủy, đã bị thay thế hoặc đã bị điều chỉnh giảm toàn bộ (红冲).",
        "vn-einvoice §8 step 2.5",
    ),
)

RULES: Mapping[str, Rule] = {rule.code: rule for rule in _ALL}


def rules_markdown() -> str:
    """docs/rules.md, generated from this table (a test keeps the file equal to it)."""
    lines = [
        "# Intake rules",
        "",
        "Generated from `indexer/rules.py` by `invoice-verify rules --markdown > docs/rules.md`;"
        " a test fails when the two differ.",
        "",
        "| code | default | configurable | spec | message | tiếng Việt |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for rule in RULES.values():
        flag = "yes" + ("" if rule.confirmed else " (unconfirmed)") if rule.configurable else "no"
        lines.append(
            f"| `{rule.code}` | {rule.severity.value} | {flag} | {rule.spec} | "
            f"{rule.message_en} | {rule.message_vi} |"
        )
    from indexer.chain import chain_markdown  # chain reads the model, which reads rules

    return "\n".join(lines) + "\n\n" + chain_markdown()
