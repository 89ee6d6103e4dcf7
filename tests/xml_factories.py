"""Build Vietnamese XML packages (TDiep envelope, HDon invoices, 04/SS notices) from the same
dicts as `tests.factories`, so XML and JSON tests describe the same invoices."""

from __future__ import annotations

from typing import Any

from lxml import etree
from lxml.builder import E


def _opt(tag: str, value: Any) -> list[etree._Element]:
    return [] if value is None else [E(tag, str(value))]


def hdon(inv: dict[str, Any], *, misplace_code: bool = False) -> etree._Element:
    issued = inv.get("issued_at")
    nlap = issued[:10] if issued and issued.endswith("T00:00:00+07:00") else (
        issued[:19] if issued else None)
    general = E.TTChung(E.PBan("2.0.1"), E.THDon("Hóa đơn giá trị gia tăng"),
                        *_opt("KHMSHDon", inv.get("template")), *_opt("KHHDon", inv.get("series")),
                        *_opt("SHDon", inv.get("number")), *_opt("NLap", nlap),
                        *_opt("DVTTe", inv.get("currency")))
    if inv.get("original"):
        original = inv["original"]
        general.append(E.TTHDLQuan(E.TCHDon("1" if inv.get("kind") == "replacement" else "2"),
                                   E.LHDCLQuan("1"), E.KHMSHDCLQuan(original["template"]),
                                   E.KHHDCLQuan(original["series"]),
                                   E.SHDCLQuan(str(original["number"])),
                                   E.NLHDCLQuan("2022-05-01")))
    if misplace_code and inv.get("authority_code"):
        general.append(E.MCCQT(inv["authority_code"]))
    seller = E.NBan(*_opt("Ten", inv.get("seller_name")), *_opt("MST", inv.get("seller_tax_id")),
                    E.DChi("Số 1 Tràng Tiền, Hà Nội"))
    buyer = E.NMua(*_opt("Ten", inv.get("buyer_name")), *_opt("MST", inv.get("buyer_tax_id")),
                   E.DChi("Quận 1, TP Hồ Chí Minh"))
    totals = E.TToan(*_opt("TgTCThue", inv.get("amount_before_tax")),
                     *_opt("TgTThue", inv.get("tax_amount")),
                     *_opt("TgTTTBSo", inv.get("total_amount")), E.TgTTTBChu("Một triệu"))
    lines = E.DSHHDVu(E.HHDVu(E.TChat("1"), E.STT("1"), E.THHDVu("Dịch vụ tư vấn"),
                              E.ThTien(str(inv.get("amount_before_tax", "0"))), E.TSuat("10%")))
    data = E.DLHDon(general, E.NDHDon(seller, buyer, lines, totals), Id="data")
    root = E.HDon(data)
    if inv.get("authority_code") and not misplace_code:
        root.append(E.MCCQT(inv["authority_code"], Id="code"))
    root.append(E.DSCKS(E.NBan()))
    return root


def tbao(seller: str, rows: list[dict[str, Any]]) -> etree._Element:
    listed = [E.HDon(E.STT(str(n)), E.KHMSHDon(r["template"]), E.KHHDon(r["series"]),
                     E.SHDon(str(r["number"])), E.Ngay("2022-05-15"), E.LADHDDT("1"),
                     E.TCTBao(r.get("nature", "1")), E.LDo(r.get("reason", "Sai người mua")))
              for n, r in enumerate(rows, start=1)]
    return E.TBao(E.DLTBao(E.PBan("2.0.1"), E.MSo("04/SS-HĐĐT"), E.Loai("1"), E.MST(seller),
                           E.So("04SS-2022-07"), E.DSHDon(*listed)))


def xml_package(invoices: list[dict[str, Any]], *, package_id: str = "V0101300842AB12CD",
                sender: str = "0101300842", count: int | None = None,
                notices: list[etree._Element] | None = None,
                misplace_code: bool = False) -> bytes:
    notices = notices or []
    n_notices = sum(
        1 for n in notices for row in n.iter("HDon") if row.findtext("TCTBao") == "1")
    seller = invoices[0].get("seller_tax_id", "") if invoices else ""
    envelope = E.TDiep(
        E.TTChung(E.PBan("2.0.1"), E.MNGui(sender), E.MNNhan("TCT"), E.MLTDiep("206"),
                  E.MTDiep(package_id), E.MST(seller),
                  E.SLuong(str(len(invoices) + n_notices if count is None else count))),
        E.DLieu(*[hdon(i, misplace_code=misplace_code) for i in invoices], *notices))
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
