"""What a raw WHERE clause may compute: the allowed functions, a static bound on value sizes, determinism.

Every allowed function has a size rule, so `value_bound` can bound each value an expression builds, per row,
as `F x S + C`: S is the size of the row's data (any column is at most S), F a growth factor and C a constant
in bytes (roughly). Clauses whose values could grow beyond `MAX_GROWTH x S + MAX_CONSTANT` are refused before
they run: nested `replace`, `lpad(key, 400000000, 'x')`, `list_transform` building copies per element, ...
Sizes that depend on the data twice over (a row-dependent replacement, a lambda copying an outer column) are
refused outright. Functions whose result changes from run to run are listed in `NON_DETERMINISTIC`; subset
filters refuse them (a subset must reproduce byte for byte), counts and previews may use them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_GROWTH = 8  # a value may be at most 8 x the row's data ...
MAX_CONSTANT = 16_384  # ... plus about 16 KB
MAX_PAD = 4096  # lpad/rpad: a literal target length up to this many characters


def _words(text: str) -> list[str]:
    return text.split()


class SizeRefused(ValueError):
    """The expression could build values too large to evaluate safely."""


# Results of fixed, small size (numbers, booleans, dates, hashes).
SCALAR = frozenset(
    _words("""+ - * / // % ** ^ ~~ !~~ ~~* !~~* ~~~ & | << >> @ ^@ <@ @> &&
    length len strlen char_length character_length octet_length contains starts_with ends_with prefix suffix
    instr strpos position like_escape not_like_escape ilike_escape not_ilike_escape regexp_matches
    regexp_full_match levenshtein jaccard jaro_similarity jaro_winkler_similarity hamming mismatches ascii chr
    unicode md5 sha1 sha256 hash json_valid json_type json_array_length json_contains json_exists
    list_contains list_has array_contains array_has list_has_any array_has_any list_has_all array_has_all
    list_position list_indexof array_position array_indexof array_length cardinality list_count list_unique
    array_unique abs sign round floor ceil ceiling trunc sqrt cbrt pow power exp ln log log10 log2 mod isnan isinf
    isfinite even gcd lcm year month day dayofmonth dayofweek dayofyear week weekofyear quarter decade isoyear
    yearweek date_part datepart date_trunc datetrunc date_diff datediff date_sub datesub make_date last_day
    strptime try_strptime epoch age today current_date typeof to_centuries to_days to_decades to_hours
    to_microseconds to_millennia to_milliseconds to_minutes to_months to_quarters to_seconds to_weeks to_years""")
)
# Results no larger than the sum of the arguments.
ADDITIVE = frozenset(
    _words("""|| concat list_value list_pack array_value list_cat list_concat array_cat array_concat struct_pack row
    coalesce nullif ifnull if greatest least""")
)
# Results at most `factor` x the first argument (substrings, case changes, splits into lists, ...).
PRESERVING = {
    **dict.fromkeys(
        _words("""->> lower upper lcase ucase trim ltrim rtrim substring substr left right reverse regexp_extract
        strip_accents split_part json_extract_string json_value json_keys list_extract list_element
        array_extract list_slice array_slice list_any_value list_distinct array_distinct list_sort array_sort
        list_intersect array_intersect flatten struct_extract"""),
        1,
    ),
    **dict.fromkeys(_words("string_split str_split string_to_array split regexp_split_to_array regexp_extract_all"), 2),
    "translate": 4,
    "nfc_normalize": 3,
    "json_extract": 1,  # times the number of paths when given a list of paths
}
LAMBDA_FILTER = frozenset({"list_filter", "array_filter", "filter"})
LAMBDA_MAP = frozenset({"list_transform", "array_transform", "apply", "list_apply"})
SPECIAL = frozenset(
    {"replace", "regexp_replace", "lpad", "rpad", "printf", "format", "array_to_string", "concat_ws", "strftime"}
)
SPECIAL |= {"damerau_levenshtein"}
ALLOWED_FUNCTIONS = SCALAR | ADDITIVE | frozenset(PRESERVING) | LAMBDA_FILTER | LAMBDA_MAP | SPECIAL

# Functions (and bare keywords, which DuckDB parses as column names) whose value depends on when or how often
# the query runs. Checked against `duckdb_functions()` stability in tests/test_sandbox.py.
NON_DETERMINISTIC = frozenset(
    _words("""random setseed now today current_date current_time current_timestamp current_localtime
    current_localtimestamp localtime localtimestamp get_current_time get_current_timestamp transaction_timestamp
    uuid uuidv4 uuidv7 gen_random_uuid nextval currval current_query current_query_id current_connection_id
    current_transaction_id txid_current sleep_ms write_log error stats""")
)


@dataclass(frozen=True)
class Bound:
    """Value size at most `growth` x S + `constant` (S: the row's data, or a lambda element's)."""

    growth: float
    constant: float

    def __add__(self, other: Bound) -> Bound:
        return Bound(self.growth + other.growth, self.constant + other.constant)

    def times(self, factor: float) -> Bound:
        return Bound(self.growth * factor, self.constant * factor)

    @property
    def fixed(self) -> bool:
        """Whether the size does not depend on the data."""
        return self.growth == 0

    @property
    def per_unit(self) -> float:
        """A bound per unit of data (list elements count as at least one unit each)."""
        return self.growth + self.constant


SCALAR_BOUND = Bound(0, 1)
_SCALAR_OPERATORS = frozenset(
    {"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN", "COMPARE_NOT_IN"}
)
COLUMN_BOUND = Bound(1, 0)


def _literal(node: Mapping[str, Any]) -> Any:
    if node.get("class") == "CONSTANT" and not node["value"].get("is_null"):
        return node["value"].get("value")
    return None


def _literal_text(node: Mapping[str, Any]) -> str | None:
    value = _literal(node)
    return value if isinstance(value, str) else None


def _children(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(node.get("children") or [])


@dataclass
class _Analysis:
    """One walk over a parsed WHERE: size bounds (refusing growth) and the non-deterministic names used."""

    volatile: set[str]

    def bound(self, node: Mapping[str, Any], params: Mapping[str, bool]) -> Bound:
        """`params`: lambda parameters in scope, mapped to whether the lambda may read outer columns."""
        result = self._bound(node, params)
        if result.growth > MAX_GROWTH or result.constant > MAX_CONSTANT:
            raise SizeRefused(
                "it could build values too large to evaluate (nested replace/pad/format, lists built per "
                "element, ...); simplify it"
            )
        return result

    def _bound(self, node: Mapping[str, Any], params: Mapping[str, bool]) -> Bound:
        kind = node["class"]
        if kind == "CONSTANT":
            return Bound(0, len(str(_literal(node) or "")) + 1)
        if kind == "COLUMN_REF":
            names = node.get("column_names", [])
            if len(names) == 1 and names[0].lower() in NON_DETERMINISTIC:
                self.volatile.add(names[0].lower())
            if len(names) == 1 and names[0] in params:
                return COLUMN_BOUND
            if params and not all(params.values()):
                raise SizeRefused(
                    f"list_transform may not copy the column {'.'.join(names)!r} into every element "
                    f"(use only its own parameters)"
                )
            return COLUMN_BOUND
        if kind == "CAST":
            return self.bound(node["child"], params).times(3) + Bound(0, 64)
        if kind == "CASE":
            total = Bound(0, 0)
            for check in node.get("case_checks", []):
                self.bound(check["when_expr"], params)
                total = total + self.bound(check["then_expr"], params)
            return total + self.bound(node["else_expr"], params)
        if kind in ("COMPARISON", "CONJUNCTION", "BETWEEN"):
            for child in [*_children(node), *(node.get(k) for k in ("left", "right", "input", "lower", "upper"))]:
                if child:
                    self.bound(child, params)
            return SCALAR_BOUND
        if kind == "OPERATOR":
            bounds = [self.bound(child, params) for child in _children(node)]
            if node["type"] in _SCALAR_OPERATORS or not bounds:
                return SCALAR_BOUND
            if node["type"] in ("ARRAY_EXTRACT", "ARRAY_SLICE", "STRUCT_EXTRACT", "OPERATOR_TRY"):
                return bounds[0]
            return sum(bounds[1:], bounds[0])  # COALESCE and anything else: at most all of its operands
        if kind == "FUNCTION":
            return self._function(node, params)
        if kind == "LAMBDA":
            raise SizeRefused("a lambda is allowed only as the argument of list_transform or list_filter")
        return SCALAR_BOUND

    def _function(self, node: Mapping[str, Any], params: Mapping[str, bool]) -> Bound:
        name = str(node.get("function_name", "")).lower()
        if name in NON_DETERMINISTIC or (name == "age" and len(_children(node)) == 1):
            self.volatile.add(name if name != "age" else "age (with one argument)")
        children = _children(node)
        if name in LAMBDA_FILTER | LAMBDA_MAP:
            return self._lambda(name, children, params)
        bounds = [self.bound(child, params) for child in children]
        if name in SCALAR:
            return SCALAR_BOUND
        if name in ADDITIVE:
            return sum(bounds, Bound(0, len(bounds)))
        if name in PRESERVING:
            factor = PRESERVING[name]
            if name == "json_extract" and len(children) > 1 and children[1].get("function_name") == "list_value":
                factor = len(_children(children[1]))
            return bounds[0].times(factor) if bounds else SCALAR_BOUND
        return _SPECIAL[name](children, bounds)

    def _lambda(self, name: str, children: list[dict[str, Any]], params: Mapping[str, bool]) -> Bound:
        if len(children) != 2 or children[1]["class"] != "LAMBDA":
            raise SizeRefused(f"{name} takes a list and a lambda (x -> ...)")
        source = self.bound(children[0], params)
        lhs = children[1]["lhs"]
        names = [c["column_names"][0] for c in (_children(lhs) if lhs["class"] != "COLUMN_REF" else [lhs])]
        reads_outer = name in LAMBDA_FILTER
        body = self.bound(children[1]["expr"], {**params, **dict.fromkeys(names, reads_outer)})
        if name in LAMBDA_FILTER:
            return source
        return self._checked(source.times(body.per_unit))

    def _checked(self, bound: Bound) -> Bound:
        if bound.growth > MAX_GROWTH or bound.constant > MAX_CONSTANT:
            raise SizeRefused(
                "it could build values too large to evaluate (values copied per element of a list); simplify it"
            )
        return bound


def _fixed(bound: Bound, what: str) -> Bound:
    if not bound.fixed:
        raise SizeRefused(f"{what} must not depend on the row (use a literal)")
    return bound


def _replace(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    if len(bounds) != 3:
        return bounds[0] if bounds else SCALAR_BOUND
    replacement = _fixed(bounds[2], "replace's replacement")
    pattern = _literal_text(children[1])
    ratio = max(1.0, replacement.constant / max(1, len(pattern))) if pattern else replacement.constant
    return bounds[0].times(max(1.0, ratio))


def _regexp_replace(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    replacement = _fixed(bounds[2], "regexp_replace's replacement") if len(bounds) > 2 else SCALAR_BOUND
    return bounds[0].times(1 + replacement.constant)  # an empty match at every position, plus back-references


def _pad(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    length = _literal(children[1]) if len(children) > 1 else None
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= MAX_PAD:
        raise SizeRefused(f"lpad/rpad need a literal length from 0 to {MAX_PAD}")
    if len(bounds) > 2:
        _fixed(bounds[2], "the padding")
    return Bound(0, 4 * length + 1)  # characters of up to 4 bytes


def _format(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    text = _literal_text(children[0]) if children else None
    if text is None:
        raise SizeRefused("printf/format need a literal format string")
    fields = text.replace("{{", "").replace("}}", "")
    digits = "".join(c if c.isdigit() else " " for c in fields).split()
    if "*" in fields or any(len(run) > 3 for run in digits) or _nested_fields(fields):
        raise SizeRefused("printf/format widths must be literal and at most 999")
    specs = fields.count("%") + fields.count("{")
    return sum(bounds[1:], Bound(0, 0)).times(3) + Bound(0, len(text) + 1000 * specs)


def _nested_fields(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth > 1:
            return True
    return False


def _array_to_string(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    separator = _fixed(bounds[1], "array_to_string's separator") if len(bounds) > 1 else Bound(0, 0)
    return bounds[0].times(1 + separator.constant)  # a separator per element (elements count 1 unit at least)


def _concat_ws(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    if not bounds:
        return SCALAR_BOUND
    return sum(bounds[1:], bounds[0].times(max(1, len(bounds) - 2)))


def _strftime(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    return bounds[-1].times(16) if bounds else SCALAR_BOUND  # a specifier expands to at most ~32 characters


def _damerau(children: list[dict[str, Any]], bounds: list[Bound]) -> Bound:
    if not any(b.fixed and b.constant <= 65 for b in bounds):
        raise SizeRefused("damerau_levenshtein needs one literal argument of at most 64 characters")
    return SCALAR_BOUND


_SPECIAL: dict[str, Callable[[list[dict[str, Any]], list[Bound]], Bound]] = {
    "replace": _replace,
    "regexp_replace": _regexp_replace,
    "lpad": _pad,
    "rpad": _pad,
    "printf": _format,
    "format": _format,
    "array_to_string": _array_to_string,
    "concat_ws": _concat_ws,
    "strftime": _strftime,
    "damerau_levenshtein": _damerau,
}
assert frozenset(_SPECIAL) == SPECIAL


def analyse(where: Mapping[str, Any]) -> set[str]:
    """Check the size rules on a parsed WHERE (raises `SizeRefused`); return the non-deterministic names used."""
    analysis = _Analysis(set())
    try:
        analysis.bound(where, {})
    except RecursionError:
        raise SizeRefused("the expression is nested too deeply") from None
    return analysis.volatile
