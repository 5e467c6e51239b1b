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
RELATION_EXISTS = (
    "SELECT count(*) FROM (SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
    "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = current_database()) WHERE table_name = ?"
)
SCHEMA_EXISTS = "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() AND schema_name = ?"

# --- materialisation: an immutable base file + a small delta in the root file ----------------------------
# The base (WS/catalog.base-TOKEN.duckdb) holds `figures` sorted by (license_group, article_year, key): zone maps
# then skip most row groups for the usual licence + year filters; long text columns are zstd-compressed. The root
# (WS/catalog.duckdb) holds `figures_delta` (rows added since the base), `figures_removed` (base keys replaced
# or gone) and the view `figures` over both; readers attach the base as `catalog_base`.
BASE_ALIAS = "catalog_base"
BASE_ORDER = "ORDER BY license_group, article_year NULLS FIRST, key"
ZSTD_COLUMNS = frozenset({"caption", "article_title", "image_sha256", "image_phash", "doi", "image_file_name", "key"})
# `{source}`: the figures Parquet, with MeSH terms from the current enrichment when there is one.
FIGURES_SOURCE = "read_parquet($path)"
FIGURES_SOURCE_WITH_MESH = """(
SELECT figures.* REPLACE (coalesce(mesh.mesh_terms, figures.article_mesh_terms) AS article_mesh_terms)
FROM read_parquet($path) AS figures
LEFT JOIN (SELECT pmid, any_value(mesh_terms) AS mesh_terms FROM read_parquet($pubmed) GROUP BY pmid) AS mesh
    ON mesh.pmid = figures.pmid)"""
