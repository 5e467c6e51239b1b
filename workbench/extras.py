"""Optional dependencies (pip extras): import one, or say in one line which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from workbench.errors import UserError

DISTRIBUTION = "biomedica-workbench"


class MissingExtra(UserError):
    """A stage needs a library from an extra that is not installed (exit status 2, the fix in the message)."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`; when it is not installed raise MissingExtra naming `extra` and what needed it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or module.split(".")[0] != error.name.split(".")[0]:
            raise  # the module is there but something it imports is broken: not a missing extra
        raise MissingExtra(
            f"{purpose} needs {module!r}, part of the {extra!r} extra: pip install '{DISTRIBUTION}[{extra}]'"
        ) from error
