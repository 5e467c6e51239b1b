"""Execute stage notebooks with papermill into `<workspace>/runs/<timestamp>/`, then write a summary page.

A run config (YAML) names the workspace and the stages in order; each stage is a notebook in `notebooks/`
with its parameters. Parameters are checked against each notebook's `parameters` cell before anything runs,
because papermill only warns about a misspelt name.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InputNotFound, UserError
from workbench.extras import require
from workbench.resources import NOTEBOOKS
from workbench.workspace import Workspace

NOTEBOOKS_DIR = NOTEBOOKS
RUNNER_PARAMETERS = ("workspace", "results_path")  # set by the runner for every stage


@dataclass(frozen=True)
class Stage:
    notebook: str  # file name without .ipynb, e.g. "01_acquire"
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    workspace: Path
    stages: tuple[Stage, ...]
    notebooks_dir: Path = NOTEBOOKS_DIR
    kernel_name: str = "python3"


@dataclass(frozen=True)
class StageOutcome:
    notebook: str
    status: str  # "ok" | "failed"
    seconds: float
    output: Path
    results: dict[str, Any]
    error: str = ""


def load_run_config(path: str | Path) -> RunConfig:
    """Read a run config YAML; `{workspace}` inside string parameters expands to the workspace path."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"run config {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict) or "workspace" not in raw or "stages" not in raw:
        raise UserError(f"run config {path}: needs top-level keys 'workspace' and 'stages'")
    unknown = set(raw) - {"workspace", "stages", "notebooks_dir", "kernel_name"}
    if unknown:
        raise UserError(f"run config {path}: unknown keys {sorted(unknown)}")
    workspace = Path(raw["workspace"]).expanduser().resolve()
    stages = []
    for index, item in enumerate(raw["stages"] or []):
        if isinstance(item, str):
            item = {"notebook": item}
        if not isinstance(item, dict) or "notebook" not in item:
            raise UserError(f"run config {path}: stage {index} needs a 'notebook' name")
        parameters = {key: _expand(value, workspace) for key, value in (item.get("parameters") or {}).items()}
        stages.append(Stage(str(item["notebook"]).removesuffix(".ipynb"), parameters))
    notebooks_dir = Path(raw.get("notebooks_dir", NOTEBOOKS_DIR))
    return RunConfig(workspace, tuple(stages), notebooks_dir, raw.get("kernel_name", "python3"))


def _expand(value: Any, workspace: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{workspace}", str(workspace))
    if isinstance(value, list):
        return [_expand(item, workspace) for item in value]
    return value


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The names and literal values assigned in the notebook's cell tagged `parameters`."""
    nbformat = require("nbformat", "notebook", "workbench run")
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            values: dict[str, Any] = {}
            for node in tree.body:
                if not (
                    isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                ):
                    raise UserError(f"{notebook.name}: parameters cell may only hold `name = literal` lines")
                values[node.targets[0].id] = ast.literal_eval(node.value)
            return values
    raise UserError(f"{notebook.name}: no cell tagged 'parameters'")


def check_stages(config: RunConfig) -> None:
    """Fail before running anything if a notebook is missing or a parameter name is not in its parameters cell."""
    problems = []
    for stage in config.stages:
        notebook = config.notebooks_dir / f"{stage.notebook}.ipynb"
        if not notebook.is_file():
            problems.append(f"stage {stage.notebook!r}: notebook {notebook} does not exist")
            continue
        declared = notebook_parameters(notebook)
        for name in [*RUNNER_PARAMETERS, *stage.parameters]:
            if name not in declared:
                problems.append(
                    f"stage {stage.notebook!r}: parameter {name!r} is not in the notebook's parameters cell "
                    f"(declared: {', '.join(sorted(declared))})"
                )
    if problems:
        raise UserError("; ".join(problems))


def run_stages(
    config: RunConfig, run_name: str | None = None, log_output: bool = False
) -> tuple[Path, list[StageOutcome]]:
    """Execute every stage in order into a new run folder; stop at the first failure. Returns (run folder, outcomes)."""
    papermill = require("papermill", "notebook", "workbench run")
    check_stages(config)
    workspace = Workspace(config.workspace).ensure()
    run_dir = workspace.runs / (run_name or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    run_dir.mkdir(parents=True, exist_ok=False)
    resolved = [{"notebook": s.notebook, "parameters": _stage_parameters(config, s, run_dir)} for s in config.stages]
    (run_dir / "run_config.json").write_text(
        json.dumps({"workspace": str(config.workspace), "stages": resolved}, indent=2)
    )
    outcomes: list[StageOutcome] = []
    for stage, spec in zip(config.stages, resolved, strict=True):
        output = run_dir / f"{stage.notebook}.ipynb"
        results_path = Path(spec["parameters"]["results_path"])
        started = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(config.notebooks_dir / f"{stage.notebook}.ipynb"),
                str(output),
                parameters=spec["parameters"],
                kernel_name=config.kernel_name,
                progress_bar=False,
                log_output=log_output,
                cwd=str(Path.cwd()),
            )
        except Exception as error:  # papermill raises PapermillExecutionError with the cell's traceback
            outcomes.append(
                StageOutcome(stage.notebook, "failed", time.perf_counter() - started, output, {}, _short_error(error))
            )
            break
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}
        outcomes.append(StageOutcome(stage.notebook, "ok", time.perf_counter() - started, output, results))
    write_summary(run_dir, config, outcomes)
    return run_dir, outcomes


def _stage_parameters(config: RunConfig, stage: Stage, run_dir: Path) -> dict[str, Any]:
    parameters = {"workspace": str(config.workspace), "results_path": str(run_dir / f"{stage.notebook}.results.json")}
    parameters.update(stage.parameters)
    return parameters


def _short_error(error: Exception) -> str:
    ename, evalue = getattr(error, "ename", type(error).__name__), getattr(error, "evalue", str(error))
    return f"{ename}: {evalue}"[:2000]


def write_summary(run_dir: Path, config: RunConfig, outcomes: list[StageOutcome]) -> Path:
    """Write `summary.json` and a human-readable `summary.md` listing what each stage produced."""
    ran = {o.notebook for o in outcomes}
    rows = [
        {
            "notebook": o.notebook,
            "status": o.status,
            "seconds": round(o.seconds, 1),
            "output": o.output.name,
            "results": o.results,
            "error": o.error,
        }
        for o in outcomes
    ]
    rows += [{"notebook": s.notebook, "status": "not run"} for s in config.stages if s.notebook not in ran]
    (run_dir / "summary.json").write_text(
        json.dumps({"workspace": str(config.workspace), "stages": rows}, indent=2, default=str) + "\n"
    )
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"Workspace: `{config.workspace}`",
        "",
        "| stage | status | seconds | executed notebook |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['notebook']} | {r['status']} | {r.get('seconds', '')} | {r.get('output', '')} |" for r in rows]
    for row in rows:
        if row.get("results") or row.get("error"):
            lines += ["", f"## {row['notebook']}", ""]
            lines += [f"- **{key}**: {_brief(value)}" for key, value in sorted(row.get("results", {}).items())]
            if row.get("error"):
                lines += ["", "```", row["error"], "```"]
    path = run_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 300 else text[:297] + "..."
