"""`ask`: retrieve sources, assemble a prompt with numbered sources, call the endpoint, resolve the citations."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import UserError
from workbench.rag.client import LLMConfig, chat
from workbench.rag.retrieve import Source, retrieve
from workbench.search.query import SearchEngine
from workbench.serve.files import figure_bytes

SYSTEM = (
    "You answer biomedical questions from the numbered sources given (figure captions and article passages from "
    "PubMed Central). Cite every claim with the source numbers in square brackets, e.g. [1] or [2][3]. If the "
    "sources do not answer the question, say so."
)
CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    sources: list[Source]
    cited: list[Source] = field(default_factory=list)
    unresolved: list[int] = field(default_factory=list)  # numbers the answer cites that no source has

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "citations": [{"number": s.number, "pmcid": s.pmcid, "key": s.key, "kind": s.kind} for s in self.cited],
            "unresolved_citations": self.unresolved,
            "sources": [source.to_dict() for source in self.sources],
        }


def _data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def build_messages(
    question: str, sources: list[Source], image: bytes | None = None, figure_images: list[bytes] | None = None
) -> list[dict[str, Any]]:
    """System + user messages; images (the question's, then retrieved figures') as parts when given."""
    listing = "\n".join(source.line() for source in sources) or "(no sources found)"
    text = f"Sources:\n{listing}\n\nQuestion: {question}\nAnswer with citations like [1]."
    if image is None and not figure_images:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for data in ([image] if image else []) + list(figure_images or []):
        parts.append({"type": "image_url", "image_url": {"url": _data_url(data)}})
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": parts}]


def resolve_citations(text: str, sources: list[Source]) -> tuple[list[Source], list[int]]:
    by_number = {source.number: source for source in sources}
    numbers = [int(n) for group in CITATION.findall(text) for n in group.split(",")]
    cited = [by_number[n] for n in dict.fromkeys(numbers) if n in by_number]
    return cited, sorted({n for n in numbers if n not in by_number})


def ask(
    engine: SearchEngine,
    question: str,
    config: LLMConfig | None,
    image: bytes | None = None,
    figures: int = 5,
    passages: int = 3,
    figure_images: int = 2,
) -> Answer:
    """Answer `question` from retrieved sources; with `config` None only the sources are returned."""
    if not question.strip():
        raise UserError("the question is empty")
    sources = retrieve(engine, question, image, figures, passages)
    if config is None:
        return Answer(question, "", sources)
    shown = []
    if config.images:
        for source in [s for s in sources if s.kind == "figure"][:figure_images]:
            row = engine.describe([source.key])[source.key]
            shown.append(figure_bytes(engine.workspace, row["shard"], row["jpg_offset"], row["jpg_size"]))
    messages = build_messages(question, sources, image if config.images else None, shown)
    text = chat(config, messages)
    cited, unresolved = resolve_citations(text, sources)
    return Answer(question, text, sources, cited, unresolved)
