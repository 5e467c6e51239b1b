"""Concept taxonomies as data: BIOMEDICA's collapsed taxonomy (the default) or a user's own YAML, validated.

A taxonomy file (data_catalog/taxonomy/NAME.yaml, or any path) holds `name`, `version`, `globals` (global concept
-> list of local concepts), `panel_types` and `panel_subtypes` (value -> written definition), optionally
`panel_subtypes_for` (panel type -> the subtypes that go with it) and `definitions` (concept -> definition).
A BIOMEDICA-style JSON file (`{global: [locals]}`) is accepted too, with the default panel types.
Every decision records the taxonomy `version` it was made with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InputNotFound, UserError
from workbench.resources import DATA_CATALOG

TAXONOMY_DIR = DATA_CATALOG / "taxonomy"
DEFAULT = "biomedica"
_KEYS = {"name", "version", "globals", "panel_types", "panel_subtypes", "panel_subtypes_for", "definitions"}
_LIST_SHOWN = 40  # allowed values named in an error message


@dataclass(frozen=True)
class Taxonomy:
    """Global concepts with their local concepts, panel types and subtypes, and their written definitions."""

    name: str
    version: str
    globals: tuple[str, ...]
    locals: Mapping[str, tuple[str, ...]]  # global concept -> its local concepts
    panel_types: tuple[str, ...]
    panel_subtypes: tuple[str, ...]
    definitions: Mapping[str, str] = field(default_factory=dict)
    panel_subtypes_for: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def all_locals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(local for group in self.globals for local in self.locals[group]))

    def global_of(self, local: str) -> tuple[str, ...]:
        """The global concepts a local concept belongs to."""
        return tuple(group for group in self.globals if local in self.locals[group])

    def locals_for(self, globals_: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The local concepts of the chosen global concepts (what a picker offers)."""
        return tuple(dict.fromkeys(local for group in globals_ if group in self.locals for local in self.locals[group]))

    def resolve(self, kind: str, value: str) -> str:
        """The exact spelling of `value` among the `kind` values ('global', 'local', 'panel_type', 'panel_subtype'),
        compared without case; UserError naming the allowed values when none matches."""
        allowed = self._allowed(kind)
        if value in allowed:
            return value
        folded = {item.casefold(): item for item in allowed}
        found = folded.get(str(value).strip().casefold())
        if found is None:
            raise UserError(_unknown(kind, value, self, allowed))
        return found

    def check(self, label: Any, *, strict: bool = True) -> None:
        """Refuse a label outside the taxonomy (UserError naming the bad value and the allowed ones).

        `label` is a `Decision`, `Label` or mapping with global_concepts, local_concepts, panel_type,
        panel_subtype. `strict` also requires each local concept to belong to one of the label's global concepts
        and the subtype to go with the panel type (imports of BIOMEDICA's own file use strict=False: 93 of its
        local concepts sit under another global, 997 subtypes contradict their panel type).
        """
        get = label.get if isinstance(label, Mapping) else lambda name, default=None: getattr(label, name, default)
        globals_ = tuple(get("global_concepts", ()) or ())
        locals_ = tuple(get("local_concepts", ()) or ())
        for value in globals_:
            if value not in self.globals:
                raise UserError(_unknown("global", value, self, self.globals))
        for value in locals_:
            if value not in self.all_locals:
                allowed = self.locals_for(globals_) if strict and globals_ else self.all_locals
                raise UserError(_unknown("local", value, self, allowed))
            if strict and globals_ and not set(self.global_of(value)) & set(globals_):
                raise UserError(
                    f"local concept {value!r} belongs to {', '.join(self.global_of(value))}, not to the chosen "
                    f"global concept(s) {', '.join(globals_)}; allowed: {_listed(self.locals_for(globals_))}"
                )
        panel_type, subtype = get("panel_type"), get("panel_subtype")
        if panel_type and panel_type not in self.panel_types:
            raise UserError(_unknown("panel_type", panel_type, self, self.panel_types))
        if subtype and subtype not in self.panel_subtypes:
            raise UserError(_unknown("panel_subtype", subtype, self, self.panel_subtypes))
        fitting = self.panel_subtypes_for.get(panel_type or "", ())
        if strict and panel_type and subtype and fitting and subtype not in fitting:
            raise UserError(
                f"panel subtype {subtype!r} does not go with panel type {panel_type!r}; allowed: {_listed(fitting)}"
            )

    def _allowed(self, kind: str) -> tuple[str, ...]:
        choices = {
            "global": self.globals,
            "local": self.all_locals,
            "panel_type": self.panel_types,
            "panel_subtype": self.panel_subtypes,
        }
        if kind not in choices:
            raise ValueError(f"kind must be one of {', '.join(choices)}, got {kind!r}")
        return choices[kind]

    def describe(self) -> str:
        return (
            f"taxonomy {self.name} {self.version}: {len(self.globals)} global, {len(self.all_locals)} local concepts, "
            f"panel types {', '.join(self.panel_types)}"
        )


