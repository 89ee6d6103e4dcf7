"""Languages of the pages: Vietnamese, English and Simplified Chinese. The language is the
one the person chose (kept in the session), else the first of `Accept-Language` we have,
else English. Texts live in `catalogs/<language>.json`, one key per text; a key missing in
a language falls back to English (a test keeps the three catalogs' keys equal)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Final

LANGUAGES: Final = ("vi", "en", "zh-Hans")
DEFAULT: Final = "en"
#: Each language named in itself, for the switch.
NAMES: Final = {"vi": "Tiếng Việt", "en": "English", "zh-Hans": "简体中文"}
#: `lang` attribute of the page (BCP 47).
_TRADITIONAL = ("zh-hant", "zh-tw", "zh-hk", "zh-mo")


def _language_of(tag: str) -> str | None:
    tag = tag.strip().lower()
    if tag.startswith(_TRADITIONAL):
        return None  # not Simplified: the next choice, or English
    primary = tag.split("-", 1)[0]
    return {"vi": "vi", "en": "en", "zh": "zh-Hans"}.get(primary)


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an `Accept-Language` header (q-values honoured)."""
    choices: list[tuple[float, int, str]] = []
    for n, item in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = item.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        language = _language_of(tag)
        if language is not None and q > 0:
            choices.append((-q, n, language))
    return min(choices)[2] if choices else DEFAULT


class Catalogs:
    """Every language's texts, read once from the package."""

    def __init__(self) -> None:
        folder = resources.files("verify.web") / "catalogs"
        self.texts: dict[str, dict[str, str]] = {
            lang: json.loads((folder / f"{lang}.json").read_text("utf-8")) for lang in LANGUAGES
        }

    def text(self, lang: str, key: str) -> str:
        found = self.texts[lang].get(key)
        if found is None:
            found = self.texts[DEFAULT].get(key, key)
        return found
