"""Hostile raw WHERE clauses are refused or harmless: the catalog is unchanged and no file is read or written."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import duckdb
import pytest
from catalog_fixture import build_workspace

from workbench.catalog import FigureFilter, WhereRefused, canonical_where, open_catalog, refresh_catalog
from workbench.cli import main

SECRET_TEXT = "s3cr3t-canary-7f1e"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    built = build_workspace(root / "ws", articles=20, seed=11)
    refresh_catalog(built.workspace, progress=False)
    secret = root / "secret.txt"
    secret.write_text(SECRET_TEXT)
    return built.workspace, secret, root / "written.csv"


def _hostile(secret, target) -> list[str]:
    return [
        "1=1; DROP TABLE figures",
        "1=1) OR (1=1",
        "1=1)) OR ((1=1",
        f"key IN (SELECT content FROM read_text('{secret}'))",
        f"(SELECT count(*) FROM read_text('{secret}')) > 0",
        f"EXISTS (SELECT * FROM read_csv('{secret}'))",
        f"read_text('{secret}') IS NOT NULL",
        f"read_csv('{secret}') IS NOT NULL",
        f"1=1; COPY figures TO '{target}'",
        f"1=1) TO '{target}' --",
        f"COPY (SELECT 1) TO '{target}'",
        f"1=1; ATTACH '{target}' AS other",
        f"ATTACH '{target}' AS other",
        "1=1; INSTALL httpfs",
        "INSTALL httpfs",
        "1=1; LOAD httpfs",
        "getenv('HOME') IS NOT NULL",
        "1=1; SET enable_external_access = true",
        "1=1; SET threads = 1",
        "SET threads = 1",
        "1=1; PRAGMA database_list",
        "PRAGMA show_tables",
        "current_setting('threads') = 2",
        "key IN (SELECT pmcid FROM downloads)",
        "key IN (SELECT key FROM annotations)",
        "articles.text LIKE '%a%'",
        "1=1 UNION SELECT content FROM read_text('/etc/hostname')",
        "EXISTS (SELECT 1)",
        "key = ?",
        "key = $1",
        "count(*) OVER () > 0",
        "fts_main_search_text.match_bm25(key, 'cells') IS NOT NULL",
        "system.main.getenv('HOME') IS NOT NULL",
        "query('SELECT 1') IS NOT NULL",
        "sleep_ms(100000) IS NULL",
        "repeat('x', 1000000000) = ''",
        "nextval('s') > 0",
        "1=1; DETACH catalog",
        "1=1 /*",
        "'unterminated",
    ]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hostile_where_clauses_are_refused(setup):
    workspace, secret, target = setup
    before = _digest(workspace.database)
    with open_catalog(workspace) as catalog:
        total = catalog.count()
        for clause in _hostile(secret, target):
            with pytest.raises(WhereRefused):
                catalog.count(FigureFilter(where=clause))
        assert catalog.count() == total
    assert _digest(workspace.database) == before
    assert not target.exists()


def test_hostile_clauses_on_the_command_line(setup, capsys):
    workspace, secret, target = setup
    before = _digest(workspace.database)
    for clause in _hostile(secret, target)[:20]:
        assert (
            main(["subset", "--workspace", str(workspace.root), "--name", "evil", "--where", clause, "--no-progress"])
            == 2
        )
        output = capsys.readouterr()
        assert "error" in output.err and SECRET_TEXT not in output.out + output.err
    assert _digest(workspace.database) == before
    assert not target.exists() and not (workspace.subsets / "evil").exists()


@pytest.mark.parametrize("clause", ["1=1 -- a comment", "/* note */ width > 0", "((width > 0))"])
def test_harmless_oddities_are_accepted_and_contained(setup, clause):
    workspace, _, _ = setup
    with open_catalog(workspace) as catalog:
        assert catalog.count(FigureFilter(where=clause)) == catalog.count()
        # the clause is re-rendered as one parenthesised expression, so combining cannot widen the filter
        narrowed = FigureFilter(license_groups=("commercial",), where=clause)
        assert catalog.count(narrowed) == catalog.count(FigureFilter(license_groups=("commercial",)))


def test_canonical_where_is_one_parenthesised_expression():
    assert canonical_where("a = 1 OR b = 2") == "(((a = 1) OR (b = 2)))"
    assert canonical_where("caption ILIKE '%x-ray%' -- note") == "((caption ~~* '%x-ray%'))"
    assert "--" not in canonical_where("1=1 -- ) OR (1=1")


def test_the_connection_itself_cannot_write_read_files_or_change_settings(setup):
    """Defence in depth: even SQL that skipped validation cannot escape the locked read-only connection."""
    workspace, secret, target = setup
    before = _digest(workspace.database)
    with open_catalog(workspace) as catalog:
        for statement in [
            f"SELECT * FROM read_text('{secret}')",
            f"SELECT * FROM read_csv('{secret}')",
            f"COPY figures TO '{target}'",
            f"ATTACH '{target}' AS other",
            "INSTALL httpfs",
            "SET enable_external_access = true",
            "SET lock_configuration = false",
            "RESET enable_external_access",
            "DROP TABLE figures",
            "UPDATE figures SET caption = ''",
            f"EXPORT DATABASE '{target}.dir'",
        ]:
            with pytest.raises(duckdb.Error):
                catalog.connection.execute(statement)
    assert _digest(workspace.database) == before
    assert not target.exists() and not (target.parent / "written.csv.dir").exists()


def test_runaway_queries_are_stopped(setup):
    workspace, _, _ = setup
    with open_catalog(workspace, timeout_s=0.3) as catalog:
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match="longer than"):
            catalog.execute("SELECT sum(hash(i)) FROM range(100000000000) AS t(i)")
        assert time.perf_counter() - started < 10
        assert catalog.count() > 0  # the connection is still usable


BOMBS = [
    "length(lpad(key, 400000000, 'x')) = 0",
    "length(rpad(key, 400000000, 'x')) = 0",
    "length(lpad(key, width * 1000000, 'x')) = 0",
    "length(repeat(key, 400000000)) = 0",
    "length(printf('%0400000000d', width)) = 0",
    "length(printf('%*d', 400000000, width)) = 0",
    "length(format('{:>400000000}', key)) = 0",
    "length(format('{:>{}}', key, 400000000)) = 0",
    "length(replace(replace(replace(replace(replace(caption, 'a', 'aaaa'), 'a', 'aaaa'), 'a', 'aaaa'), "
    "'a', 'aaaa'), 'a', 'aaaa')) = 0",
    "length(replace(caption, 'a', caption)) = 0",
    "length(regexp_replace(caption, '', '" + "x" * 200 + "', 'g')) = 0",
    "length(regexp_replace(regexp_replace(regexp_replace(caption, '(.)', '\\1\\1\\1', 'g'), '(.)', '\\1\\1\\1', 'g'),"
    " '(.)', '\\1\\1\\1', 'g')) = 0",
    "len(list_transform(string_split(caption, ''), x -> caption)) = 0",
    "len(list_transform(string_split(caption, ''), x -> lpad(x, 4000, 'y'))) = 0",
    "len(list_transform(list_transform(list_transform(string_split(caption, ''), x -> x || x || x), "
    "x -> x || x || x), x -> x || x || x)) = 0",
    "length(array_to_string(string_split(caption, ''), '" + "y" * 100 + "')) = 0",
    "length(array_to_string(string_split(caption, ''), caption)) = 0",
    "damerau_levenshtein(caption, caption) = 0",
    "len(range(400000000)) = 0",
    "len(generate_series(1, 400000000)) = 0",
    "len(list_resize([1], 400000000)) = 0",
    "length(string_agg(key, ',')) = 0",
]


@pytest.mark.parametrize("clause", BOMBS)
def test_value_bombs_are_refused_before_they_run(clause):
    with pytest.raises(WhereRefused, match="refused"):
        canonical_where(clause)


@pytest.mark.parametrize(
    "clause",
    [
        "lower(caption) LIKE '%ct%' AND lpad(key, 20, '0') > '0'",
        "regexp_replace(caption, '\\s+', ' ', 'g') ILIKE '%a b%'",
        "list_transform(article_mesh_terms, x -> lower(x)) @> ['humans']",
        "len(list_filter(article_mesh_terms, x -> contains(caption, x))) >= 0",
        "array_to_string(inline_references, ' ') ILIKE '%figure%'",
        "printf('%05d', width) > '0' AND strftime(article_date, '%Y') > '1990'",
        "replace(caption, '-', ' ') LIKE '%'",
        "damerau_levenshtein(key, 'PMC100000_F1_0') < 40",
        "article_date < today() - INTERVAL 1 YEAR",
    ],
)
def test_bounded_uses_of_the_same_functions_still_work(setup, clause):
    workspace, _, _ = setup
    with open_catalog(workspace) as catalog:
        assert catalog.count(FigureFilter(where=clause)) >= 0


def test_every_volatile_duckdb_function_is_known_as_nondeterministic():
    from workbench.catalog.sandbox_rules import ALLOWED_FUNCTIONS, NON_DETERMINISTIC

    connection = duckdb.connect()
    volatile = {
        name
        for (name,) in connection.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE stability IN ('VOLATILE', "
            "'CONSISTENT_WITHIN_QUERY') AND function_type = 'scalar'"
        ).fetchall()
    }
    allowed_volatile = (volatile & ALLOWED_FUNCTIONS) - NON_DETERMINISTIC
    assert not allowed_volatile
    assert {"random", "setseed", "now", "today", "current_date", "uuid", "gen_random_uuid", "nextval"} <= (
        NON_DETERMINISTIC
    )


_MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(run.returncode, round(time.perf_counter() - started, 2), peak, run.stderr.strip().replace(chr(10), ' | '))
"""


@pytest.mark.parametrize("command", ["count", "subset"])
def test_acceptance_lpad_bomb_ends_fast_in_little_memory(setup, command):
    workspace, _, _ = setup
    before = _digest(workspace.database)
    clause = "length(lpad(key, 400000000, 'x')) = 0"
    cli = [sys.executable, "-m", "workbench.cli"]
    argv = [*cli, "catalog", "count"] if command == "count" else [*cli, "subset", "--name", "bomb"]
    argv += ["--workspace", str(workspace.root), "--where", clause, "--no-progress"]
    output = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, timeout=120)
    code, seconds, peak_mb, message = output.stdout.split(" ", 3)
    assert int(code) == 2, message
    assert float(seconds) < 10 and int(peak_mb) < 500
    assert "lpad" in message and "refused" in message and len(message.splitlines()) == 1
    assert _digest(workspace.database) == before and not (workspace.subsets / "bomb").exists()
