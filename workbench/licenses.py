"""Licence groups as BIOMEDICA defines them (see data_catalog/licenses.yaml)."""

from __future__ import annotations

import re
from functools import cache

import yaml

from workbench.errors import UserError
from workbench.resources import DATA_CATALOG

LICENSE_GROUPS = ("commercial", "noncommercial", "other")


@cache
def _groups() -> dict[str, str]:
    spec = yaml.safe_load((DATA_CATALOG / "licenses.yaml").read_text())
    return {_normalise(name): group for group, names in spec["groups"].items() for name in names}


def _normalise(name: str) -> str:
    text = name.strip().upper().replace("_", " ").replace("-", " ")
    text = re.sub(r"\s+\d+(\.\d+)?$", "", text)  # "CC BY 4.0" -> "CC BY"
    text = re.sub(r"\s+", " ", text)
    return text


def license_group(license_name: str | None) -> str:
    """Map a licence string from the file list or `<license>` (e.g. "CC BY-NC 4.0") to its group."""
    if not license_name:
        return "other"
    return _groups().get(_normalise(license_name), "other")


def check_groups(groups: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate user-given licence group names; raise UserError naming the bad one."""
    for group in groups:
        if group not in LICENSE_GROUPS:
            raise UserError(f"unknown licence group {group!r}; choose from {', '.join(LICENSE_GROUPS)}")
    return tuple(groups)
