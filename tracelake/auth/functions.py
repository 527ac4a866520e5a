"""Which functions untrusted SQL may call: the reviewed allow-list in ``sql_functions.txt``.

A name passes when ClickHouse would resolve it to a listed function: the exact name, any case of a
name ClickHouse matches in any case (``COUNT``), an alias listed beside its target (``lcase``), or
a listed aggregate function with combinators (``sumIf``, ``countDistinct``, ``uniqExactStateIf``).
Everything else is refused, so a function added by a new ClickHouse version stays out until
someone reviews it and adds it to the list.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from tracelake.store.base import Params, StoreError

LIST_PATH = Path(__file__).with_name("sql_functions.txt")
AGGREGATE_SECTIONS = ("Aggregate Functions", "Window Functions")
DOCS_ANCHOR = "docs/security.md#sql-surface"

# Table functions untrusted SQL may read from: computed data only, or a subquery (view) whose own
# tables and functions are checked like any other.
SAFE_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generateRandom", "values",
                                  "view", "format", "null", "generate_series", "generateSeries", "primes"})

# Kinds of EXPLAIN AST lines whose functions all show as `Function` lines of their own. Any other
# kind is refused: `SELECT * APPLY(file) FROM ...` parses to a ColumnsApplyTransformer line that
# does not name the function it applies (found while testing), and SETTINGS to a Set line.
AST_NODES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExpressionList", "Function",
    "Identifier", "Literal", "QueryParameter", "Asterisk", "QualifiedAsterisk", "ColumnsRegexpMatcher",
    "ColumnsListMatcher", "ColumnsTransformerList", "ColumnsExceptTransformer", "ColumnsReplaceTransformer",
    "ColumnsReplaceTransformer::Replacement", "TablesInSelectQuery", "TablesInSelectQueryElement",
    "TableExpression", "TableIdentifier", "TableJoin", "ArrayJoin", "Subquery", "WithElement",
    "WindowDefinition", "WindowListElement", "OrderByElement", "InterpolateElement", "SampleRatio",
    "DescribeQuery", "ShowTables",
})
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
_LINE = re.compile(r"^( *)(\S+)(?: (.*))?$")
# `Function name`, then ` (alias a)` and ` (children n)` when present; nothing else may follow.
_FUNCTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?: \(alias [^\n]*\))?(?: \(children \d+\))?$")


class Forbidden(StoreError):
    """Untrusted SQL uses something its caller may not (said plainly, nothing run)."""


@dataclass(frozen=True)
class Node:
    depth: int
    kind: str
    text: str  # what follows the kind: a function's or table's name, a literal...


@dataclass(frozen=True)
class FunctionList:
    exact: frozenset[str]
    any_case: frozenset[str]  # lower-cased names ClickHouse accepts in any case
    aggregates: frozenset[str]  # exact names, and lower-cased any-case ones
    combinators: tuple[str, ...]
    sections: dict[str, tuple[str, ...]]

    def is_aggregate(self, name: str) -> bool:
        """A listed aggregate, itself or with combinators stacked on it (``sumArrayIf``)."""
        if name in self.aggregates or (name.lower() in self.any_case and name.lower() in self.aggregates):
            return True
        return any(name.endswith(c) and len(name) > len(c) and self.is_aggregate(name[:-len(c)])
                   for c in self.combinators)

    def allows(self, name: str) -> bool:
        return name in self.exact or name.lower() in self.any_case or self.is_aggregate(name)


def parse(text: str) -> FunctionList:
    exact, any_case, aggregates, combinators = set(), set(), set(), []
    sections: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            sections.setdefault(section, [])
            continue
        name, *flags = line.split()
        if not name.replace("_", "a").isalnum():
            raise ValueError(f"{LIST_PATH.name}: not a function name: {line!r}")
        sections.setdefault(section, []).append(name)
        if section == "Combinators":
            combinators.append(name)
            continue
        exact.add(name)
        if "ci" in flags:
            any_case.add(name.lower())
        if section in AGGREGATE_SECTIONS:
            aggregates.add(name.lower() if "ci" in flags else name)
    combinators.sort(key=len, reverse=True)
    return FunctionList(frozenset(exact), frozenset(any_case), frozenset(aggregates), tuple(combinators),
                        {k: tuple(v) for k, v in sections.items()})


@lru_cache(maxsize=1)
def allowed() -> FunctionList:
    return parse(LIST_PATH.read_text())


def refusal(name: str) -> str:
    return f"function {name}() is not allowed in /api/sql; allowed functions: see {DOCS_ANCHOR}"


def function_name(node: Node) -> str:
    m = _FUNCTION.match(node.text)
    if not m:  # a name ClickHouse printed oddly (an alias holding a newline...): refuse, never guess
        raise Forbidden(f"cannot read the function in {node.text[:80]!r}; use plain names and aliases")
    return m.group(1)


def ast_text(result: pa.Table) -> str:
    """The text of an ``EXPLAIN AST`` result. Read as bytes: a literal in the statement may hold
    bytes that are not UTF-8 (``'\\xDC'``), and only node kinds and names matter here."""
    lines = result.column(0).cast(pa.binary()).to_pylist()
    return "\n".join(line.decode("utf-8", "replace") for line in lines if line is not None)


def canonical_text(result: pa.Table) -> str:
    """The statement as ``formatQuerySingleLine`` wrote it: what is checked and then run. A string
    escape for bytes that are not UTF-8 (``'\\xDC'``) comes back raw and could not be sent again
    as it was checked: refused, with what to write instead."""
    raw = result.column(0).cast(pa.binary())[0].as_py() or b""
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Forbidden("the statement holds bytes that are not UTF-8 (a '\\xNN' escape in a string); "
                        "write them with unhex('DCFF') or char(220, 255) instead") from None


def ast_nodes(ast_text: str) -> Iterator[Node]:
    """The lines of ``EXPLAIN AST`` as nodes; :class:`Forbidden` for a kind not in AST_NODES."""
    for line in ast_text.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        kind = m.group(2) if m else line.strip()
        if m and kind not in AST_NODES and kind.endswith("Query"):  # a statement: DROP, INSERT, ALTER...
            raise Forbidden(f"this SQL API is readonly: only SELECT, DESCRIBE and SHOW TABLES run here, not {kind[:60]}")
        if not m or kind not in AST_NODES:
            shown = {"Set": "SETTINGS", "ColumnsApplyTransformer": "APPLY"}.get(kind, kind[:60])
            raise Forbidden(f"{shown} is not supported in /api/sql (see {DOCS_ANCHOR})")
        yield Node(len(m.group(1)), kind, m.group(3) or "")


def check_functions(ast_text: str) -> None:
    """Refuse a statement calling anything outside the lists, wherever it stands. The store runs
    this on its untrusted connection on its own (a second wall under the API's check_sql): a
    name passes if it is an allowed function or a safe table function (no name is both a
    table function that reaches outside and an allowed function; a test checks it)."""
    listed = allowed()
    for node in ast_nodes(ast_text):
        if node.kind == "Function":
            name = function_name(node)
            if not listed.allows(name) and name not in SAFE_TABLE_FUNCTIONS:
                raise Forbidden(refusal(name))


def run_untrusted(run: Callable[[str, Params], pa.Table], sql: str, params: Params, escape_strings: bool,
                  check: Callable[[str, str], None] | None = None) -> pa.Table:
    """Run untrusted SQL through ``run`` (a store's readonly connection) behind the store's own
    wall: one statement (formatQuerySingleLine refuses several), no INTO OUTFILE, only allowed
    functions, whoever the caller is. ``check(canonical, ast_text)``: the caller's own policy on
    the same parse (formatted and parsed once). ``escape_strings``: the store passes string
    parameters raw (chdb). An ``EXPLAIN AST`` evaluates nothing: it runs, and its own output is
    what is checked."""
    from tracelake.query.params import escape

    try:
        one = run("SELECT formatQuerySingleLine({q:String}) AS q", {"q": escape(sql) if escape_strings else sql})
    except StoreError as exc:
        raise StoreError(f"cannot parse the SQL as one statement: {exc}") from exc
    canonical = canonical_text(one)
    if _OUTFILE.search(canonical):
        raise Forbidden("INTO OUTFILE is not allowed here")  # chdb writes such files even with readonly=1
    explain = canonical.startswith("EXPLAIN AST ")
    ast = run(canonical if explain else "EXPLAIN AST " + canonical, params)
    text = ast_text(ast)
    check_functions(text)
    if check is not None:
        check(canonical, text)
    return ast if explain else run(canonical, params)
