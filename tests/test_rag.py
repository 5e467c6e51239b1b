"""`workbench ask` and `workbench rag-eval` against a local stub chat endpoint that checks each request."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("faiss")
pytest.importorskip("open_clip")

from llm_stub import ChatStub  # noqa: E402
from search_fixture import SearchWorkspace, build_search_workspace  # noqa: E402

from workbench.catalog import open_catalog  # noqa: E402
from workbench.cli import main  # noqa: E402
from workbench.rag.evaluate import load_questions, paired_bootstrap, parse_choice, wilson  # noqa: E402
from workbench.rag.retrieve import passages  # noqa: E402

QUESTION = "What does light microscopy of cells in suspension show, and in how many participants?"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> SearchWorkspace:
    return build_search_workspace(tmp_path_factory.mktemp("rag"))


@pytest.fixture
def stub(monkeypatch):
    started = ChatStub().start()
    monkeypatch.setenv("WORKBENCH_LLM_BASE_URL", started.base_url)
    monkeypatch.setenv("WORKBENCH_LLM_MODEL", "stub-model")
    monkeypatch.setenv("WORKBENCH_LLM_API_KEY", started.api_key)
    monkeypatch.delenv("WORKBENCH_LLM_IMAGES", raising=False)
    yield started
    started.stop()


def _pmcids(root) -> set[str]:
    with open_catalog(root) as catalog:
        return {pmcid for (pmcid,) in catalog.execute("SELECT pmcid FROM figures").fetchall()}


def test_ask_cites_real_pmcids_of_retrieved_sources(made, stub, capsys):
    assert main(["ask", QUESTION, "--workspace", str(made.root), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    request = stub.requests[-1]
    assert request["path"] == "/v1/chat/completions" and request["headers"]["Authorization"] == "Bearer stub-key"
    assert request["body"]["model"] == "stub-model"
    system, user = request["body"]["messages"]
    assert system["role"] == "system" and "[1]" in system["content"]
    assert "Sources:\n[1] PMC" in user["content"] and QUESTION in user["content"]
    sources = {source["number"]: source for source in answer["sources"]}
    assert [c["number"] for c in answer["citations"]] == [1, 2]
    for citation in answer["citations"]:
        assert citation["pmcid"] == sources[citation["number"]]["pmcid"] and citation["pmcid"] in _pmcids(made.root)
    assert answer["citations"][0]["key"] == sources[1]["key"] is not None
    assert answer["unresolved_citations"] == [99]
    assert any(source["kind"] == "passage" for source in answer["sources"])


def test_ask_with_an_image_sends_a_multimodal_message_when_the_model_takes_images(made, stub, monkeypatch, tmp_path):
    with open_catalog(made.root) as catalog:
        row = catalog.preview(limit=1)[0]
    with open(made.root / row["shard"], "rb") as shard:
        shard.seek(row["jpg_offset"])
        (tmp_path / "q.jpg").write_bytes(shard.read(row["jpg_size"]))
    monkeypatch.setenv("WORKBENCH_LLM_IMAGES", "1")
    assert main(["ask", "What is shown?", "--workspace", str(made.root), "--image", str(tmp_path / "q.jpg")]) == 0
    parts = stub.requests[-1]["body"]["messages"][1]["content"]
    assert parts[0]["type"] == "text"
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 3 and all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)


def test_retrieve_only_prints_sources_and_calls_no_model(made, stub, capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_LLM_BASE_URL")
    assert main(["ask", QUESTION, "--workspace", str(made.root), "--retrieve-only"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Sources:") and "[1] PMC" in out and not stub.requests


def test_ask_without_an_endpoint_or_with_a_bad_key_is_a_clear_error(made, stub, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LLM_API_KEY", "wrong")
    assert main(["ask", QUESTION, "--workspace", str(made.root)]) == 2
    assert "answered 401" in capsys.readouterr().err
    monkeypatch.delenv("WORKBENCH_LLM_BASE_URL")
    assert main(["ask", QUESTION, "--workspace", str(made.root)]) == 2
    assert "WORKBENCH_LLM_BASE_URL" in capsys.readouterr().err


def test_rag_eval_reports_accuracy_with_and_without_retrieval(made, stub, tmp_path, capsys):
    with open_catalog(made.root) as catalog:
        unique = "SELECT caption FROM figures GROUP BY caption HAVING count(*) = 1"
        query = f"SELECT pmcid, caption FROM figures WHERE caption IN ({unique}) ORDER BY key"
        rows = catalog.execute(query).fetchall()
    assert len(rows) >= 8
    rows = rows[:8]
    others = sorted(_pmcids(made.root))
    questions = {}
    for i, (pmcid, caption) in enumerate(rows):
        wrong = [p for p in others if p != pmcid][:3]
        rotated = [pmcid, *wrong[1:]][i % 3 :] + [pmcid, *wrong[1:]][: i % 3]
        options = dict(zip("ABCD", [wrong[0], *rotated], strict=True))
        answer = next(letter for letter, text in options.items() if text == pmcid)
        questions[f"q{i}"] = {"question": caption, "options": options, "answer": answer}
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps({"captions": questions}))
    out = tmp_path / "report.json"
    command = ["rag-eval", "--workspace", str(made.root), "--questions", str(path), "--out", str(out)]
    assert main([*command, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "without retrieval: accuracy 0.000" in printed and "with retrieval: accuracy" in printed
    report = json.loads(out.read_text())
    assert report["questions"] == 8 and report["without_retrieval"]["correct"] == 0
    assert report["with_retrieval"]["accuracy"] > 0  # the stub answers from the first source only
    low, high = report["with_retrieval"]["ci95"]
    assert 0 <= low <= report["with_retrieval"]["accuracy"] <= high <= 1
    difference = report["difference"]
    assert difference["accuracy_points"] == report["with_retrieval"]["accuracy"]
    assert difference["ci95"][0] <= difference["accuracy_points"] <= difference["ci95"][1]
    assert len(stub.requests) == 16 and all(r["body"]["model"] == "stub-model" for r in stub.requests)


def test_question_files_and_statistics(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"question": "Q?", "options": ["x", "y"], "answer": "B"}]))
    (question,) = load_questions(listed)
    assert question.options == {"A": "x", "B": "y"} and question.answer == "B"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "Q?", "options": ["x"], "answer": "C"}]))
    with pytest.raises(ValueError, match="answer 'C'"):
        load_questions(bad)
    assert parse_choice('{"answer_choice": "C"}', ["A", "B", "C"]) == "C"
    assert parse_choice("The answer is B.", ["A", "B"]) == "B"
    assert parse_choice("no idea", ["A", "B"]) is None
    low, high = wilson(8, 10)
    assert 0.49 < low < 0.8 < high < 0.95
    import numpy as np

    assert paired_bootstrap(np.zeros(20), np.ones(20)) == (1.0, 1.0)
    text = "Introduction\n" + "A sentence about sepsis and cells. " * 40
    assert all(len(p) <= 640 for p in passages(text)) and len(passages(text)) > 1
