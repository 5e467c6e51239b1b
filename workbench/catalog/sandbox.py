"""Raw SQL WHERE clauses from advanced users, checked before they touch the catalog.

A raw clause must be one expression over the columns of `figures`. `canonical_where` parses the query
`SELECT key FROM figures WHERE (<expr>)` with DuckDB's own parser (`json_serialize_sql`), refuses anything but
exactly that one SELECT (no second statement, no subquery, no other table, no parameter, no window), allows
only functions from `ALLOWED_FUNCTIONS` (pure scalar functions: no table functions, no file, setting or
sequence access) under the size rules of `sandbox_rules` (no value may grow far beyond the row's data: the
`lpad(key, 400000000, 'x')` bomb is refused before it runs), and returns DuckDB's re-rendering of the validated
expression tree: comment-free and fully parenthesised, so it cannot reach outside the parentheses it is placed
in. Queries then run on the locked connection of `workbench.catalog.db` (read-only, no file access,
configuration locked), with a time limit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import duckdb

from workbench.catalog.sandbox_rules import ALLOWED_FUNCTIONS, SizeRefused, analyse
from workbench.errors import UserError

WRAPPER = "SELECT key FROM figures WHERE (\n{expression}\n)"
_BARE = "SELECT key FROM figures"
_RENDER_PREFIX = "SELECT "
_RENDER_SUFFIX = " FROM figures"
MAX_LENGTH = 4000

ALLOWED_CLASSES = frozenset(
    {
        "BETWEEN",
        "CASE",
        "CAST",
        "COLUMN_REF",
        "COMPARISON",
        "CONJUNCTION",
        "CONSTANT",
        "FUNCTION",
        "LAMBDA",
        "OPERATOR",
    }
)


class WhereRefused(UserError):
    """A raw WHERE clause that is not a single safe expression over `figures` (bad input: exit 2)."""


@cache
def _parser() -> duckdb.DuckDBPyConnection:
    """A private in-memory connection used only to parse and re-render SQL (never sees the catalog)."""
    connection = duckdb.connect(":memory:")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


def _serialize(sql: str) -> dict[str, Any]:
    return json.loads(_parser().cursor().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


def _without_locations(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_locations(v) for k, v in node.items() if k != "query_location"}
    if isinstance(node, list):
        return [_without_locations(v) for v in node]
    return node


@cache
def _bare_select() -> dict[str, Any]:
    statement = _without_locations(_serialize(_BARE)["statements"][0])
    statement["node"].pop("where_clause", None)
    return statement


def _expressions(node: Any) -> Iterator[dict[str, Any]]:
    """Every expression node (a dict with a 'class') anywhere inside `node`."""
    if isinstance(node, dict):
        if "class" in node:
            yield node
        for value in node.values():
            yield from _expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _expressions(value)


def _check_parentheses(expression: str) -> None:
    """Refuse `a) OR (b`-style clauses early, with a clear message (the tokens are DuckDB's own)."""
    tokens = duckdb.tokenize(expression)
    depth = 0
    for index, (start, kind) in enumerate(tokens):
        if kind != duckdb.token_type.operator:
            continue
        end = tokens[index + 1][0] if index + 1 < len(tokens) else len(expression)
        text = expression[start:end].split(None, 1)[0] if expression[start:end].strip() else ""
        text = text.split("--", 1)[0].split("/*", 1)[0]
        for char in text:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                raise WhereRefused("unbalanced parentheses: a WHERE clause must be one expression")
    if depth:
        raise WhereRefused("unbalanced parentheses: a WHERE clause must be one expression")


def _check_node(node: dict[str, Any]) -> None:
    kind = node["class"]
    if kind not in ALLOWED_CLASSES:
        what = {
            "SUBQUERY": "subqueries",
            "PARAMETER": "parameters",
            "WINDOW": "window functions",
            "STAR": "* / COLUMNS(*)",
        }.get(kind, kind.lower())
        raise WhereRefused(f"{what} are not allowed in a WHERE clause")
    if kind == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        qualified = node.get("catalog") or node.get("schema") not in ("", "main", None)
        if qualified or name not in ALLOWED_FUNCTIONS:
            raise WhereRefused(f"function {node.get('function_name')!r} is not allowed in a WHERE clause")
        if node.get("filter") or (node.get("order_bys") or {}).get("orders") or node.get("distinct"):
            raise WhereRefused("aggregate modifiers (FILTER, ORDER BY, DISTINCT) are not allowed in a WHERE clause")
    if kind == "COLUMN_REF":
        names = node.get("column_names", [])
        if len(names) > 2 or (len(names) == 2 and names[0].lower() != "figures"):
            raise WhereRefused(f"column {'.'.join(names)!r} is not a column of figures")


def canonical_where(expression: str, *, deterministic: bool = False) -> str:
    """Validate a raw WHERE expression; return its canonical, fully parenthesised SQL or raise `WhereRefused`.

    `deterministic=True` (subset filters) also refuses functions whose value changes between runs.
    """
    try:
        return _canonical(expression.strip(), deterministic)
    except RecursionError:
        raise WhereRefused(f"WHERE clause refused: it is nested too deeply ({len(expression)} characters)") from None
    except (WhereRefused, SizeRefused) as error:
        shown = expression if len(expression) <= 80 else expression[:77] + "..."
        raise WhereRefused(f"WHERE clause {shown!r} refused: {error}") from None


def _canonical(expression: str, deterministic: bool) -> str:
    if not expression:
        raise WhereRefused("the WHERE clause is empty")
    if len(expression) > MAX_LENGTH:
        raise WhereRefused(f"the WHERE clause is longer than {MAX_LENGTH} characters")
    _check_parentheses(expression)
    parsed = _serialize(WRAPPER.format(expression=expression))
    if parsed.get("error"):
        raise WhereRefused(f"not a valid SQL expression: {parsed.get('error_message', 'parse error')}")
    statements = parsed["statements"]
    if len(statements) != 1:
        raise WhereRefused("a WHERE clause must be a single expression, not several statements")
    statement = _without_locations(statements[0])
    where = statement["node"].pop("where_clause", None)
    for node in _expressions(where):
        _check_node(node)
    if where is None or statement != _bare_select():
        raise WhereRefused("a WHERE clause must be a single expression over figures")
    volatile = analyse(where)
    if deterministic and volatile:
        raise WhereRefused(
            f"{', '.join(sorted(volatile))}: not allowed in a subset filter (the value changes from run to run, "
            f"so the subset could not be reproduced byte for byte); use fixed values, e.g. DATE '2024-01-01'"
        )
    statement["node"]["select_list"] = [where]
    rendered = (
        _parser()
        .cursor()
        .execute("SELECT json_deserialize_sql(?)", [json.dumps({"error": False, "statements": [statement]})])
        .fetchone()[0]
    )
    if not (rendered.startswith(_RENDER_PREFIX) and rendered.endswith(_RENDER_SUFFIX)):
        raise WhereRefused("could not re-render the WHERE clause")
    body = rendered[len(_RENDER_PREFIX) : -len(_RENDER_SUFFIX)]
    return f"({body})"


@contextmanager
def time_limit(connection: duckdb.DuckDBPyConnection, seconds: float | None) -> Iterator[None]:
    """Interrupt the query running on `connection` after `seconds` (None: no limit)."""
    if not seconds:
        yield
        return
    timer = threading.Timer(seconds, connection.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException as error:
        raise TimeoutError(f"the catalog query took longer than {seconds:g} s and was stopped") from error
    finally:
        timer.cancel()
