"""`workbench evaluate`: task formats, metrics cross-checked against clip_benchmark and open_clip_train, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evaluate_fixture import (
    CLASSES,
    folder_task,
    mubench_task,
    table_task,
    tiny_model,
    webdataset_task,
    write_task,
)

from workbench.cli import main
from workbench.evaluate import retrieval
from workbench.evaluate.run import EvalConfig, evaluate


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("evaluate")
    return {
        "root": root,
        "model": tiny_model(root / "model", seed=0),
        "other": tiny_model(root / "model", seed=1),
        "folder": folder_task(root / "folder", corrupt=2),
    }


def _run(made: dict, task: Path, **options) -> dict:
    return evaluate(EvalConfig(model=made["model"], task=str(task), progress=False, save=False, **options))


def test_cli_json_and_saved_results(made: dict, capsys: pytest.CaptureFixture) -> None:
    workspace = made["root"] / "ws"
    workspace.mkdir(exist_ok=True)
    argv = ["evaluate", "--workspace", str(workspace), "--model", made["model"], "--task", str(made["folder"])]
    assert main([*argv, "--json", "--no-progress"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results["top1"]) == {"value", "ci95"}
    low, high = results["top1"]["ci95"]
    assert low <= results["top1"]["value"] <= high
    assert results["data"]["decode_failures"]["count"] == 2  # counted and reported; the run went on
    assert results["zeroshot"]["n"] == 4 * len(CLASSES)
    assert results["task"]["version"] == "1" and results["seed"] == 0
    assert results["model"]["checkpoint_sha256"] and results["model"]["versions"]["open_clip_torch"]
    saved = json.loads(Path(results["path"]).read_text())
    assert saved["zeroshot"]["top1"] == results["top1"]
    assert sum(map(sum, saved["zeroshot"]["confusion_matrix"])) == saved["zeroshot"]["n"]
    # the same seed gives the same CIs; the text form names chance level
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "zero-shot (6 classes, 24 images): top-1" in out and "chance top-1 16.7%" in out
    assert "2 failed to decode" in out
    assert json.loads(Path(results["path"]).read_text())["top1"] == results["top1"]


def test_every_format_gives_the_same_numbers(made: dict) -> None:
    root = made["root"]
    tasks = [
        table_task(root / "csv", suffix=".csv"),
        table_task(root / "pq", suffix=".parquet"),
        webdataset_task(root / "wds"),
        mubench_task(root / "mu"),
    ]
    reference = _run(made, made["folder"])
    for task in tasks:
        results = _run(made, task)
        for name in ("top1", "top5", "balanced_accuracy"):
            assert results["zeroshot"][name]["value"] == pytest.approx(reference["zeroshot"][name]["value"], abs=1e-9)
        assert results["zeroshot"]["confusion_matrix"] == reference["zeroshot"]["confusion_matrix"]
        assert results["data"]["decode_failures"]["count"] == 0
    assert _run(made, tasks[-1])["retrieval"]["n_texts"] == 2 * 4 * len(CLASSES)  # every caption option is a text


def _open_clip_model(spec: str):  # noqa: ANN202
    import open_clip

    _, config, checkpoint = spec.split(":")
    open_clip.add_model_config(config)
    model, _, preprocess = open_clip.create_model_and_transforms(Path(config).stem, pretrained=checkpoint)
    return model.eval(), preprocess, open_clip.get_tokenizer(Path(config).stem)


class _Listed:
    """A map-style dataset over (tensor, target) pairs with clip_benchmark's `classes` attribute."""

    def __init__(self, samples: list, classes: list[str]) -> None:
        self.samples, self.classes = samples, classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):  # noqa: ANN204
        return self.samples[index]


