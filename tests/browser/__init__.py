"""Browser tests: JupyterLab in headless Chromium (fixtures: conftest.py; helpers: tests/browser_harness.py)."""
