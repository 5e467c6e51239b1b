"""The `workbench` command line: one subcommand per stage, each with --help; bad input is one clear line, exit 2."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import duckdb
import pytest

from workbench.cli import build_parser, main
from workbench.errors import EXIT_INTERNAL, ResourceBusy, UserError

STAGES = ("sample-mirror", "acquire", "enrich", "extract", "catalog", "subset", "run")


def test_every_stage_has_a_subcommand_with_help(capsys) -> None:
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(STAGES) <= set(choices)
    for name in STAGES:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: workbench" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["extract", "--workspace", "{missing}"],
        ["enrich", "--workspace", "{missing}"],
        ["acquire", "--workspace", "{tmp}/ws", "--source", "{missing}"],
        ["sample-mirror", "{tmp}/m", "--articles", "0", "--seed", "1"],
        ["run", "--config", "{missing}/run.yaml"],
        ["subset", "--workspace", "{tmp}", "--name", "x", "--year-from", "2030", "--year-to", "2020"],
        ["catalog", "count", "--workspace", "{tmp}", "--date-from", "last week"],
        ["enrich", "--workspace", "{tmp}", "--pmids", "12,abc"],
        ["acquire", "--workspace", "{tmp}/ws", "--source", "{tmp}", "--since", "yesterday"],
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(argv: list[str], tmp_path: Path, capsys) -> None:
    missing = tmp_path / "does-not-exist"
    args = [a.replace("{missing}", str(missing)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"workbench {argv[0]}: error:")
    assert not missing.exists(), "a bad command must not create what it was pointed at"


def _failing_catalog(monkeypatch, error: BaseException) -> None:
    """Make `workbench catalog` raise `error` from inside its stage code."""
    import workbench.commands.catalog as command

    def run(args) -> int:
        raise error

    monkeypatch.setattr(command, "run", run)


@pytest.mark.parametrize(
    ("error", "code", "start"),
    [
        (ResourceBusy("another `workbench extract` is running on WS"), 75, "workbench catalog: busy: another"),
        (KeyboardInterrupt(), 130, "workbench catalog: interrupted; re-run"),
        (UserError("--year-from 2030 is after --year-to 2020"), 2, "workbench catalog: error: --year-from"),
    ],
)
def test_each_kind_of_failure_has_its_own_exit_status(monkeypatch, tmp_path, capsys, error, code, start) -> None:
    _failing_catalog(monkeypatch, error)
    assert main(["catalog", "count", "--workspace", str(tmp_path)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(start)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("Expecting value: line 1 column 1 (char 0)"),  # e.g. a JSON error deep inside: not bad input
        OSError(28, "No space left on device"),
        duckdb.IOException("IO Error: Could not set lock on file\n\nmore detail"),
        FileNotFoundError(2, "No such file or directory", "/nonexistent/internal/part.parquet"),
    ],
)
def test_an_internal_error_exits_70_with_one_line_and_a_traceback_file(monkeypatch, tmp_path, capsys, error) -> None:
    _failing_catalog(monkeypatch, error)
    assert main(["catalog", "count", "--workspace", str(tmp_path)]) == EXIT_INTERNAL == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    match = re.fullmatch(r"workbench catalog: internal error: (\S+): (.+); traceback in (\S+)", err[0])
    assert match, err[0]
    assert match.group(1).endswith(type(error).__name__)
    trace = Path(match.group(3))
    assert trace.parent == tmp_path / "tmp"  # the workspace's tmp folder when the command names a workspace
    assert "Traceback (most recent call last)" in trace.read_text() and type(error).__name__ in trace.read_text()


def test_without_a_workspace_the_traceback_goes_to_the_system_temp_folder(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    import workbench.commands.sample_mirror as command

    monkeypatch.setattr(command, "run", lambda args: 1 / 0)
    assert main(["sample-mirror", str(tmp_path / "m")]) == 70
    line = capsys.readouterr().err.strip()
    assert line.startswith("workbench sample-mirror: internal error: ZeroDivisionError: division by zero; traceback in")
    assert Path(line.rsplit(" ", 1)[1]).parent == tmp_path


def test_a_missing_file_the_user_named_is_bad_input(tmp_path, capsys) -> None:
    missing = tmp_path / "pmcids.txt"
    code = main(
        ["acquire", "--workspace", str(tmp_path / "ws"), "--source", str(tmp_path), "--pmcid-file", str(missing)]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == f"workbench acquire: error: PMCID list not found: {missing}"


def test_a_bad_flag_is_an_argparse_error_with_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "--workers", "-1", "--workspace", "x"])
    assert exit_info.value.code == 2


def test_help_lists_every_command_and_a_command_parses_alone(capsys):
    """`workbench --help` lists every subcommand (help texts may hold a literal %); a run builds only its own."""
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    listed = capsys.readouterr().out
    assert "evaluate" in listed and "sample-mirror" in listed and "catalog" in listed
    assert build_parser("sample_mirror").parse_args(["sample-mirror", "OUT"]).command == "sample-mirror"
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == 2
