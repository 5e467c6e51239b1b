"""`FigureFilter`: what a user selects from the catalog, compiled to a SQL WHERE body with bound parameters."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from workbench.catalog import sql
from workbench.catalog.sandbox import canonical_where
from workbench.licenses import check_groups

_TUPLE_FIELDS = (
    "license_groups",
    "journals",
    "article_types",
    "mesh_terms",
    "keywords",
    "panel_types",
    "concepts",
    "keys",
)
_INT_FIELDS = ("year_from", "year_to", "min_width", "max_width", "min_height", "max_height")
TEXT_MODES = ("any", "all", "phrase")  # any word / all words / the words in this order, next to each other


@dataclass(frozen=True)
class FigureFilter:
    """A selection of figures. Empty fields select everything; non-empty fields are ANDed.

    Lists match any of their values. `mesh_terms` and `keywords` ignore case. `concepts` match a figure's
    current annotation label (derived from the label store at query time: its own label, else its cluster's),
    by global or local concept; `panel_types` match its panel type or subtype (`workbench.catalog.live_labels`).
    `clusters` match `cluster_id` in the current clustering (`workbench cluster`). `text` is a BM25 full-text
    query over captions, in-line references and article titles (needs the search index); `text_mode` says how
    its words match: `any` word, `all` words, or the exact `phrase` (words in order, ignoring case and
    punctuation). `where` is a raw SQL expression over the columns of `figures`, checked by
    `workbench.catalog.sandbox`. `keys` selects exactly those sample keys (a selection on the embedding map),
    bound as one list parameter.
    """

    license_groups: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    journals: tuple[str, ...] = ()
    article_types: tuple[str, ...] = ()
    mesh_terms: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    panel_types: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    clusters: tuple[int, ...] = ()
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    has_inline_references: bool | None = None
    exclude_duplicates: bool = False
    text: str = ""
    text_mode: str = "any"
    where: str = ""
    keys: tuple[str, ...] = ()
    _canonical_where: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"{name} must be a list of strings, not the string {value!r}")
            cleaned = tuple(dict.fromkeys(str(item).strip() for item in (value or ()) if str(item).strip()))
            object.__setattr__(self, name, cleaned)
        check_groups(self.license_groups)
        object.__setattr__(self, "clusters", _cluster_ids(self.clusters))
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a whole number of 0 or more, got {value!r}")
        for name in ("date_from", "date_to"):
            object.__setattr__(self, name, _as_date(name, getattr(self, name)))
        for low, high in (
            ("year_from", "year_to"),
            ("date_from", "date_to"),
            ("min_width", "max_width"),
            ("min_height", "max_height"),
        ):
            if (
                getattr(self, low) is not None
                and getattr(self, high) is not None
                and getattr(self, low) > getattr(self, high)
            ):
                raise ValueError(f"{low} ({getattr(self, low)}) is after {high} ({getattr(self, high)})")
        object.__setattr__(self, "text", (self.text or "").strip())
        object.__setattr__(self, "where", (self.where or "").strip())
        if self.text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {', '.join(TEXT_MODES)}, got {self.text_mode!r}")
        if self.where:
            object.__setattr__(self, "_canonical_where", canonical_where(self.where))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (dates as ISO strings), for manifests; `text_mode` only when not `any`."""
        data = asdict(self)
        data.pop("_canonical_where")
        for name in _TUPLE_FIELDS:
            data[name] = list(data[name])
        for name in ("date_from", "date_to"):
            data[name] = data[name].isoformat() if data[name] else None
        data["clusters"] = list(data["clusters"])
        if not data["clusters"]:
            del data["clusters"]  # likewise for manifests written before clusters existed
        if data["text_mode"] == "any":
            del data["text_mode"]  # the default: manifests written before text modes existed stay equal
        if not data["keys"]:
            del data["keys"]  # likewise for manifests written before key lists existed
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FigureFilter:
        """Inverse of `to_dict`; unknown keys are an error (a manifest from another version, a typo)."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown filter field(s): {', '.join(unknown)}")
        return cls(**dict(data))

    def describe(self) -> str:
        """One line naming the non-empty fields, e.g. `license_groups=commercial; year_from=2020`."""
        defaults = FigureFilter().to_dict()
        parts = []
        for name, value in self.to_dict().items():
            if name == "keys" and value:
                parts.append(f"keys={len(value):,} chosen figures")
            elif value != defaults.get(name):
                parts.append(f"{name}={','.join(value) if isinstance(value, list) else value}")
        return "; ".join(parts) or "everything"


_GROUP_COLUMNS = re.compile(r"\bnear_duplicate_of\b", re.IGNORECASE)


def _grouped(where: str) -> str:
    """A raw WHERE naming `near_duplicate_of` (a narrow table joined by key, not a column of the `figures` view,
    so plain counts never pay for the join) is evaluated over the view that joins it."""
    return sql.GROUPED_WHERE.format(where=where) if _GROUP_COLUMNS.search(where) else where


def _cluster_ids(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, int)):
        raise ValueError(f"clusters must be a list of cluster ids, not {value!r}")
    ids = tuple(dict.fromkeys(value or ()))
    for item in ids:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise ValueError(f"clusters must hold whole numbers of 0 or more, got {item!r}")
    return ids


def _as_date(name: str, value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as error:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from error


@dataclass(frozen=True)
class CompiledFilter:
    """A WHERE body (`sql`) and its parameters, in order. `render` places it into a named template."""

    sql: str
    params: tuple[Any, ...]

    def render(self, template: str, **fragments: str) -> str:
        return template.format(where=self.sql, index=sql.SEARCH_INDEX, **fragments)


def _placeholders(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)


@dataclass(frozen=True)
class Lookups:
    """What compiling asks the catalog itself (the catalog passes functions bound to its connection).

    `text_keys(text, mode)`: DuckDB's `hash(key)` of every figure the text index matches (`any` word, `all` words;
    for `phrase` all words, the order is then checked here). `labels(concepts, panel_types)`: a WHERE fragment and
    its parameters selecting the figures whose current annotation label matches (`workbench.catalog.live_labels`).
    `list_values(column, values)`: the exact
    spellings, in that list column, of `values` compared without case (from the `figure_vocabulary` table).
    Without `list_values`, MeSH and keyword matching lower-cases every list item (correct, slower).
    """

    text_keys: Callable[[str, str], Sequence[int]] | None = None
    list_values: Callable[[str, Sequence[str]], Sequence[str]] | None = None
    labels: Callable[[Sequence[str], Sequence[str]], tuple[str, tuple[Any, ...]]] | None = None


def _any_item(column: str, values: Sequence[str]) -> str:
    """`column` (a list) contains one of `len(values)` bound values; list_contains is the fast path in DuckDB."""
    return " OR ".join(f"list_contains({column}, ?)" for _ in values) or "FALSE"


def compile_filter(selection: FigureFilter, lookups: Lookups = Lookups()) -> CompiledFilter:
    """Translate a `FigureFilter` into a WHERE body over `figures`: fixed SQL, values as `?` parameters.

    A full-text `text` needs `lookups.text_keys`; `text_mode` decides whether any word, all words or the phrase
    must match.
    """
    clauses: list[str] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        clauses.append(clause)
        params.extend(values)

    s = selection
    if s.license_groups:
        add(f"license_group IN ({_placeholders(s.license_groups)})", *s.license_groups)
    if s.year_from is not None:
        add("article_year >= ?", s.year_from)
    if s.year_to is not None:
        add("article_year <= ?", s.year_to)
    if s.date_from is not None:
        add("article_date >= ?", s.date_from)
    if s.date_to is not None:
        add("article_date <= ?", s.date_to)
    if s.journals:
        add(f"article_journal IN ({_placeholders(s.journals)})", *s.journals)
    if s.article_types:
        add(f"article_type IN ({_placeholders(s.article_types)})", *s.article_types)
    for column, values in (("article_mesh_terms", s.mesh_terms), ("article_keywords", s.keywords)):
        if not values:
            continue
        if lookups.list_values is None:
            add(
                f"list_has_any(list_transform({column}, item -> lower(item)), ?::VARCHAR[])",
                [value.lower() for value in values],
            )
        else:
            spellings = tuple(lookups.list_values(column, values))
            add(_any_item(column, spellings), *spellings)
    for concepts, panel_types in ((s.concepts, ()), ((), s.panel_types)):
        if not concepts and not panel_types:
            continue
        if lookups.labels is None:
            raise ValueError("a label filter needs the current annotation labels (compile it with the catalog)")
        add(*_fragment(lookups.labels(concepts, panel_types)))
    if s.clusters:
        add(f"cluster_id IN ({_placeholders(s.clusters)})", *s.clusters)
    for column, low, high in (("width", s.min_width, s.max_width), ("height", s.min_height, s.max_height)):
        if low is not None:
            add(f"{column} >= ?", low)
        if high is not None:
            add(f"{column} <= ?", high)
    if s.has_inline_references is True:
        add("inline_reference_count > 0")
    elif s.has_inline_references is False:
        add("inline_reference_count = 0")
    if s.exclude_duplicates:
        add("duplicate_of IS NULL")
    if s.text:
        if lookups.text_keys is None:
            raise ValueError("a full-text filter needs the catalog's text index (compile it with the catalog)")
        clause, values = text_clause(s.text, s.text_mode, lookups.text_keys(s.text, s.text_mode))
        add(clause, *values)
    if s.where:
        add(_grouped(s._canonical_where))
    if s.keys:
        add("key IN (SELECT unnest(?::VARCHAR[]))", list(s.keys))
    body = " AND ".join(f"({clause})" for clause in clauses) or "TRUE"
    return CompiledFilter(body, tuple(params))


def _fragment(compiled: tuple[str, tuple[Any, ...]]) -> tuple[Any, ...]:
    clause, params = compiled
    return (clause, *params)


def phrase_words(text: str) -> tuple[str, ...]:
    """The words of `text` as the search index splits them: accents stripped, lower case, a-z and 0-9 runs."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).lower()
    return tuple(word for word in re.split(r"[^a-z0-9]+", plain) if word)


def phrase_pattern(text: str) -> str:
    """A regular expression finding the words of `text` in order, separated only by non-word characters."""
    return "(^|[^a-z0-9])" + "[^a-z0-9]+".join(phrase_words(text)) + "([^a-z0-9]|$)"


def text_clause(text: str, mode: str, key_hashes: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
    """The WHERE fragment and parameters for a full-text query in a `TEXT_MODES` mode.

    `key_hashes` are the text index's matches (`hash(key)`; for `phrase`, the figures holding all its words):
    `phrase` then checks the words' order in the caption, in-line references or title.
    """
    if not key_hashes or (mode == "phrase" and not phrase_words(text)):
        return "FALSE", ()
    clause, params = sql.TEXT_MATCHES, (list(key_hashes),)
    if mode == "phrase":
        pattern = phrase_pattern(text)
        clause, params = f"({clause}) AND ({sql.PHRASE_MATCHES})", (*params, pattern, pattern, pattern)
    return clause, params
