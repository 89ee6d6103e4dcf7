"""Every link of the docs resolves, and so does every place the code points into them.

Pages: README.md, bench/README.md and every page under docs/. A relative link must name a
file or folder that exists, and a `#anchor` on a markdown page (or alone, on the same page)
must be the slug GitHub gives one of that page's headings. Code: in the `*.py` files of the
packages, the benchmarks and the tests, a reference written `docs/<page>.md#<anchor>`,
`README.md#<anchor>` or `bench/README.md#<anchor>` must resolve the same way. A page named
without an anchor, or a plain-word mention (README "Outages"), is not held to anything. No
page may send a user to `../shared`, which a clone does not have. And every repository path
a page writes in backticks (`verify/http/params.py`, `docs/formats.md`, `bench/qr.py`)
exists, so a module that moves cannot leave a page naming where it was.

The slug rule and the link pattern are those of `tests/test_docs_examples.py`, which checked
the format and rule pages before this test covered every page."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

from tests.test_docs_examples import _LINK, _anchors

ROOT = Path(__file__).parents[1]
CODE_DIRS = ("verify", "fallback", "indexer", "bench", "tests")
_FENCE = re.compile(r"^(```|~~~)")
#: `docs/<page>.md`, `README.md` or `bench/README.md`, and its `#anchor` if any; not when
#: glued to a longer path (`other/README.md`) or a word.
_CODE_REF = re.compile(r"(?<![\w/.-])((?:bench/)?README\.md|docs/[\w/-]+\.md)(?:#([\w%-]+))?")
#: The repository's folders a page may name a path in (a path of the data directory, such as
#: `data/admin.key`, or of a URL is not one of them).
REPO_DIRS = ("verify", "fallback", "indexer", "bench", "tests", "docs")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
#: A path in a code span: a repository folder, then one or more `/name` parts. Not when it is
#: the tail of a longer path or word (`data/docs/x`, `/docs/x`), nor a path with a
#: placeholder or a pattern in it (`docs/<page>.md`, `docs/examples/ledger-*.csv`).
_REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:" + "|".join(REPO_DIRS) + r")(?:/[\w.-]+)+/?)(?![\w.<{*$/-])"
)


def pages() -> list[Path]:
    """Every page this test holds to its links."""
    return [
        ROOT / "README.md",
        ROOT / "bench" / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
    ]


def prose(markdown: str) -> str:
    """The page without its fenced code blocks: a `# comment` in a shell example is no
    heading, and a `](` in code is no link."""
    kept, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives the page's headings; a repeated heading gets `-1`, `-2`..."""
    out: set[str] = set()
    seen: Counter[str] = Counter()
    for line in prose(markdown).splitlines():
        for slug in _anchors(line):
            out.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return out


def anchor_problem(target: Path, anchor: str) -> str | None:
    """Why `target#anchor` does not resolve, or None when it does."""
    if not target.exists():
        return "no such file"
    if (
        anchor
        and target.suffix == ".md"
        and unquote(anchor) not in slugs(target.read_text(encoding="utf-8"))
    ):
        return f"no heading with the anchor #{anchor}"
    return None


def broken_links(page: Path) -> list[str]:
    """`link: why` for each relative link of `page` that does not resolve."""
    broken = []
    for link in _LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto: ...
            continue
        path, _, anchor = link.partition("#")
        problem = anchor_problem(page.parent / unquote(path) if path else page, anchor)
        if problem:
            broken.append(f"{link}: {problem}")
    return broken


def repo_paths(markdown: str) -> list[str]:
    """The repository paths the page's prose writes in backticks."""
    return [
        path.rstrip(".")
        for span in _CODE_SPAN.findall(prose(markdown))
        for path in _REPO_PATH.findall(span)
    ]


def missing_paths(page: Path) -> list[str]:
    return [p for p in repo_paths(page.read_text(encoding="utf-8")) if not (ROOT / p).exists()]


def code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py"))


def code_refs(text: str) -> list[tuple[str, str]]:
    """(page, anchor) for each reference into a heading of the docs."""
    return [(page, anchor) for page, anchor in _CODE_REF.findall(text) if anchor]


