# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_CONFIG ?= notebooks/demo.yaml
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv demo test lint clean-demo

venv: $(STAMP)

# Every extra (notebook, embed, train) and dev: the demo runs the notebooks, the tests drive every client.
# pip's own cache (~/.cache/pip) keeps the large torch wheels, so a second clean clone installs offline-fast.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[all,dev]' 2> $(VENV)/pip-warnings.log || \
		{ cat $(VENV)/pip-warnings.log; exit 1; }
	touch $(STAMP)

demo: venv
	$(BIN)/workbench run --config $(DEMO_CONFIG)

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check workbench tests benchmarks
	$(BIN)/ruff format --check workbench tests benchmarks

clean-demo:
	rm -rf workspace/demo
