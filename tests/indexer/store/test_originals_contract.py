"""The originals contract: every backend in `STORE_BACKENDS` must pass all of it."""

from __future__ import annotations

from indexer.store.originals import OriginalStore

DOC = "vn:0100109106:1:C22TAA:1"
XML = '<?xml version="1.0" encoding="UTF-8"?><HDon><Ten>Công ty</Ten></HDon>'.encode()


async def test_nothing_kept_is_none(originals: OriginalStore) -> None:
    assert await originals.get(DOC, "PKG-1") is None
    assert await originals.get("", "") is None


async def test_bodies_come_back_byte_for_byte(originals: OriginalStore) -> None:
    every_byte = bytes(range(256)) * 4
    large = b"<HDon>" + b"x" * 300_000 + b"</HDon>"
    await originals.put_many([(DOC, "PKG-1", XML), ("vn:b", "PKG-1", every_byte),
                              ("vn:c", "PKG-1", large)])
    assert await originals.get(DOC, "PKG-1") == XML
    assert await originals.get("vn:b", "PKG-1") == every_byte
    assert await originals.get("vn:c", "PKG-1") == large


async def test_the_first_original_of_a_pair_is_kept(originals: OriginalStore) -> None:
    await originals.put_many([(DOC, "PKG-1", XML), (DOC, "PKG-1", b"<second/>")])
    await originals.put_many([(DOC, "PKG-1", b"<third/>")])
    assert await originals.get(DOC, "PKG-1") == XML


async def test_pairs_are_kept_apart(originals: OriginalStore) -> None:
    await originals.put_many([(DOC, "PKG-1", b"<one/>"), (DOC, "PKG-2", b"<two/>"),
                              ("a:b", "c", b"<three/>")])
    assert await originals.get(DOC, "PKG-1") == b"<one/>"
    assert await originals.get(DOC, "PKG-2") == b"<two/>"
    assert await originals.get(DOC, "PKG-3") is None
    assert await originals.get("PKG-1", DOC) is None
    assert await originals.get("a", "b:c") is None, "no separator joins the pair"


async def test_putting_nothing_is_fine(originals: OriginalStore) -> None:
    await originals.put_many([])
    assert await originals.get(DOC, "PKG-1") is None
