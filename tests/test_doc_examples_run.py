"""The example commands of README.md and docs/ run, in reading order, against a real
`invoice-verify serve --demo`, and answer what the docs say they answer.

Reading order is README.md, then the pages in the order README's documentation table lists
them (then any page it does not list). In every fenced `sh` block, each command (with its `\\`
continuations) runs in one bash session, as a reader would paste them: from a folder where
`docs/` and `.venv/` are the repository's and `data/` is the service's data directory, with
`http://127.0.0.1:8080` pointing at the test's service and `INVOICE_KEY` set the way the docs
set it (`export INVOICE_KEY=$(cat data/admin.key)`). `curl` is the real binary.

Each `curl` and `invoice-verify` command is followed in the doc by the line that says what it
answers, which readers see as a comment:

    # -> 200 {"status": "valid"}     HTTP status, then fields the JSON answer holds
    # -> 200 image/png               HTTP status and media type
    # -> 200 as shown below          the next ```json block of the page is the answer
    # -> exit 0 [{"status": "valid"}]   a command's exit code, then its answer (stdout or --out)

Fields compare as a subset: an object may hold more keys than shown, a list matches item by
item unless it ends with "...", a string ending in "..." is a prefix, and `"...": "..."`
stands for more fields.
NDJSON answers are a list of their lines, CSV answers a list of row objects. A block whose
info string says `sh skip: <reason>` (starting the service itself, running forever) is not
run, and is reported here as skipped with that reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.verify.live_server import LiveServer, free_port

ROOT = Path(__file__).parents[1]
DOCS_HOST = "http://127.0.0.1:8080"
CLI = (".venv/bin/invoice-verify", "invoice-verify")
SETUP = ("export", "printf", "cat")
#: Answer fields whose value changes from run to run: shown values are examples, only their
#: presence is checked.
VOLATILE = frozenset(
    {"as_of", "received_at", "first_seen", "last_seen", "gap_id", "decode_ms", "at"}
)
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*(.*)$")
_EXPECT = re.compile(r"^\s*# -> (.*)$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Example:
    """One command of a doc's `sh` block, what it is said to answer, and the block's skip
    reason (None: it runs)."""

    page: str
    line: int
    command: str
    expect: str | None
    skip: str | None  # "" when the block says `skip:` without a reason
    shown: str | None  # the next ```json block of the page, for "as shown below"

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def words(self) -> list[str]:
        return shlex.split(_strip_comment(self.command))

    @property
    def kind(self) -> str:
        first = next((w for w in self.words if not _ASSIGNMENT.match(w)), "")
        if first == "curl":
            return "curl"
        if first in CLI:
            return "cli"
        if not first or first in SETUP:
            return "setup"
        return "other"


def _strip_comment(command: str) -> str:
    """The command without a trailing `# ...` comment (outside quotes)."""
    quote = ""
    for i, char in enumerate(command):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command


def _complete(command: str) -> bool:
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quote still open: the command goes on on the next line
        return False
    return True


def pages() -> list[str]:
    """README.md, then docs/ in the order README's table lists them, then the others."""
    index = (ROOT / "README.md").read_text().partition("\n## Documentation")[2]
    listed = re.findall(r"\]\((docs/[\w.-]+\.md)\)", index)
    rest = sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))
    return ["README.md", *dict.fromkeys(listed), *(p for p in rest if p not in listed)]


def _blocks(text: str) -> Iterator[tuple[int, str, list[str], str | None]]:
    """(first line number, info string, lines, next json block) of each fenced block."""
    lines = text.splitlines()
    found: list[tuple[int, str, list[str]]] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening:
            fence, info = opening.groups()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == fence)
            found.append((i + 2, info.strip(), lines[i + 1 : end]))
            i = end
        i += 1
    for n, (start, info, body) in enumerate(found):
        shown = next(("\n".join(b) for _, inf, b in found[n + 1 :] if inf == "json"), None)
        yield start, info, body, shown


