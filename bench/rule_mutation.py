"""Rule mutation check: delete each rule of the rule table in turn and run the rule tests.

    .venv/bin/python -m bench.rule_mutation                 # every rule, about 10 minutes
    .venv/bin/python -m bench.rule_mutation --rules chain.  # the rules whose code starts so
    .venv/bin/python -m bench.rule_mutation --per-site      # each emitting place on its own

For each code of `indexer.rules.RULES`, every place of the code under `indexer/` and
`verify/` that emits it (a string literal equal to the code, outside `indexer/rules.py`) is
disabled in a copy of the source tree, and the rule tests run against the copy (`pytest -x`:
the first failure kills the mutant). A rule whose tests all still pass *survives*: no test
notices that it is gone, which is what issue 17 found for `chain.original.is_replacement`.

How a place is disabled (an AST rewrite of the copy's module):
- the statement holding it (`out.append(cfg.violation("code", ...))`, `raise
  _Rejected("code")`) becomes `pass`;
- a violation that is an element of a list (`return [cfg.violation("code")]`) is removed;
- a comprehension that builds it (`[ItemFinding("code", p) for p in ...]`) yields nothing;
- `problem = "code"`, alone in an `if`/`elif` branch, deletes the branch (its test becomes
  `False`, so the next branch is tried as if it were not there); elsewhere it assigns `None`;
- `found = cfg.violation("code", ...)` deletes the `if` branch around it;
- `"a" if c else "b"` becomes the other branch;
- `return Transition("code")` (a cell of the chain table, `indexer/chain.py`), alone in an
  `if` branch, deletes the branch; among other statements it is deleted, so the next
  statement decides;
- a value of a dict display (`{Kind.REPLACEMENT: "code"}`) loses its entry.
A place none of these fits is listed as not disabled, and the rule's outcome says so.

The copy is made once (the working tree, without `.git`, `.venv` and caches), mutated and
restored in place for each mutant; bytecode is not written, so no stale `.pyc` is run.
Exit status 1 when a rule survives or a place could not be disabled.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.rules import RULES

ROOT = Path(__file__).resolve().parents[1]
#: Where rules are emitted; `indexer/rules.py` only defines them.
SOURCES = ("indexer", "verify")
DEFINITIONS = Path("indexer/rules.py")
#: The rule tests, fastest and most pointed first: `-x` stops at the first failure.
DEFAULT_TESTS = (
    "tests/indexer/test_validate.py",
    "tests/indexer/test_vn.py",
    "tests/indexer/test_cn.py",
    "tests/indexer/test_intake.py",
    "tests/indexer/test_intake_notices.py",
    "tests/indexer/test_legacy_corrections.py",
    "tests/indexer/test_vn_xml_standard.py",
    "tests/indexer/test_signature.py",
    "tests/indexer/test_recheck.py",
    "tests/indexer",
    "tests/verify/test_registry_rules.py",
    "tests/verify/test_xml_packages.py",
    "tests/verify/test_xml_signatures.py",
    "tests/verify/qr",
    "tests/verify/test_domain_intake_*.py",
    "tests/verify/test_domain_chain.py",
    "tests/verify/test_domain_red_letter.py",
)
IGNORED = ("tests/indexer/store",)
_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "node_modules",
    "*.sqlite3",
)


@dataclass(frozen=True, slots=True)
class Site:
    path: Path  # relative to the tree
    line: int


@dataclass(slots=True)
class Mutant:
    rule: str
    sites: list[Site]
    sources: dict[Path, str] = field(default_factory=dict)  # mutated module texts
    undisabled: list[Site] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outcome:
    mutant: Mutant
    verdict: str  # killed | survived | no site | timeout
    seconds: float
    detail: str = ""


# --- finding and disabling the places that emit a rule ---------------------------------------


def _modules(tree: Path) -> Iterator[Path]:
    for source in SOURCES:
        for path in sorted((tree / source).rglob("*.py")):
            relative = path.relative_to(tree)
            if relative != DEFINITIONS:
                yield relative


def _parents(module: ast.Module) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(module) for child in ast.iter_child_nodes(node)}


def _literals(module: ast.Module, code: str) -> list[ast.Constant]:
    return [n for n in ast.walk(module) if isinstance(n, ast.Constant) and n.value == code]


def _swap(holder: ast.AST, old: ast.AST, new: ast.AST) -> bool:
    """Put `new` where `holder` has `old` (a field, or an element of a list field)."""
    for name, value in ast.iter_fields(holder):
        if value is old:
            setattr(holder, name, new)
            return True
        if isinstance(value, list) and any(v is old for v in value):
            setattr(holder, name, [new if v is old else v for v in value])
            return True
    return False


def _disable(literal: ast.Constant, parents: dict[ast.AST, ast.AST]) -> bool:
    """Rewrite the module around `literal` so that the place it stands in emits nothing."""
    parent = parents.get(literal)
    if isinstance(parent, ast.IfExp) and literal in (parent.body, parent.orelse):
        other = parent.orelse if literal is parent.body else parent.body
        return _swap(parents[parent], parent, other)
    if isinstance(parent, ast.Dict) and any(v is literal for v in parent.values):
        at = next(i for i, v in enumerate(parent.values) if v is literal)
        del parent.keys[at], parent.values[at]
        return True
    child: ast.AST = literal
    while not isinstance(child, ast.stmt):
        parent = parents.get(child)
        if parent is None:
            return False
        if isinstance(parent, ast.List) and isinstance(child, ast.Call):
            parent.elts = [e for e in parent.elts if e is not child]
            return True
        if isinstance(parent, ast.ListComp | ast.GeneratorExp) and child is parent.elt:
            parent.generators[-1].ifs.append(ast.Constant(False))
            return True
        child = parent
    statement, holder = child, parents[child]
    if isinstance(statement, ast.Assign) and statement.value is literal:
        if isinstance(holder, ast.If) and len(holder.body) == 1 and holder.body[0] is statement:
            holder.test = ast.Constant(False)
        else:
            statement.value = ast.Constant(None)
        return True
    if isinstance(statement, ast.Assign):  # `found = cfg.violation("code")`, used below
        branch = _enclosing_if(statement, parents)
        if branch is not None:
            branch.test = ast.Constant(False)
            return True
    if isinstance(statement, ast.Expr | ast.Raise):
        return _swap(holder, statement, ast.Pass())
    if isinstance(statement, ast.Return):
        if isinstance(holder, ast.If) and len(holder.body) == 1 and holder.body[0] is statement:
            holder.test = ast.Constant(False)
            return True
        return _drop(holder, statement)
    return False


def _drop(holder: ast.AST, statement: ast.stmt) -> bool:
    """Delete `statement` from the statement list of `holder` that holds it, when others
    remain in it (an empty body is no Python)."""
    for _, value in ast.iter_fields(holder):
        if isinstance(value, list) and len(value) > 1 and any(v is statement for v in value):
            value[:] = [v for v in value if v is not statement]
            return True
    return False


def _enclosing_if(statement: ast.stmt, parents: dict[ast.AST, ast.AST]) -> ast.If | None:
    """The nearest `if` whose body holds `statement`, within its function."""
    child: ast.AST = statement
    while (parent := parents.get(child)) is not None and not isinstance(
        parent, ast.FunctionDef | ast.AsyncFunctionDef
    ):
        if isinstance(parent, ast.If) and any(s is child for s in parent.body):
            return parent
        child = parent
    return None


def find_mutants(tree: Path, *, per_site: bool, prefixes: list[str]) -> list[Mutant]:
    parsed = {path: ast.parse((tree / path).read_text(encoding="utf-8")) for path in _modules(tree)}
    mutants: list[Mutant] = []
    for code in RULES:
        if prefixes and not code.startswith(tuple(prefixes)):
            continue
        sites = [
            Site(path, lit.lineno)
            for path, module in parsed.items()
            for lit in _literals(module, code)
        ]
        groups = [[site] for site in sites] if per_site else [sites]
        mutants.extend(_mutant(tree, code, group) for group in groups)
    return mutants


def _mutant(tree: Path, code: str, sites: list[Site]) -> Mutant:
    mutant = Mutant(code, sites)
    for path in sorted({site.path for site in sites}):
        module = ast.parse((tree / path).read_text(encoding="utf-8"))
        parents = _parents(module)
        wanted = {site.line for site in sites if site.path == path}
        for literal in _literals(module, code):
            if literal.lineno in wanted and not _disable(literal, parents):
                mutant.undisabled.append(Site(path, literal.lineno))
        mutant.sources[path] = ast.unparse(ast.fix_missing_locations(module)) + "\n"
    return mutant


# --- running the tests against a mutant ------------------------------------------------------


def _test_command(tree: Path, tests: list[str]) -> list[str]:
    paths = [str(p.relative_to(tree)) for pattern in tests for p in sorted(tree.glob(pattern))]
    ignored = [f"--ignore={path}" for path in IGNORED]
    return [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-o",
        "addopts=",
        *ignored,
        *dict.fromkeys(paths),
    ]


def run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[int | None, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(
            _test_command(tree, tests),
            cwd=tree,
            env=env,
            timeout=timeout,
            capture_output=True,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, ""
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    summary = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    return done.returncode, (failed or summary or [done.stderr.strip()[-200:]])[0]


def run_mutant(tree: Path, mutant: Mutant, tests: list[str], timeout: float) -> Outcome:
    if not mutant.sites:
        return Outcome(mutant, "no site", 0.0)
    originals = {path: (tree / path).read_text(encoding="utf-8") for path in mutant.sources}
    started = time.monotonic()
    try:
        for path, text in mutant.sources.items():
            (tree / path).write_text(text, encoding="utf-8")
        status, detail = run_tests(tree, tests, timeout)
    finally:
        for path, text in originals.items():
            (tree / path).write_text(text, encoding="utf-8")
    seconds = time.monotonic() - started
    if status is None:
        return Outcome(mutant, "timeout", seconds)
    return Outcome(mutant, "survived" if status == 0 else "killed", seconds, detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rule_mutation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rules", nargs="*", default=[], help="only the rules whose code starts with one of these"
    )
    parser.add_argument(
        "--tests",
        nargs="*",
        default=list(DEFAULT_TESTS),
        help="test paths or globs, run in this order with -x",
    )
    parser.add_argument(
        "--per-site",
        action="store_true",
        help="disable each emitting place on its own, not a rule's all at once",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the mutants (rule, places) and run nothing"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="the tree to copy (default: this working tree)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rule-mutation-") as scratch:
        tree = Path(scratch) / "tree"
        shutil.copytree(args.source, tree, ignore=_COPY_IGNORE)
        if args.list:
            for mutant in find_mutants(tree, per_site=args.per_site, prefixes=args.rules):
                where = ", ".join(f"{s.path}:{s.line}" for s in mutant.sites) or "no site"
                note = f"  NOT DISABLED: {mutant.undisabled}" if mutant.undisabled else ""
                print(f"{mutant.rule:42} {where}{note}")
            return 0
        status, detail = run_tests(tree, args.tests, args.timeout)
        if status != 0:
            print(f"the tests fail before any mutation ({detail}); nothing to measure")
            return 2
        mutants = find_mutants(tree, per_site=args.per_site, prefixes=args.rules)
        print(
            f"{len(mutants)} mutants over {len({m.rule for m in mutants})} rules; tests: "
            f"{' '.join(args.tests)}",
            flush=True,
        )
        outcomes = []
        for mutant in mutants:
            outcome = run_mutant(tree, mutant, args.tests, args.timeout)
            outcomes.append(outcome)
            where = ", ".join(f"{s.path}:{s.line}" for s in mutant.sites) or "-"
            note = f"  NOT DISABLED: {mutant.undisabled}" if mutant.undisabled else ""
            print(
                f"{outcome.verdict:8} {outcome.seconds:6.1f}s  {mutant.rule:42} {where}"
                f"{note}  {outcome.detail[:100] if outcome.verdict == 'killed' else ''}",
                flush=True,
            )
    counts = {
        v: sum(o.verdict == v for o in outcomes)
        for v in ("killed", "survived", "no site", "timeout")
    }
    bad = [o for o in outcomes if o.verdict != "killed" or o.mutant.undisabled]
    print(
        f"\n{len(outcomes)} mutants: "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + f"; {time.monotonic() - started:.0f} s"
    )
    for outcome in bad:
        print(
            f"  {outcome.verdict}: {outcome.mutant.rule}"
            + (f" (not disabled: {outcome.mutant.undisabled})" if outcome.mutant.undisabled else "")
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