def _listed(values: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(repr(value) for value in values[:_LIST_SHOWN])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _LIST_SHOWN else "")


def _unknown(kind: str, value: Any, taxonomy: Taxonomy, allowed: tuple[str, ...]) -> str:
    what = {"global": "global concept", "local": "local concept"}.get(kind, kind.replace("_", " "))
    return f"unknown {what} {value!r} (taxonomy {taxonomy.name} {taxonomy.version}); allowed: {_listed(allowed)}"


def load_taxonomy(name_or_path: str | Path | None = None) -> Taxonomy:
    """The taxonomy called `name_or_path` in data_catalog/taxonomy/, or read from a YAML/JSON file.

    None: BIOMEDICA's collapsed taxonomy. A malformed file is a UserError naming the file and the problem.
    """
    if isinstance(name_or_path, Taxonomy):
        return name_or_path
    name = str(name_or_path or DEFAULT)
    bundled = TAXONOMY_DIR / f"{name}.yaml"
    if "/" not in name and not name.endswith((".yaml", ".yml", ".json")) and bundled.is_file():
        return _load(str(bundled))
    path = Path(name).expanduser()
    if not path.is_file():
        bundled_names = sorted(p.stem for p in TAXONOMY_DIR.glob("*.yaml") if "globals:" in p.read_text())
        raise InputNotFound(f"no taxonomy {name!r}: not a file, nor one of {', '.join(bundled_names)}")
    return _load(str(path.resolve()))


@cache
def _load(path: str) -> Taxonomy:
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise UserError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'} ({error})") from None
    if isinstance(data, dict) and "globals" not in data and path.endswith(".json"):
        data = {"name": Path(path).stem, "version": Path(path).stem, "globals": data}  # BIOMEDICA's JSON form
    return from_mapping(data, path)


def from_mapping(data: Any, where: str = "taxonomy") -> Taxonomy:
    """Validate a taxonomy given as plain data (the YAML form); UserError naming `where` and the problem."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: a taxonomy is a mapping with name, version and globals")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
    for key in ("name", "version"):
        if not isinstance(data.get(key), (str, int, float)) or not str(data.get(key)).strip():
            raise UserError(f"{where}: `{key}` must be a non-empty string")
    groups = data.get("globals")
    if not isinstance(groups, dict) or not groups:
        raise UserError(f"{where}: `globals` must map each global concept to a list of local concepts")
    locals_: dict[str, tuple[str, ...]] = {}
    for group, members in groups.items():
        if not isinstance(group, str) or not group.strip():
            raise UserError(f"{where}: global concept {group!r} is not a non-empty string")
        if not isinstance(members, list) or not all(isinstance(m, str) and m.strip() for m in members):
            raise UserError(f"{where}: the local concepts of {group!r} must be a list of non-empty strings")
        if len(set(members)) != len(members):
            raise UserError(f"{where}: {group!r} lists a local concept twice")
        locals_[group] = tuple(members)
    default = load_default_panels()
    panel_types = _definitions(data.get("panel_types", default["panel_types"]), "panel_types", where)
    subtypes = _definitions(data.get("panel_subtypes", default["panel_subtypes"]), "panel_subtypes", where)
    fitting_raw = data.get("panel_subtypes_for", default["panel_subtypes_for"] if "panel_types" not in data else {})
    fitting: dict[str, tuple[str, ...]] = {}
    for panel_type, values in (fitting_raw or {}).items():
        if panel_type not in panel_types or not isinstance(values, list) or not set(values) <= set(subtypes):
            raise UserError(f"{where}: panel_subtypes_for.{panel_type} names an unknown panel type or subtype")
        fitting[panel_type] = tuple(values)
    definitions = _definitions(data.get("definitions", {}), "definitions", where)
    return Taxonomy(
        name=str(data["name"]),
        version=str(data["version"]),
        globals=tuple(locals_),
        locals=locals_,
        panel_types=tuple(panel_types),
        panel_subtypes=tuple(subtypes),
        definitions={**panel_types, **subtypes, **definitions},
        panel_subtypes_for=fitting,
    )


def _definitions(value: Any, key: str, where: str) -> dict[str, str]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return {item: "" for item in value}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise UserError(f"{where}: `{key}` must map each value to its definition (or list the values)")
    return dict(value)


@cache
def load_default_panels() -> dict[str, Any]:
    data = yaml.safe_load((TAXONOMY_DIR / f"{DEFAULT}.yaml").read_text(encoding="utf-8"))
    return {key: data[key] for key in ("panel_types", "panel_subtypes", "panel_subtypes_for")}
