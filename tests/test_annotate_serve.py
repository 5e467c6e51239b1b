"""`workbench annotate serve` refuses unsafe or bad settings with one line (exit 2) before starting anything; the
app page asks the annotator's name once. (Serving for real: tests/browser/test_annotate_browser.py.)"""

from __future__ import annotations

import json

import pytest

from workbench.annotate.app import AnnotationApp
from workbench.annotate.serve import AppSettings, app_notebook, is_loopback
from workbench.cli import main


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ip", "0.0.0.0", "--no-token"], "--no-token needs a loopback --ip"),
        (["--ip", "not-an-ip"], "is not an IP address"),
    ],
)
def test_unsafe_or_bad_settings_are_refused(tmp_path, capsys, extra, message) -> None:
    assert main(["annotate", "serve", "--workspace", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "tmp" / "annotate-app").exists()


def test_a_missing_workspace_is_refused(tmp_path, capsys) -> None:
    assert main(["annotate", "serve", "--workspace", str(tmp_path / "nope")]) == 2
    assert "no workspace" in capsys.readouterr().err


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_the_app_notebook_holds_one_call_with_literal_settings(tmp_path) -> None:
    settings = AppSettings(str(tmp_path), "k4", "", "uncertain", "emb")
    notebook = json.loads(app_notebook(tmp_path / "app", settings).read_text())
    (cell,) = notebook["cells"]
    assert cell["source"].startswith("from workbench.annotate.app import annotation_app")
    assert '"order": "uncertain"' in cell["source"] and notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_the_app_asks_for_a_name_and_reports_a_bad_workspace(tmp_path) -> None:
    app = AnnotationApp(AppSettings(str(tmp_path / "missing")))
    assert app.name in app.box.children  # asked (no --annotator given)
    app.start.click()
    assert "type your name" in app.message.value and app.loop is None
    app.name.value = "dr. who"
    app.start.click()
    assert app.loop is None and "missing" in app.message.value  # one clear line, no traceback
