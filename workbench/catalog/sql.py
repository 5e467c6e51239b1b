"""Named SQL templates of the catalog. Values are always bound parameters (`?` / `$name`).

The only `{placeholders}` are filled by code with fixed fragments: `{where}` with a compiled `FigureFilter`
(fixed SQL with `?` parameters, plus at most one raw WHERE that `sandbox.canonical_where` has validated and
re-rendered), `{column}` with a name from `GROUPABLE_COLUMNS`, `{index}` with `SEARCH_INDEX`.
"""

from __future__ import annotations

SEARCH_INDEX = "fts_main_search_text"  # schema the fts extension creates for table `search_text`

# --- state kept by refresh ------------------------------------------------------------------------------
CREATE_STATE = """
CREATE TABLE IF NOT EXISTS catalog_state (
    name VARCHAR PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    refreshed_at TIMESTAMP NOT NULL
)"""
READ_STATE = "SELECT name, fingerprint FROM catalog_state"
WRITE_STATE = "INSERT OR REPLACE INTO catalog_state VALUES (?, ?, current_localtimestamp())"
DATABASE_BLOCKS = (
    "SELECT total_blocks, free_blocks FROM pragma_database_size() WHERE database_name = current_database()"
)
COMPACT_INTO = "COPY FROM DATABASE {database} TO compacted"
TABLE_EXISTS = "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?"
SCHEMA_EXISTS = "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() AND schema_name = ?"

# The cache keeps a copy of the annotation events it folded in (WS/state/annotations.sqlite is the truth,
# read through the sqlite extension: a consistent snapshot even while annotators append).
MATERIALISE_ANNOTATIONS = """
CREATE OR REPLACE TABLE annotations AS
SELECT key, annotator, concept, panel_type, score, CAST(created_at AS TIMESTAMP) AS created_at
FROM sqlite_scan(?, 'annotations')
ORDER BY id"""

# --- materialisation --------------------------------------------------------------------------------------
# `figures` is a native table sorted by (license_group, article_year, key): zone maps then skip most row
# groups for the usual licence + year filters. Annotation labels are folded in as three columns. Every step
# below is a sort, a narrow join or a streaming copy, so DuckDB can spill to disk on 24M-row catalogs.
_FIGURE_ORDER = "ORDER BY license_group, article_year NULLS FIRST, key"
# `{source}`: the figures Parquet, with MeSH terms from the current enrichment when there is one.
FIGURES_SOURCE = "read_parquet($path)"
FIGURES_SOURCE_WITH_MESH = """(
SELECT figures.* REPLACE (coalesce(mesh.mesh_terms, figures.article_mesh_terms) AS article_mesh_terms)
FROM read_parquet($path) AS figures
LEFT JOIN (SELECT pmid, any_value(mesh_terms) AS mesh_terms FROM read_parquet($pubmed) GROUP BY pmid) AS mesh
    ON mesh.pmid = figures.pmid)"""