def _numpy2_accuracy(output, target, topk=(1,)):  # noqa: ANN001, ANN202
    """clip_benchmark 1.6.2's `accuracy`, its one line numpy >= 2.3 rejects (float() of a 1-element array) fixed."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [float(correct[:k].reshape(-1).float().sum().item()) / len(target) for k in topk]


def test_zeroshot_equals_clip_benchmark(made: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from PIL import Image

    zeroshot_classification = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")

    from workbench.evaluate.sources import load_data
    from workbench.evaluate.tasks import load_task

    monkeypatch.setattr(zeroshot_classification, "accuracy", _numpy2_accuracy)
    task = load_task(str(made["folder"]))
    data = load_data(task)
    for spec in (made["model"], made["other"]):
        ours = evaluate(EvalConfig(model=spec, task=str(made["folder"]), progress=False, save=False))["zeroshot"]
        model, preprocess, tokenizer = _open_clip_model(spec)
        labels = [c.label for c in task.classes]
        samples = []
        for ref, label in zip(data.images, data.labels, strict=True):
            if ref.path.endswith(".jpg") and "broken" not in ref.path:
                samples.append((preprocess(Image.open(ref.path).convert("RGB")), labels.index(label)))

        loader = torch.utils.data.DataLoader(_Listed(samples, task.class_names), batch_size=5)
        templates = {c.name: list(c.prompts) for c in task.classes}
        theirs = zeroshot_classification.evaluate(
            model, loader, tokenizer, task.class_names, templates, "cpu", amp=False
        )
        assert abs(ours["top1"]["value"] - theirs["acc1"]) <= 1e-6
        assert abs(ours["top5"]["value"] - theirs["acc5"]) <= 1e-6
        assert abs(ours["balanced_accuracy"]["value"] - theirs["mean_per_class_recall"]) <= 1e-6


def test_retrieval_equals_open_clip_train(made: dict) -> None:
    import torch
    import torch.nn.functional as F
    from open_clip_train.train import get_clip_metrics
    from PIL import Image

    from workbench.evaluate.sources import load_data
    from workbench.evaluate.tasks import load_task

    task = write_task(
        made["root"] / "folder" / "retrieval.yaml", {"format": "folder", "path": "images"}, ("retrieval",)
    )
    data = load_data(load_task(str(task)))
    ours = _run(made, task)["retrieval"]
    model, preprocess, tokenizer = _open_clip_model(made["model"])
    kept = [i for i, ref in enumerate(data.images) if "broken" not in ref.path]
    with torch.no_grad():
        images = torch.stack([preprocess(Image.open(data.images[i].path).convert("RGB")) for i in kept])
        image_features = F.normalize(model.encode_image(images), dim=-1)
        text_features = F.normalize(model.encode_text(tokenizer([data.captions[i][0] for i in kept])), dim=-1)
    theirs = get_clip_metrics(image_features, text_features, model.logit_scale.exp())
    for direction in retrieval.DIRECTIONS:
        for name in ("R@1", "R@5", "R@10", "mean_rank", "median_rank"):
            assert abs(ours[direction][name]["value"] - float(theirs[f"{direction}_{name}"])) <= 1e-6, (direction, name)


def test_retrieval_ranks_with_several_captions() -> None:
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1], [0, 1, 0]], np.float32)
    owner = np.array([0, 1, 2, 1])  # image 1 has two captions: the better-ranked one counts
    ranks = retrieval.ranks(images, texts, owner)
    assert ranks["image_to_text"].tolist() == [0, 0, 0]
    assert ranks["text_to_image"].tolist() == [0, 1, 0, 0]


def test_bad_input(made: dict, capsys: pytest.CaptureFixture) -> None:
    root = made["root"] / "bad"
    root.mkdir(exist_ok=True)
    no_prompts = root / "no-prompts.yaml"
    no_prompts.write_text(
        "name: x\nmetrics: [zeroshot]\ndata: {format: folder, path: ../folder/images}\n"
        "classes:\n  - {label: red, prompts: [a red image]}\n  - {label: green}\n"
    )
    config, checkpoint = made["model"].split(":")[1:]
    cases = [
        (["--model", made["model"], "--task", str(no_prompts)], "class 'green' has no prompts"),
        (["--model", "open_clip:no-such-arch:x.pt", "--task", str(made["folder"])], "unknown open_clip architecture"),
        (["--model", f"open_clip:{config}:{root}/missing.pt", "--task", str(made["folder"])], "missing.pt"),
        (["--model", made["model"], "--task", "no-such-task"], "unknown task 'no-such-task'"),
        (["--model", made["model"], "--task", "sample-concepts", "--workspace", str(root)], "no subset of workspace"),
        (["--model", "run:nope", "--task", str(made["folder"]), "--workspace", str(root)], "training run 'nope'"),
        (["--model", "init:nope", "--task", str(made["folder"]), "--workspace", str(root)], "training run 'nope'"),
        (["--model", "builtin", "--task", str(made["folder"])], "has no text tower"),
    ]
    for argv, message in cases:
        assert main(["evaluate", *argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_balanced_accuracy_and_bootstrap_match_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score

    from workbench.evaluate import bootstrap, zeroshot

    rng = np.random.default_rng(1)
    targets, predictions = rng.integers(0, 7, 60), rng.integers(0, 7, 60)
    draws = bootstrap.resample_indices(60, 50, seed=4)
    ours = zeroshot.balanced_accuracy(targets, predictions, 7, draws)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes predicted but absent from a resample
        theirs = [balanced_accuracy_score(targets[row], predictions[row]) for row in draws]
    assert np.allclose(ours, theirs, atol=1e-12)
    assert np.array_equal(draws, bootstrap.resample_indices(60, 50, seed=4))  # seeded: the same CIs


def test_workspace_paths_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative --workspace (the notebooks' `workspace/demo`) resolves against the current folder, not the task's."""
    from workbench.evaluate.sources import _expand
    from workbench.evaluate.tasks import load_task

    monkeypatch.chdir(tmp_path)
    task = load_task("sample-concepts")
    path = _expand(task, task.data["labels"], Path("ws"))
    assert path == tmp_path.resolve() / "ws" / "sample_mirror" / "ground_truth.jsonl"
