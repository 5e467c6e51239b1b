"""The papermill runner: parameters checked before running, notebooks executed in order, summary written."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from workbench.cli import main
from workbench.runner import check_stages, load_run_config, notebook_parameters, run_stages


def _write_notebook(folder: Path, name: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell(
        'workspace = "workspace/demo"  # workspace folder\n'
        'results_path = "results.json"  # where this notebook records its results\n'
        "factor = 2  # a number to multiply\n"
    )
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_code_cell("from workbench.notebook import record_results"),
        parameters,
        nbformat.v4.new_code_cell(body),
    ]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _config(tmp_path: Path, stages: list) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump({"workspace": str(tmp_path / "ws"), "notebooks_dir": str(tmp_path), "stages": stages})
    )
    return path


def test_notebook_parameters_reads_literals(tmp_path: Path) -> None:
    notebook = _write_notebook(tmp_path, "a", "pass")
    assert notebook_parameters(notebook) == {"workspace": "workspace/demo", "results_path": "results.json", "factor": 2}


def test_misspelt_parameter_is_refused_before_running(tmp_path: Path) -> None:
    _write_notebook(tmp_path, "01_a", "record_results(results_path, {'x': factor})")
    config = load_run_config(_config(tmp_path, [{"notebook": "01_a", "parameters": {"facter": 3}}]))
    with pytest.raises(ValueError, match="'facter' is not in the notebook's parameters cell"):
        check_stages(config)
    assert not (tmp_path / "ws" / "runs").exists()


def test_missing_notebook_is_refused(tmp_path: Path) -> None:
    config = load_run_config(_config(tmp_path, ["99_nothing"]))
    with pytest.raises(ValueError, match="does not exist"):
        check_stages(config)


def test_run_executes_in_order_and_writes_summary(tmp_path: Path) -> None:
    _write_notebook(tmp_path, "01_a", "record_results(results_path, {'value': factor * 10, 'ws': workspace})")
    _write_notebook(tmp_path, "02_b", "record_results(results_path, {'value': factor + 1})")
    config = load_run_config(
        _config(tmp_path, [{"notebook": "01_a", "parameters": {"factor": 3}}, {"notebook": "02_b.ipynb"}])
    )
    run_dir, outcomes = run_stages(config, run_name="t1")
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert outcomes[0].results == {"value": 30, "ws": str(tmp_path / "ws")}
    assert outcomes[1].results == {"value": 3}
    assert (run_dir / "01_a.ipynb").is_file() and (run_dir / "02_b.ipynb").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["ok", "ok"]
    assert "value" in (run_dir / "summary.md").read_text()
    resolved = json.loads((run_dir / "run_config.json").read_text())
    assert resolved["stages"][0]["parameters"]["factor"] == 3


def test_failing_stage_stops_the_run_and_cli_exits_non_zero(tmp_path: Path, capsys) -> None:
    _write_notebook(tmp_path, "01_bad", "raise RuntimeError('boom')")
    _write_notebook(tmp_path, "02_never", "record_results(results_path, {})")
    config_path = _config(tmp_path, ["01_bad", "02_never"])
    assert main(["run", "--config", str(config_path), "--name", "t2"]) == 1
    summary = json.loads((tmp_path / "ws" / "runs" / "t2" / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["failed", "not run"]
    assert "boom" in summary["stages"][0]["error"]


def test_bad_config_gives_clear_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: []\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "needs top-level keys" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2
