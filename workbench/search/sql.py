"""Named SQL templates of the search (`{where}`: a compiled FigureFilter; values are bound parameters)."""

SELECTED_KEYS = "SELECT key FROM figures WHERE {where}"
SELECTED_KEYS_UP_TO = "SELECT key FROM figures WHERE {where} LIMIT ?"
# The selected figures of a batch of ranked articles (the `articles` list orders them).
ARTICLE_FIGURE_KEYS = "SELECT key, pmcid FROM figures WHERE ({where}) AND pmcid IN (SELECT unnest(?::VARCHAR[]))"
# Columns of a result and of a figure's page, read by key (`Catalog.rows_by_key`: a row group or two per key).
RESULT_COLUMNS = """key, pmcid, caption, license_group, license, article_title, article_year, shard, jpg_offset,
jpg_size, width, height"""
FIGURE_COLUMNS = """key, pmcid, pmid, doi, figure_label, caption, inline_references, license_group, license,
article_title, article_journal, article_year, shard, jpg_offset, jpg_size, width, height, cluster_id"""
ARTICLE_ROW = """
SELECT pmcid, pmid, doi, title, journal, year, article_type, license, license_group, abstract, figure_count
FROM articles WHERE pmcid = ?"""
ARTICLE_FIGURES = "SELECT key FROM figures WHERE pmcid = ? ORDER BY key"
ARTICLE_TEXTS = "SELECT pmcid, title, abstract, text FROM articles WHERE pmcid IN (SELECT unnest(?::VARCHAR[]))"