CREATE_BASE = "CREATE TABLE figures ({columns}, cluster_id INTEGER)"
# `{columns}`: the schema's columns qualified by `source.`; `{assignments}`: ASSIGNMENTS or NO_ASSIGNMENTS.
FILL_BASE = (
    "INSERT INTO figures SELECT {columns}, assignments.cluster_id FROM {source} AS source "
    "LEFT JOIN {assignments} AS assignments ON assignments.key = source.key "
)
FILL_BASE_ALL = FILL_BASE + BASE_ORDER
# A base too big to sort in memory at once is written one licence group at a time (rows stay in BASE_ORDER).
FILL_BASE_GROUP = FILL_BASE + "WHERE source.license_group IS NOT DISTINCT FROM $group " + BASE_ORDER
# Keys sorted, with what the base is sorted by: `key = ?` reads one row group (`workbench.catalog.keyed`).
KEY_DIRECTORY = "CREATE TABLE key_directory AS SELECT key, license_group, article_year FROM figures ORDER BY key"
BASE_GROUPS = "SELECT DISTINCT license_group FROM {source} AS source ORDER BY license_group NULLS FIRST"
# Each figure's cluster in the current clustering: a column of the cache (base and delta), so label filters and
# per-cluster counts are column scans. A new clustering builds a new base; `cluster assign` growing the current one
# moves only the figures whose cluster changed into the delta (MOVED).
ASSIGNMENTS = "(SELECT key, cluster_id::INTEGER AS cluster_id FROM read_parquet($assignments))"
NO_ASSIGNMENTS = "(SELECT NULL::VARCHAR AS key, NULL::INTEGER AS cluster_id WHERE FALSE)"
CREATE_DELTA = f"CREATE OR REPLACE TABLE figures_delta AS SELECT * FROM {BASE_ALIAS}.main.figures LIMIT 0"
CREATE_REMOVED = "CREATE OR REPLACE TABLE figures_removed (key VARCHAR)"
# A leading cheap column (`graphic_index`, excluded again) is what a union keeps for a bare count(*): without
# it DuckDB reads `key` (long strings) of every row that passes the filters (3x slower counts, measured at 2M).
FIGURES_VIEW = f"""CREATE OR REPLACE VIEW figures AS SELECT * EXCLUDE (cheap_first) FROM (
SELECT graphic_index AS cheap_first, * FROM {BASE_ALIAS}.main.figures
UNION ALL SELECT graphic_index AS cheap_first, * FROM figures_delta)"""
FIGURES_VIEW_WITH_REMOVALS = f"""CREATE OR REPLACE VIEW figures AS SELECT * EXCLUDE (cheap_first) FROM (
SELECT base.graphic_index AS cheap_first, base.*
FROM {BASE_ALIAS}.main.figures AS base ANTI JOIN figures_removed AS removed ON removed.key = base.key
UNION ALL SELECT graphic_index AS cheap_first, * FROM figures_delta)"""
BASE_NAME = "SELECT fingerprint FROM catalog_state WHERE name = 'base'"
DELTA_ROWS = "SELECT (SELECT count(*) FROM figures_delta), (SELECT count(*) FROM figures_removed)"
BASE_ROWS = f"SELECT count(*) FROM {BASE_ALIAS}.main.figures"
# Incremental: rows of new extraction parts (their superseded articles left out, MeSH from the current enrichment),
# the live rows they replace or that newly superseded articles drop, and duplicate_of recomputed for every image
# whose group changed (a live row whose value changes is replaced by a corrected copy in the delta).
INCOMING = """
CREATE OR REPLACE TEMP TABLE incoming AS
SELECT {columns}, assignments.cluster_id FROM (
    SELECT parts.* EXCLUDE (filename) REPLACE (coalesce({mesh}, parts.article_mesh_terms, []::VARCHAR[])
        AS article_mesh_terms)
    FROM read_parquet($parts, filename = true, union_by_name = true) AS parts
    {mesh_join}
    ANTI JOIN superseded ON superseded.part = parts.filename AND superseded.pmcid IS NOT DISTINCT FROM parts.pmcid
) AS source
LEFT JOIN {assignments} AS assignments ON assignments.key = source.key"""
INCOMING_MESH = "mesh.terms"
INCOMING_MESH_JOIN = (
    "LEFT JOIN (SELECT pmid, any_value(mesh_terms) AS terms FROM read_parquet($pubmed) GROUP BY pmid) AS mesh "
    "ON mesh.pmid = parts.pmid"
)
LEAVING = """
CREATE OR REPLACE TEMP TABLE leaving AS
SELECT key, image_sha256 FROM figures
WHERE pmcid IN (SELECT pmcid FROM gone) OR key IN (SELECT key FROM incoming)"""
# Narrow first (key, image_sha256, duplicate_of of the touched image groups), whole rows only for what changes:
# a join filter cannot skip a scan's other columns, so `SELECT *` over every live row would read all of them.
REGROUPED = """
CREATE OR REPLACE TEMP TABLE regrouped_keys AS
WITH affected AS (
    SELECT image_sha256 FROM incoming UNION SELECT image_sha256 FROM leaving
), candidates AS (
    SELECT key, image_sha256, duplicate_of, false AS is_new FROM figures
    WHERE image_sha256 IN (SELECT image_sha256 FROM affected) AND key NOT IN (SELECT key FROM leaving)
    UNION ALL
    SELECT key, image_sha256, duplicate_of, true AS is_new FROM incoming
)
SELECT key, is_new, regrouped_dup FROM (
    SELECT *, CASE WHEN row_number() OVER same_image > 1 THEN first_value(key) OVER same_image END AS regrouped_dup
    FROM candidates
    WINDOW same_image AS (PARTITION BY image_sha256 ORDER BY key)
) WHERE is_new OR regrouped_dup IS DISTINCT FROM duplicate_of"""
REGROUPED_ROWS = """
CREATE OR REPLACE TEMP TABLE regrouped AS
SELECT incoming.*, true AS is_new, regrouped_keys.regrouped_dup
FROM incoming JOIN regrouped_keys ON regrouped_keys.key = incoming.key AND regrouped_keys.is_new
UNION ALL
SELECT changed.*, false AS is_new, regrouped_keys.regrouped_dup
FROM (SELECT * FROM figures WHERE key IN (SELECT key FROM regrouped_keys WHERE NOT is_new)) AS changed
JOIN regrouped_keys ON regrouped_keys.key = changed.key AND NOT regrouped_keys.is_new"""
REPLACED = "INSERT INTO leaving SELECT key, image_sha256 FROM regrouped WHERE NOT is_new"
VOCABULARY_CHANGE = """
CREATE OR REPLACE TEMP TABLE vocabulary_change AS
SELECT list_column, value, sum(n) AS n FROM (
    SELECT 'article_mesh_terms' AS list_column, unnest(article_mesh_terms) AS value, -1 AS n
    FROM figures WHERE key IN (SELECT key FROM leaving)
    UNION ALL SELECT 'article_keywords', unnest(article_keywords), -1
    FROM figures WHERE key IN (SELECT key FROM leaving)
    UNION ALL SELECT 'article_mesh_terms', unnest(article_mesh_terms), 1 FROM regrouped
    UNION ALL SELECT 'article_keywords', unnest(article_keywords), 1 FROM regrouped
) GROUP BY ALL"""
APPLY_VOCABULARY = """
CREATE OR REPLACE TABLE figure_vocabulary AS
SELECT list_column, value, lower(value) AS value_lower, sum(figures)::BIGINT AS figures FROM (
    SELECT list_column, value, figures FROM figure_vocabulary
    UNION ALL SELECT list_column, value, n FROM vocabulary_change
) GROUP BY list_column, value HAVING sum(figures) > 0"""
APPLY_REMOVALS = (
    "INSERT INTO figures_removed SELECT DISTINCT key FROM leaving WHERE key NOT IN (SELECT key FROM figures_removed)"
)
DELETE_FROM_DELTA = "DELETE FROM figures_delta WHERE key IN (SELECT key FROM leaving)"
APPLY_INSERTS = """
INSERT INTO figures_delta
SELECT * EXCLUDE (is_new, regrouped_dup) REPLACE (regrouped_dup AS duplicate_of) FROM regrouped"""
# Figures whose cluster differs from the current clustering's assignments (`{assignments}` as above); delta rows
# are updated in place, base rows replaced by corrected copies in the delta.
MOVED = """
CREATE OR REPLACE TEMP TABLE moved AS
SELECT figures.key, assignments.cluster_id AS new_cluster
FROM (SELECT key, cluster_id FROM figures) AS figures
LEFT JOIN {assignments} AS assignments ON assignments.key = figures.key
WHERE figures.cluster_id IS DISTINCT FROM assignments.cluster_id"""
MOVE_IN_DELTA = """
UPDATE figures_delta SET cluster_id = moved.new_cluster FROM moved WHERE figures_delta.key = moved.key"""
MOVED_BASE = f"""
CREATE OR REPLACE TEMP TABLE moved_base AS
SELECT base.* REPLACE (moved.new_cluster AS cluster_id)
FROM {BASE_ALIAS}.main.figures AS base JOIN moved ON moved.key = base.key
WHERE base.key NOT IN (SELECT key FROM figures_removed)"""
MOVE_FROM_BASE = "INSERT INTO figures_delta SELECT * FROM moved_base"
MOVED_REMOVALS = "INSERT INTO figures_removed SELECT key FROM moved_base"
CLUSTERED_BASE_ROWS = f"SELECT count(cluster_id) FROM {BASE_ALIAS}.main.figures"
# Near-duplicate groups (the near-duplicates stage): a narrow table joined by key at query time.
MATERIALISE_NEAR_DUPLICATES = """
CREATE OR REPLACE TABLE figure_near_duplicates AS
SELECT key, near_duplicate_of FROM read_parquet($path) ORDER BY key"""
GROUPED_VIEW = """
CREATE OR REPLACE VIEW figures_grouped AS
SELECT figures.*, near.near_duplicate_of
FROM figures
LEFT JOIN figure_near_duplicates AS near ON near.key = figures.key"""
GROUPED_WHERE = "key IN (SELECT figures.key FROM figures_grouped AS figures WHERE {where})"
DROP_CLUSTERS_TABLE = "DROP TABLE IF EXISTS figure_clusters"  # the narrow cluster table of version 6 caches
EMPTY_NEAR_DUPLICATES = "CREATE OR REPLACE TABLE figure_near_duplicates (key VARCHAR, near_duplicate_of VARCHAR)"
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
# A count with label conditions (`Catalog.count`): the other conditions counted per cluster (one aggregation over
# the cluster_id column), summed over the clusters whose label matches, then corrected by the images with labels of
# their own that pass the same conditions (`workbench.catalog.label_counts`).
# `{column}`: NULL (a plain count) or a name from GROUPABLE_COLUMNS (a count per value).
COUNT_PER_CLUSTER = "SELECT {column} AS value, cluster_id, count(*) FROM figures WHERE {where} GROUP BY ALL"
OVERRIDES_SELECTED = """
SELECT key, cluster_id, {column} AS value FROM figures
WHERE ({where}) AND key IN (SELECT unnest(?::VARCHAR[]))"""
PREVIEW = """
SELECT key, pmcid, caption, article_title, license_group, shard, jpg_offset, jpg_size, width, height
FROM figures WHERE {where}
ORDER BY key
LIMIT ?"""
PREVIEW_COLUMNS = "key, pmcid, caption, article_title, license_group, shard, jpg_offset, jpg_size, width, height"
SELECTED_ROWS = "SELECT * FROM figures WHERE {where} ORDER BY key"
SELECTION_SUMMARY = """
SELECT license_group, coalesce(license, '') AS license, count(*) AS samples
FROM figures WHERE {where}
GROUP BY ALL ORDER BY ALL"""
FIGURE_COLUMNS = "SELECT column_name FROM (DESCRIBE SELECT * FROM figures)"

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
