"""Where the files beside the code live: `data_catalog/` (schemas, licences, sources) and `notebooks/`.

In a checkout (an editable install or PYTHONPATH) they are the repository's own folders; an installed wheel carries
copies under `workbench/_bundled/` (put there by setup.py's build step). The checkout copy wins when both exist.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent
BUNDLED = PACKAGE / "_bundled"
SHIPPED = ("data_catalog", "notebooks")


def resource_dir(name: str) -> Path:
    """The folder `name` (one of SHIPPED): the checkout's when this code runs from one, else the bundled copy."""
    if name not in SHIPPED:
        raise KeyError(f"{name!r} is not shipped with workbench; choose from {', '.join(SHIPPED)}")
    checkout = CHECKOUT / name
    if (CHECKOUT / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return BUNDLED / name


DATA_CATALOG = resource_dir("data_catalog")
NOTEBOOKS = resource_dir("notebooks")
