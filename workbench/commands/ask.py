"""`workbench ask "QUESTION"`: an answer from retrieved figures and article passages, citations resolved to PMCIDs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.commands._argtypes import non_negative_int, positive_int
from workbench.errors import InputNotFound, UserError
from workbench.rag.client import ENV, LLMConfig
from workbench.workspace import Workspace

NAME = "ask"
HELP = "Answer a question from the workspace's figures and articles through an OpenAI-compatible chat endpoint."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"The endpoint: --base-url/--llm-model or ${ENV['base_url']}, ${ENV['model']}, ${ENV['api_key']} (bearer), "
        f"${ENV['images']}=1 when the model takes images. No hosted model is assumed. --retrieve-only prints the "
        "numbered sources without calling any model. Exit 2: bad input or an endpoint error."
    )
    parser.add_argument("question", help="the question")
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument("--image", type=Path, help="an image the question is about")
    parser.add_argument("--retrieve-only", action="store_true", help="print the sources, call no model")
    parser.add_argument("--embeddings", metavar="NAME", help="indexed embedding set (default: the only index)")
    parser.add_argument("--figures", type=positive_int, default=5, help="figures retrieved (default 5)")
    parser.add_argument("--passages", type=non_negative_int, default=3, help="article passages (default 3)")
    parser.add_argument("--base-url", help="chat endpoint base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--llm-model", help="model name at the endpoint")
    parser.add_argument("--json", action="store_true", help="print the answer, citations and sources as JSON")


def run(args: argparse.Namespace) -> int:
    from workbench.commands.serve import default_embeddings
    from workbench.rag.answer import ask
    from workbench.search.query import SearchEngine

    workspace = Workspace.at(args.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    image = None
    if args.image is not None:
        if not args.image.is_file():
            raise InputNotFound(f"image {args.image} not found")
        image = args.image.read_bytes()
    config = None if args.retrieve_only else LLMConfig.resolve(args.base_url, args.llm_model)
    with SearchEngine.open(workspace, args.embeddings or default_embeddings(workspace)) as engine:
        answer = ask(engine, args.question, config, image, args.figures, args.passages)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2))
        return 0
    if answer.text:
        print(answer.text.strip())
        print()
        print("Citations:")
        for source in answer.cited:
            print(f"  [{source.number}] {source.pmcid}" + (f" figure {source.key}" if source.key else " article text"))
        if answer.unresolved:
            print(f"  (cited but not among the sources: {', '.join(map(str, answer.unresolved))})")
        print()
    print("Sources:")
    for source in answer.sources:
        print(f"  {source.line()}")
    return 0
