"""`workbench rag-eval`: multiple-choice accuracy with and without retrieval (MIRAGE-style questions), with CIs."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from workbench.commands._argtypes import non_negative_int, positive_int
from workbench.errors import UserError
from workbench.fileio import write_json_atomically
from workbench.rag.client import ENV, LLMConfig
from workbench.workspace import Workspace

NAME = "rag-eval"
HELP = "Multiple-choice accuracy with and without retrieval from the workspace, through a chat endpoint, with CIs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "QUESTIONS: MIRAGE's benchmark.json, one dataset's object, or a list of {question, options, answer}. "
        f"Endpoint: --base-url/--llm-model or ${ENV['base_url']}/${ENV['model']} (${ENV['api_key']} as bearer). "
        "Prints accuracy without and with retrieval (Wilson 95% CI) and their difference (paired bootstrap CI); "
        "--out writes the report with every answer as JSON. Exit 2: bad input or an endpoint error."
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder (the retrieval corpus)")
    parser.add_argument("--questions", required=True, type=Path, help="MIRAGE-style question file (JSON)")
    parser.add_argument("--limit", type=positive_int, help="only the first N questions")
    parser.add_argument("--embeddings", metavar="NAME", help="indexed embedding set (default: the only index)")
    parser.add_argument("--figures", type=positive_int, default=5, help="figures retrieved per question (5)")
    parser.add_argument("--passages", type=non_negative_int, default=3, help="article passages per question (3)")
    parser.add_argument("--base-url", help="chat endpoint base URL")
    parser.add_argument("--llm-model", help="model name at the endpoint")
    parser.add_argument("--out", type=Path, help="write the full report (JSON) here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from workbench.commands.serve import default_embeddings
    from workbench.rag.evaluate import describe, evaluate, load_questions
    from workbench.rag.retrieve import retrieve
    from workbench.search.query import SearchEngine

    workspace = Workspace.at(args.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    questions = load_questions(args.questions)[: args.limit]
    config = LLMConfig.resolve(args.base_url, args.llm_model, max_tokens=32)
    with (
        SearchEngine.open(workspace, args.embeddings or default_embeddings(workspace)) as engine,
        tqdm(total=len(questions), unit="question", disable=args.no_progress) as bar,
    ):
        report = evaluate(
            questions,
            config,
            lambda question: retrieve(engine, question, None, args.figures, args.passages),
            lambda done: bar.update(done - bar.n),
        )
    for line in describe(report):
        print(line)
    if args.out:
        write_json_atomically(report, args.out)
        print(f"report: {args.out}")
    return 0