def examples() -> list[Example]:
    out: list[Example] = []
    for page in pages():
        for start, info, body, shown in _blocks((ROOT / page).read_text()):
            language, _, rest = info.partition(" ")
            if language not in {"sh", "bash"}:
                continue
            skip = rest.partition("skip:")[2].strip() if "skip:" in rest else None
            pending: list[str] = []
            for offset, line in enumerate(body):
                expect = _EXPECT.match(line)
                if expect and not pending and out and out[-1].page == page:
                    out[-1] = replace(out[-1], expect=expect.group(1))
                    continue
                if not pending and (not line.strip() or line.lstrip().startswith("#")):
                    continue
                pending.append(line)
                if _complete("\n".join(pending)):
                    command = "\n".join(pending)
                    first = start + offset - len(pending) + 1
                    out.append(Example(page, first, command, None, skip, shown))
                    pending = []
    return out


EXAMPLES = examples()


def test_every_example_command_says_what_it_answers() -> None:
    """Each `curl` and `invoice-verify` command of a block that runs carries its `# -> `
    line; anything else in such a block is setup (`export`, assignments, `printf`); a block
    that cannot run here says why in its info string."""
    assert EXAMPLES
    for example in EXAMPLES:
        if example.skip is not None:
            assert example.skip, f"{example.name}: say why after `skip:`"
            continue
        assert example.kind != "other", (
            f"{example.name}: `{example.command}` cannot run in the docs test: mark its "
            "block `sh skip: <reason>`"
        )
        if example.kind in {"curl", "cli"}:
            assert example.expect, f"{example.name}: no `# -> ` line after `{example.command}`"


# ------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Outcome:
    rc: int
    stdout: str
    stderr: str
    answer: bytes | None  # the body (curl) or the --out file (a command)


def _answer_file(example: Example, folder: Path, n: int) -> tuple[str, Path]:
    """The option to add (curl without `-o`) and where the answer lands."""
    words = example.words
    for flag in ("-o", "--output", "--out"):
        if flag in words:
            return "", folder / words[words.index(flag) + 1]
    if example.kind == "curl":
        return f" -o .answers/{n}.body", folder / ".answers" / f"{n}.body"
    return "", folder / ".answers" / f"{n}.none"


def _script(items: list[Example], folder: Path, base: str) -> str:
    lines = ["cd " + shlex.quote(str(folder))]
    for n, example in enumerate(items):
        command = example.command.replace(DOCS_HOST, base)
        if example.kind == "curl":
            extra, _ = _answer_file(example, folder, n)
            command = (
                _strip_comment(command) + " --max-time 60 -w '%{http_code} %{content_type}'" + extra
            )
        elif example.kind == "cli":
            command = "timeout 120 " + command
        lines += [
            "{ " + command,
            f"}} >.answers/{n}.out 2>.answers/{n}.err </dev/null",
            f"echo $? >.answers/{n}.rc",
        ]
    return "\n".join(lines) + "\n"


