"""Multiple-choice accuracy with and without retrieval on a MIRAGE-style question file, with 95% intervals.

Accepted files: MIRAGE's benchmark.json ({dataset: {id: {"question", "options": {letter: text}, "answer"}}}), one
dataset's {id: {...}}, or a list of {"question", "options", "answer"} objects (options may be a list: A, B, ...).
Accuracy intervals are Wilson's; the difference (with minus without) gets a paired bootstrap interval.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InputNotFound, UserError
from workbench.rag.client import LLMConfig, chat
from workbench.rag.retrieve import Source

MC_SYSTEM = "You answer multiple-choice biomedical questions. Use the sources when they are given."
INSTRUCTION = 'Answer with the letter of the correct option only, as JSON: {"answer_choice": "A"}.'
LETTER = re.compile(r'answer_choice"?\s*:\s*"?([A-J])\b|\b([A-J])\b')


@dataclass(frozen=True)
class Question:
    dataset: str
    id: str
    question: str
    options: dict[str, str]
    answer: str

    def prompt(self) -> str:
        choices = "\n".join(f"{letter}. {text}" for letter, text in self.options.items())
        return f"{self.question}\n\nOptions:\n{choices}\n\n{INSTRUCTION}"


def _question(dataset: str, qid: str, item: Any) -> Question:
    if not isinstance(item, dict) or not {"question", "options", "answer"} <= set(item):
        raise UserError(f"question {dataset}/{qid} needs question, options and answer")
    options = item["options"]
    if isinstance(options, list):
        options = {chr(ord("A") + i): str(text) for i, text in enumerate(options)}
    answer = str(item["answer"]).strip()
    if answer not in options:
        raise UserError(f"question {dataset}/{qid}: answer {answer!r} is not one of its options {sorted(options)}")
    return Question(dataset, str(qid), str(item["question"]), {str(k): str(v) for k, v in options.items()}, answer)


def load_questions(path: Path) -> list[Question]:
    if not path.is_file():
        raise InputNotFound(f"question file {path} not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"question file {path} is not JSON: {error}") from error
    if isinstance(data, list):
        return [_question(path.stem, str(i), item) for i, item in enumerate(data)]
    if not isinstance(data, dict) or not data:
        raise UserError(f"question file {path}: expected a list or an object of questions")
    if all(isinstance(v, dict) and "question" in v for v in data.values()):
        return [_question(path.stem, qid, item) for qid, item in data.items()]
    return [_question(name, qid, item) for name, items in data.items() for qid, item in items.items()]


def parse_choice(reply: str, letters: list[str]) -> str | None:
    for match in LETTER.finditer(reply or ""):
        letter = match.group(1) or match.group(2)
        if letter in letters:
            return letter
    return None


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(b) - mean(a) over questions resampled together."""
    if not len(a):
        return (0.0, 0.0)
    picks = np.random.default_rng(seed).integers(0, len(a), (rounds, len(a)))
    differences = b[picks].mean(axis=1) - a[picks].mean(axis=1)
    return (float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5)))


def mc_messages(question: Question, sources: list[Source] | None = None) -> list[dict[str, str]]:
    """The question alone, or after the numbered sources retrieved for it."""
    text = question.prompt()
    if sources is not None:
        listing = "\n".join(source.line() for source in sources) or "(no sources found)"
        text = f"Sources:\n{listing}\n\n{text}"
    return [{"role": "system", "content": MC_SYSTEM}, {"role": "user", "content": text}]


def evaluate(
    questions: list[Question],
    config: LLMConfig,
    retrieve: Callable[[str], list[Source]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Ask every question twice (without, then with the retrieved sources); accuracy, intervals, answers."""
    started = time.perf_counter()
    rows = []
    for i, question in enumerate(questions):
        plain = chat(config, mc_messages(question))
        sources = retrieve(question.question)
        grounded = chat(config, mc_messages(question, sources))
        letters = list(question.options)
        rows.append(
            {
                "dataset": question.dataset,
                "id": question.id,
                "answer": question.answer,
                "without": parse_choice(plain, letters),
                "with": parse_choice(grounded, letters),
                "sources": [source.pmcid for source in sources],
            }
        )
        if progress:
            progress(i + 1)
    without = np.array([row["without"] == row["answer"] for row in rows], dtype=float)
    with_ = np.array([row["with"] == row["answer"] for row in rows], dtype=float)
    n = len(rows)

    def summary(values: np.ndarray) -> dict[str, Any]:
        correct = int(values.sum())
        low, high = wilson(correct, n)
        return {"correct": correct, "accuracy": correct / n if n else 0.0, "ci95": [round(low, 4), round(high, 4)]}

    low, high = paired_bootstrap(without, with_)
    base = without.mean() if n else 0.0
    return {
        "questions": n,
        "model": config.model,
        "without_retrieval": summary(without),
        "with_retrieval": summary(with_),
        "difference": {
            "accuracy_points": float(with_.mean() - base) if n else 0.0,
            "ci95": [round(low, 4), round(high, 4)],
            "relative_percent": float((with_.mean() - base) / base * 100) if n and base else None,
        },
        "unparsed": {"without": sum(r["without"] is None for r in rows), "with": sum(r["with"] is None for r in rows)},
        "seconds": round(time.perf_counter() - started, 1),
        "answers": rows,
    }


def describe(report: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("without_retrieval", "with_retrieval"):
        part = report[name]
        low, high = part["ci95"]
        lines.append(
            f"{name.replace('_', ' ')}: accuracy {part['accuracy']:.3f} [{low:.3f}, {high:.3f}] "
            f"({part['correct']}/{report['questions']})"
        )
    diff = report["difference"]
    relative = f"{diff['relative_percent']:+.1f}%" if diff["relative_percent"] is not None else "n/a"
    lines.append(
        f"difference: {diff['accuracy_points']:+.3f} [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}] "
        f"(relative {relative})"
    )
    return lines