def broken_code_refs(path: Path) -> list[str]:
    broken = []
    for page, anchor in code_refs(path.read_text(encoding="utf-8")):
        problem = anchor_problem(ROOT / page, anchor)
        if problem:
            broken.append(f"{page}#{anchor}: {problem}")
    return broken


def test_every_link_of_the_docs_resolves() -> None:
    broken = {
        str(page.relative_to(ROOT)): links for page in pages() if (links := broken_links(page))
    }
    assert broken == {}


def test_every_reference_from_the_code_into_the_docs_resolves() -> None:
    broken = {
        str(path.relative_to(ROOT)): refs
        for path in code_files()
        if (refs := broken_code_refs(path))
    }
    assert broken == {}


def test_every_repository_path_a_page_names_exists() -> None:
    missing = {
        str(page.relative_to(ROOT)): paths for page in pages() if (paths := missing_paths(page))
    }
    assert missing == {}


def test_no_page_sends_a_user_to_the_shared_folder() -> None:
    """A user's clone has no `../shared`: what they need is in docs/."""
    assert [
        p.relative_to(ROOT) for p in pages() if "../shared" in p.read_text(encoding="utf-8")
    ] == []


def test_the_checks_see_what_is_broken(tmp_path: Path) -> None:
    """The checks can fail: a missing page, a missing anchor, a heading only inside a code
    block, and a code reference to an anchor that is not there."""
    (tmp_path / "other.md").write_text("# Other page\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title: `with code`, and §3.2 (数电票)\n\n"
        "[ok](other.md) [ok](other.md#other-page) [ok](#title-with-code-and-32-数电票)\n"
        "[ok](other.md#twice-1) [ok](https://example.org/x.md#nothing)\n"
        "[gone](missing.md) [bad](other.md#nothing) [fenced](#a-comment)\n\n"
        "```sh\n# a comment\necho '[in code](missing-too.md)'\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nothing: no heading with the anchor #nothing",
        "#a-comment: no heading with the anchor #a-comment",
    ]
    assert code_refs(
        'see README "Outages", docs/outages.md#breakers. and docs/api.md, '
        "(README.md#two-commands) but not other/README.md#x"
    ) == [("docs/outages.md", "breakers"), ("README.md", "two-commands")]
    assert anchor_problem(ROOT / "docs" / "outages.md", "no-such-heading") is not None
    assert repo_paths(
        "`verify/params.py` and `verify/http/params.py`, `docs/formats.md#envelope`,\n"
        "(`bench/qr.py`). Not: `data/admin.key`, `GET /api/v1/docs/x`, `docs/<page>.md`,\n"
        "`docs/examples/ledger-*.csv`, `tests/verify/test_x_{a,b}.py`, `.venv/bin/x`,\n"
        "`verify.http.params`, `invoice-verify verify --batch`, /verify/gone.py outside code.\n"
        "```sh\necho `verify/in_a_block.py`\n```\n"
    ) == ["verify/params.py", "verify/http/params.py", "docs/formats.md", "bench/qr.py"]
    stale = tmp_path / "stale.md"
    stale.write_text("See `verify/params.py`, now `verify/http/params.py`.\n", encoding="utf-8")
    assert missing_paths(stale) == ["verify/params.py"]


def test_the_checks_cover_the_docs_and_the_code() -> None:
    """Not vacuous: the pages, their links and the code's modules are all found."""
    names = {str(p.relative_to(ROOT)) for p in pages()}
    assert {"README.md", "bench/README.md", "docs/outages.md", "docs/formats.md"} <= names
    links = sum(len(_LINK.findall(prose(p.read_text(encoding="utf-8")))) for p in pages())
    assert links >= 100
    assert sum(len(repo_paths(p.read_text(encoding="utf-8"))) for p in pages()) >= 50
    assert {"verify", "fallback", "indexer", "bench", "tests"} == {
        p.relative_to(ROOT).parts[0] for p in code_files()
    }