# `{source}` gains `cluster_id` (current clustering, WS/catalog/clusters/NAME.parquet) and `near_duplicate_of`
# (WS/catalog/near_duplicates.parquet), NULL where a figure has none or the file is absent. `{base}` is one of the
# two sources above; `{clusters}` / `{near_duplicates}` one of the pairs below.
FIGURES_WITH_GROUPS = """(
SELECT base.*, groups_clusters.cluster_id, groups_near.near_duplicate_of
FROM {base} AS base
LEFT JOIN {clusters} AS groups_clusters ON groups_clusters.key = base.key
LEFT JOIN {near_duplicates} AS groups_near ON groups_near.key = base.key)"""
CLUSTERS_PARQUET = "(SELECT key, cluster_id::INTEGER AS cluster_id FROM read_parquet($clusters))"
NO_CLUSTERS = "(SELECT NULL::VARCHAR AS key, NULL::INTEGER AS cluster_id WHERE FALSE)"
NEAR_DUPLICATES_PARQUET = "(SELECT key, near_duplicate_of FROM read_parquet($near_duplicates))"
NO_NEAR_DUPLICATES = "(SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS near_duplicate_of WHERE FALSE)"
MATERIALISE_FIGURES_UNLABELLED = (
    """
CREATE OR REPLACE TABLE figures AS
SELECT *, NULL::VARCHAR AS concept, []::VARCHAR[] AS concepts, NULL::VARCHAR AS panel_type
FROM {source}
"""
    + _FIGURE_ORDER
)
# One row per annotated key: the best-scored concept and panel type (ties: annotator, then value) and all
# concepts. min() over structs keeps aggregate states small enough to spill.
MATERIALISE_LABELS = """
CREATE OR REPLACE TABLE figure_labels AS
SELECT key,
       min(struct_pack(rank := -coalesce(score, 1), annotator := annotator, value := concept))
           FILTER (WHERE concept IS NOT NULL).value AS concept,
       list_sort(list_distinct(list(concept) FILTER (WHERE concept IS NOT NULL))) AS concepts,
       min(struct_pack(rank := -coalesce(score, 1), annotator := annotator, value := panel_type))
           FILTER (WHERE panel_type IS NOT NULL).value AS panel_type
FROM annotations
GROUP BY key"""
MATERIALISE_FIGURES_LABELLED = (  # sort the wide rows once, align the narrow labels, glue them by position
    """CREATE OR REPLACE TABLE figures_sorted AS SELECT * FROM {source} """ + _FIGURE_ORDER,
    """
CREATE OR REPLACE TABLE figures_labels_aligned AS
SELECT labels.concept, coalesce(labels.concepts, []::VARCHAR[]) AS concepts, labels.panel_type
FROM (SELECT rowid AS position, key FROM figures_sorted) AS sorted
LEFT JOIN figure_labels AS labels ON labels.key = sorted.key
ORDER BY sorted.position""",
    "CREATE OR REPLACE TABLE figures AS SELECT * FROM figures_sorted POSITIONAL JOIN figures_labels_aligned",
    "DROP TABLE figures_sorted",
    "DROP TABLE figures_labels_aligned",
)
# Distinct items of the list columns users filter on, so case-insensitive input resolves to exact spellings
# (then `list_contains`, fast) instead of lower-casing every item of every row.
MATERIALISE_VOCABULARY = """
CREATE OR REPLACE TABLE figure_vocabulary AS
SELECT 'article_mesh_terms' AS list_column, item AS value, lower(item) AS value_lower, count(*) AS figures
FROM (SELECT unnest(article_mesh_terms) AS item FROM figures) GROUP BY ALL
UNION ALL
SELECT 'article_keywords', item, lower(item), count(*)
FROM (SELECT unnest(article_keywords) AS item FROM figures) GROUP BY ALL"""
LIST_VALUES = """
SELECT value FROM figure_vocabulary
WHERE list_column = ? AND value_lower IN (SELECT lower(unnest(?::VARCHAR[])))
ORDER BY value"""
MATERIALISE_TABLE = {  # tables copied as they are from their Parquet file
    "articles": "CREATE OR REPLACE TABLE articles AS SELECT * FROM read_parquet($path)",
    "errors": "CREATE OR REPLACE TABLE errors AS SELECT * FROM read_parquet($path)",
}
EMPTY_TABLE = {  # when the Parquet file is absent (an extraction that has not written it yet)
    "articles": "CREATE OR REPLACE TABLE articles ({columns})",
    "errors": "CREATE OR REPLACE TABLE errors ({columns})",
}

# --- full-text search (the text index, workbench.catalog.textindex) -----------------------------------------
DROP_SEARCH_INDEX = f"DROP SCHEMA IF EXISTS {SEARCH_INDEX} CASCADE"  # the DuckDB fts index of earlier versions
# The words of a phrase in order (a bound regular expression from `filters.phrase_pattern`), field by field
# as the index saw them (in-line references joined by newlines).
PHRASE_MATCHES = """regexp_matches(lower(strip_accents(coalesce(caption, ''))), ?)
    OR regexp_matches(lower(strip_accents(array_to_string(coalesce(inline_references, []), chr(10)))), ?)
    OR regexp_matches(lower(strip_accents(coalesce(article_title, ''))), ?)"""
