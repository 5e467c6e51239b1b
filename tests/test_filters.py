"""FigureFilter: every field selects exactly what a plain Python evaluation of the rows selects; values are bound."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq
import pytest
from catalog_fixture import build_workspace

from workbench.catalog import FigureFilter, WhereRefused, compile_filter, open_catalog, refresh_catalog
from workbench.catalog.filters import phrase_words
from workbench.cli import main


@pytest.fixture(scope="module")
def catalog_and_rows(tmp_path_factory):
    built = build_workspace(tmp_path_factory.mktemp("filters") / "ws", articles=60, seed=7)
    refresh_catalog(built.workspace, search_index=False, progress=False)
    rows = pq.read_table(built.workspace.catalog_dir / "figures.parquet").to_pylist()
    with open_catalog(built.workspace, search_index=False) as catalog:
        yield catalog, rows


def _lower(values):
    return {v.lower() for v in values}


CASES = [
    (FigureFilter(), lambda r: True),
    (FigureFilter(license_groups=("commercial",)), lambda r: r["license_group"] == "commercial"),
    (FigureFilter(license_groups=("noncommercial", "other")), lambda r: r["license_group"] != "commercial"),
    (FigureFilter(year_from=2010, year_to=2015), lambda r: 2010 <= r["article_year"] <= 2015),
    (
        FigureFilter(date_from="2012-03-01", date_to=dt.date(2020, 6, 30)),
        lambda r: dt.date(2012, 3, 1) <= r["article_date"] <= dt.date(2020, 6, 30),
    ),
    (FigureFilter(journals=("PLoS ONE", "eLife")), lambda r: r["article_journal"] in ("PLoS ONE", "eLife")),
    (FigureFilter(article_types=("case-report",)), lambda r: r["article_type"] == "case-report"),
    (
        FigureFilter(mesh_terms=("humans", "BRAIN")),
        lambda r: bool(_lower(r["article_mesh_terms"]) & {"humans", "brain"}),
    ),
    (FigureFilter(keywords=("cd4",)), lambda r: "cd4" in _lower(r["article_keywords"])),
    (FigureFilter(min_width=60, max_width=120, min_height=50), lambda r: 60 <= r["width"] <= 120 and r["height"] >= 50),
    (FigureFilter(max_height=40), lambda r: r["height"] <= 40),
    (FigureFilter(has_inline_references=True), lambda r: r["inline_reference_count"] > 0),
    (FigureFilter(has_inline_references=False), lambda r: r["inline_reference_count"] == 0),
    (FigureFilter(exclude_duplicates=True), lambda r: r["duplicate_of"] is None),
    (
        FigureFilter(where="width * height > 6000 AND caption ILIKE '%cells%'"),
        lambda r: r["width"] * r["height"] > 6000 and "cells" in r["caption"].lower(),
    ),
    (
        FigureFilter(
            license_groups=("commercial",),
            year_from=2008,
            exclude_duplicates=True,
            where="list_contains(article_subjects, 'Biology')",
        ),
        lambda r: r["license_group"] == "commercial" and r["article_year"] >= 2008 and r["duplicate_of"] is None,
    ),
]


@pytest.mark.parametrize(
    ("selection", "predicate"), CASES, ids=lambda c: c.describe() if isinstance(c, FigureFilter) else ""
)
def test_each_field_selects_what_python_selects(catalog_and_rows, selection, predicate):
    catalog, rows = catalog_and_rows
    expected = sorted(r["key"] for r in rows if predicate(r))
    assert catalog.count(selection) == len(expected)
    preview = catalog.preview(selection, limit=len(rows))
    assert [p["key"] for p in preview] == expected


def test_selections_are_not_trivial(catalog_and_rows):
    """Guard against a fixture where every case would pass by selecting everything or nothing."""
    catalog, rows = catalog_and_rows
    for selection, _ in CASES[1:]:
        assert 0 < catalog.count(selection) < len(rows), selection.describe()


def test_values_are_bound_never_formatted():
    hostile = "x') OR 1=1 --"
    compiled = compile_filter(
        FigureFilter(
            journals=(hostile, "O'Brien Journal"), keywords=(hostile,), mesh_terms=("a'b",), license_groups=("other",)
        )
    )
    assert "'" not in compiled.sql and "O'Brien" not in compiled.sql
    assert hostile in compiled.params and "O'Brien Journal" in compiled.params
    assert compiled.sql.count("?") == 5  # 1 group + 2 journals + mesh list + keyword list


def test_hostile_values_select_nothing(catalog_and_rows):
    catalog, _ = catalog_and_rows
    assert catalog.count(FigureFilter(journals=("x') OR (1=1",))) == 0
    assert catalog.count(FigureFilter(keywords=("' OR 1=1 --",))) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"license_groups": ("open",)}, "unknown licence group"),
        ({"license_groups": "commercial"}, "must be a list"),
        ({"year_from": 2020, "year_to": 2010}, "year_from"),
        ({"min_width": 500, "max_width": 100}, "min_width"),
        ({"min_height": -1}, "0 or more"),
        ({"date_from": "last year"}, "YYYY-MM-DD"),
        ({"where": "1=1; DROP TABLE figures"}, "refused"),
    ],
)
def test_bad_values_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FigureFilter(**kwargs)


def test_dict_round_trip_and_description():
    selection = FigureFilter(
        license_groups=["commercial"],
        year_from=2019,
        date_to="2021-01-31",
        keywords=["MRI", "MRI", " "],
        where="width > 10",
        text="tumour cells",
    )
    assert selection.keywords == ("MRI",)
    data = selection.to_dict()
    assert data["date_to"] == "2021-01-31" and data["license_groups"] == ["commercial"]
    assert FigureFilter.from_dict(data) == selection
    assert selection.describe().startswith("license_groups=commercial; year_from=2019")
    assert FigureFilter().describe() == "everything"
    with pytest.raises(ValueError, match="unknown filter field"):
        FigureFilter.from_dict({**data, "licence": "x"})


def test_unknown_column_in_where_names_the_clause(catalog_and_rows):
    catalog, _ = catalog_and_rows
    with pytest.raises(ValueError, match="no_such_column"):
        catalog.count(FigureFilter(where="no_such_column = 1"))


def test_list_filters_give_the_same_answer_with_and_without_the_vocabulary(catalog_and_rows):
    """Case-insensitive MeSH/keyword matching: resolved through figure_vocabulary, or by lower-casing items."""
    catalog, _ = catalog_and_rows
    for selection in (
        FigureFilter(mesh_terms=("HUMANS", "mice")),
        FigureFilter(keywords=("mri", "Zebrafish")),
        FigureFilter(keywords=("no such keyword",)),
    ):
        plain = compile_filter(selection)  # no lookups: lower-cases every item
        assert "lower" in plain.sql
        slow = catalog.execute(plain.render("SELECT count(*) FROM figures WHERE {where}"), plain.params)
        assert slow.fetchone()[0] == catalog.count(selection)


# --- full-text modes: any word, all words, phrase ---------------------------------------------------------------
@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    built = build_workspace(tmp_path_factory.mktemp("text") / "ws", articles=40, seed=17)
    refresh_catalog(built.workspace, progress=False)
    rows = pq.read_table(built.workspace.catalog_dir / "figures.parquet").to_pylist()
    with open_catalog(built.workspace) as catalog:
        yield catalog, rows


def _fields(row) -> dict[str, tuple[str, ...]]:
    return {
        "caption": phrase_words(row["caption"] or ""),
        "in-line reference": phrase_words("\n".join(row["inline_references"] or [])),
        "title": phrase_words(row["article_title"] or ""),
    }


def _has_phrase(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    return any(words[i : i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


TEXT_CASES = [
    ("tumour brain", "any", lambda f: any({"tumour", "brain"} & set(w) for w in f.values())),
    ("tumour brain", "all", lambda f: {"tumour", "brain"} <= set().union(*f.values())),
    ("tumour zzzunknown", "any", lambda f: any("tumour" in w for w in f.values())),
    ("tumour zzzunknown", "all", lambda f: False),
    ("scale bar", "phrase", lambda f: any(_has_phrase(w, ("scale", "bar")) for w in f.values())),
    ("Mice, brain!", "phrase", lambda f: any(_has_phrase(w, ("mice", "brain")) for w in f.values())),
]


@pytest.mark.parametrize(("text", "mode", "predicate"), TEXT_CASES, ids=lambda c: c if isinstance(c, str) else "")
def test_text_modes_select_what_python_selects(indexed, text, mode, predicate):
    catalog, rows = indexed
    expected = {r["key"] for r in rows if predicate(_fields(r))}
    selection = FigureFilter(text=text, text_mode=mode)
    assert catalog.count(selection) == len(expected)
    hits = catalog.search(text, 10_000, mode=mode)
    assert {hit.key for hit in hits} == expected
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))  # ranked by BM25


def test_modes_narrow_and_phrase_says_where_it_matched(indexed):
    catalog, rows = indexed
    counts = [catalog.count(FigureFilter(text="scale bar", text_mode=mode)) for mode in ("any", "all", "phrase")]
    assert counts[0] > counts[1] >= counts[2] > 0, counts
    by_key = {r["key"]: _fields(r) for r in rows}
    for hit in catalog.search("scale bar", 50, mode="phrase"):
        where = {name for name, words in by_key[hit.key].items() if _has_phrase(words, ("scale", "bar"))}
        assert set(hit.matched) == where and "matched in" in hit.reason()
    for hit in catalog.search("tumour", 50):
        assert set(hit.matched) == {name for name, words in by_key[hit.key].items() if "tumour" in words}


def test_text_mode_is_checked_and_kept_in_manifests():
    with pytest.raises(ValueError, match="text_mode must be one of"):
        FigureFilter(text="cells", text_mode="fuzzy")
    selection = FigureFilter(text="scale bar", text_mode="phrase")
    assert FigureFilter.from_dict(selection.to_dict()) == selection
    assert "text_mode=phrase" in selection.describe()
    assert FigureFilter.from_dict({"text": "cells"}).text_mode == "any"  # manifests written before text modes
    assert "text_mode" not in FigureFilter(text="cells").to_dict()  # ... and they compare equal to new ones


def test_search_where_binds_to_figures_columns_only(indexed):
    catalog, _ = indexed
    for where in ("len > 5", "termid = 1", "nosuch = 1"):
        with pytest.raises(WhereRefused, match="cannot be evaluated"):
            catalog.search("cells", 5, FigureFilter(where=where))
    assert catalog.search("cells", 5, FigureFilter(where="caption_length > 5"))


def test_cli_search_modes_and_bad_where(indexed, capsys):
    catalog, _ = indexed
    ws = str(catalog.workspace.root)
    assert main(["catalog", "search", "--workspace", ws, "scale bar", "--mode", "phrase", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all("matched in" in line for line in lines)
    assert main(["catalog", "search", "--workspace", ws, "cells", "--where", "nosuch = 1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nosuch" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["catalog", "search", "--workspace", ws, "cells", "--where", "len > 5"]) == 2
    assert main(["catalog", "count", "--workspace", ws, "--text", "scale bar", "--text-mode", "phrase"]) == 0
    counted = json.loads(capsys.readouterr().out)
    assert counted["figures"] == catalog.count(FigureFilter(text="scale bar", text_mode="phrase"))


def test_keys_select_exactly_those_keys_as_one_bound_list(catalog_and_rows):
    catalog, rows = catalog_and_rows
    chosen = sorted(r["key"] for r in rows[::7])
    hostile = "x') OR 1=1 --"
    selection = FigureFilter(keys=(*chosen, chosen[0], hostile, " "))  # duplicates and blanks dropped, order kept
    assert selection.keys == (*chosen, hostile)
    compiled = compile_filter(selection)
    assert compiled.sql == "(key IN (SELECT unnest(?::VARCHAR[])))" and compiled.params == ([*chosen, hostile],)
    assert [p["key"] for p in catalog.preview(selection, limit=len(rows))] == chosen
    both = FigureFilter(keys=tuple(chosen), license_groups=("commercial",))
    assert catalog.count(both) == sum(r["license_group"] == "commercial" for r in rows[::7])
    data = selection.to_dict()
    assert data["keys"] == [*chosen, hostile] and FigureFilter.from_dict(data) == selection
    assert "keys" not in FigureFilter().to_dict()  # manifests written before key lists compare equal
    assert f"keys={len(chosen) + 1} chosen figures" in selection.describe()
    with pytest.raises(ValueError, match="keys must be a list"):
        FigureFilter(keys="PMC1_F1_0")