@contextmanager
def _serve_demo(folder: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    """`invoice-verify serve --demo` in `folder` (data directory `folder/data`) while the
    block runs, from the moment it listens."""
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "verify", "serve", "--demo", "--port", str(free_port())],
            cwd=folder,
            env={**env, "INVOICE_HOST": "127.0.0.1", "INVOICE_LOG_LEVEL": "WARNING"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while (found := re.search(rb"Running on (http://\S+)", log_path.read_bytes())) is None:
            assert proc.poll() is None, f"serve --demo exited: {log_path.read_text()}"
            assert time.monotonic() < deadline, f"no start: {log_path.read_text()}"
            time.sleep(0.1)
        token = (folder / "data" / "admin.key").read_text().strip()
        yield LiveServer(found.group(1).decode(), token, folder / "data", log_path)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every example that runs, run in order in one bash session; its outcome by name."""
    if shutil.which("curl") is None:
        pytest.skip("the docs' examples run with the curl binary, which is not installed")
    folder = tmp_path_factory.mktemp("reader")
    (folder / "docs").symlink_to(ROOT / "docs")
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / ".answers").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_")}
    items = [e for e in EXAMPLES if e.skip is None]
    with _serve_demo(folder, env) as server:
        script = _script(items, folder, server.base)
        subprocess.run(["bash", "-c", script], env=env, timeout=600, check=True)
        assert server.unhandled_errors() == []
    out = {}
    for n, example in enumerate(items):
        _, answer = _answer_file(example, folder, n)
        out[example.name] = Outcome(
            int((folder / ".answers" / f"{n}.rc").read_text()),
            (folder / ".answers" / f"{n}.out").read_text(errors="replace"),
            (folder / ".answers" / f"{n}.err").read_text(errors="replace"),
            answer.read_bytes() if answer.exists() else None,
        )
    return out


# ----------------------------------------------------------------------------- checking


def _parse(body: bytes, media_type: str) -> Any:
    text = body.decode("utf-8-sig")
    if media_type.startswith("application/json") or text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text)))


def contains(actual: Any, expected: Any, where: str = "answer") -> None:
    """`expected` is a part of `actual` (the rules in this module's docstring)."""
    if expected == "...":
        return
    if isinstance(expected, str) and expected.endswith("...") and isinstance(actual, str):
        assert actual.startswith(expected[:-3]), f"{where}: {actual!r}, not {expected!r}"
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in expected.items():
            if key == "...":
                continue
            assert key in actual, f"{where}: no {key!r} in {sorted(actual)}"
            if key not in VOLATILE:
                contains(actual[key], value, f"{where}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list"
        open_end = bool(expected) and expected[-1] == "..."
        items = expected[:-1] if open_end else expected
        if not open_end:
            assert len(actual) == len(items), f"{where}: {len(actual)} items, not {len(items)}"
        assert len(actual) >= len(items), f"{where}: {len(actual)} items, fewer than shown"
        for n, (got, want) in enumerate(zip(actual, items, strict=False)):
            contains(got, want, f"{where}[{n}]")
        return
    assert actual == expected, f"{where}: {actual!r}, not {expected!r}"


def check(example: Example, outcome: Outcome) -> None:
    said = f"{example.name}: `{example.command}`\nstderr: {outcome.stderr[-2000:]}"
    if example.kind == "setup":
        assert outcome.rc == 0, said
        return
    expect = example.expect or ""
    if example.kind == "curl":
        assert outcome.rc == 0, said
        status, _, media_type = outcome.stdout.partition(" ")
        code, _, rest = expect.partition(" ")
        assert status == code, f"{said}\nanswered {status}: {outcome.answer!r}"[:4000]
    else:
        word, _, rest = expect.partition(" ")
        code, _, rest = rest.partition(" ")
        assert word == "exit", f"{example.name}: `# -> exit N ...` for a command"
        assert outcome.rc == int(code), f"{said}\nstdout: {outcome.stdout[-2000:]}"
        media_type = ""
    rest = rest.strip()
    if not rest:
        return
    if "as shown below" in rest:
        assert example.shown is not None, f"{example.name}: no ```json block below"
        expected = json.loads(example.shown)
    elif rest[0] in "{[":
        expected = json.loads(rest)
    else:
        assert media_type.startswith(rest), f"{said}\nmedia type {media_type!r}, not {rest}"
        return
    body = outcome.answer if outcome.answer is not None else outcome.stdout.encode()
    contains(_parse(body, media_type), expected, example.name)


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(e, id=e.name, marks=[pytest.mark.skip(reason=f"sh skip: {e.skip}")])
        if e.skip is not None
        else pytest.param(e, id=e.name)
        for e in EXAMPLES
    ],
)
def test_the_example_answers_as_the_doc_says(
    example: Example, outcomes: dict[str, Outcome]
) -> None:
    check(example, outcomes[example.name])