# The text index (workbench.catalog.textindex) stores DuckDB's hash(key) of each figure: its matches, bound as one
# UBIGINT[] parameter, select figures here; with the selection's conditions, the ranked batch's survivors.
TEXT_MATCHES = "hash(key) IN (SELECT unnest(?::UBIGINT[]))"
SELECTED_HASHES = """
SELECT hash(key) AS key_hash FROM figures WHERE ({where}) AND hash(key) IN (SELECT unnest(?::UBIGINT[]))"""

# --- filters, previews, subsets ---------------------------------------------------------------------------
COUNT = "SELECT count(*) FROM figures WHERE {where}"
PREVIEW = """
SELECT key, pmcid, caption, article_title, license_group, shard, jpg_offset, jpg_size, width, height
FROM figures WHERE {where}
ORDER BY key
LIMIT ?"""
PREVIEW_KEYS = """
SELECT key, pmcid, caption, article_title, license_group, shard, jpg_offset, jpg_size, width, height
FROM figures WHERE key IN (SELECT unnest(?::VARCHAR[]))"""
SELECTED_ROWS = "SELECT * FROM figures WHERE {where} ORDER BY key"
SELECTION_SUMMARY = """
SELECT license_group, coalesce(license, '') AS license, count(*) AS samples
FROM figures WHERE {where}
GROUP BY ALL ORDER BY ALL"""
FIGURE_COLUMNS = (
    "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
    "AND table_name = 'figures' ORDER BY column_index"
)

# --- statistics -------------------------------------------------------------------------------------------
GROUPABLE_COLUMNS = (
    "license_group",
    "license",
    "article_year",
    "article_journal",
    "article_type",
    "concept",
    "panel_type",
    "source_format",
)
COUNT_BY = """
SELECT {column} AS value, count(*) AS figures
FROM figures WHERE {where}
GROUP BY ALL ORDER BY figures DESC, value NULLS LAST
LIMIT ?"""
COUNT_BY_LIST_ITEM = {  # list columns: one count per item
    "article_mesh_terms": "SELECT unnest(article_mesh_terms) AS value FROM figures WHERE {where}",
    "article_keywords": "SELECT unnest(article_keywords) AS value FROM figures WHERE {where}",
    "article_subjects": "SELECT unnest(article_subjects) AS value FROM figures WHERE {where}",
    "concepts": "SELECT unnest(concepts) AS value FROM figures WHERE {where}",
}
COUNT_ITEMS = """
SELECT value, count(*) AS figures FROM ({items})
GROUP BY ALL ORDER BY figures DESC, value
LIMIT ?"""
FIGURES_PER_ARTICLE = """
SELECT figures_in_article, count(*) AS articles FROM (
    SELECT pmcid, count(*) AS figures_in_article FROM figures WHERE {where} GROUP BY pmcid
) GROUP BY ALL ORDER BY figures_in_article"""
HISTOGRAM = {  # a numeric column binned in SQL (bins of width ?), so plots stay small on 24M rows
    "caption_length": "SELECT floor(caption_length / ?) AS bin, count(*) AS figures FROM figures "
    "WHERE {where} GROUP BY ALL ORDER BY bin",
    "width": "SELECT floor(width / ?) AS bin, count(*) AS figures FROM figures WHERE {where} GROUP BY ALL ORDER BY bin",
    "height": "SELECT floor(height / ?) AS bin, count(*) AS figures FROM figures "
    "WHERE {where} GROUP BY ALL ORDER BY bin",
}
IMAGE_SIZES = """
SELECT floor(width / ?) AS width_bin, floor(height / ?) AS height_bin, count(*) AS figures
FROM figures WHERE {where}
GROUP BY ALL ORDER BY ALL"""
SUMMARY = """
SELECT count(*) AS figures,
       count(DISTINCT pmcid) AS articles,
       count(duplicate_of) AS duplicates,
       coalesce(sum(jpg_size), 0) AS image_bytes,
       min(article_year) AS first_year,
       max(article_year) AS last_year
FROM figures WHERE {where}"""
