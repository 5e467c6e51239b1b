"""Hostile raw WHERE clauses are refused or harmless: the catalog is unchanged and no file is read or written."""

from __future__ import annotations

import hashlib
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
