"""The `workbench` command line: one subcommand per stage, each with --help; bad input is one clear line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.cli import build_parser, main

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
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(argv: list[str], tmp_path: Path, capsys) -> None:
    missing = tmp_path / "does-not-exist"
    args = [a.replace("{missing}", str(missing)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"workbench {argv[0]}: error:")
    assert not missing.exists(), "a bad command must not create what it was pointed at"
