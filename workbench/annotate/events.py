"""The label store: every annotation decision is an event appended to WS/state/annotations.sqlite (WAL).

Nothing is overwritten: an undo is a new event, and the current label of a cluster or image is derived from the
events (`workbench.annotate.derive`). Many annotators (kernels, the Voila app, `annotate import`) append at once:
each write is one short `BEGIN IMMEDIATE` transaction, so writers queue for milliseconds and readers never wait.

Table `label_events` supersedes the older per-key table `annotations` (workbench.catalog.labels): its rows are
copied once into `label_events` as image decisions (taxonomy version "legacy") when the store is first opened
(up to `LEGACY_LIMIT` rows: a bigger table holds model labels for every figure, not expert decisions, and is
left alone with a warning), and the old table is left as it was. Workspace settings (e.g. `contested`: "wait"
or "latest") live in `label_settings`; both tables are part of `fingerprint()`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workbench.annotate.taxonomy import Taxonomy, load_taxonomy
from workbench.errors import UserError
from workbench.storage import connect_sqlite, write_transaction
from workbench.workspace import Workspace

TARGET_KINDS = ("cluster", "image")
LEGACY_LIMIT = 100_000  # old per-key rows copied into label_events at most (see `_migrate`)
ACTIONS = ("label", "skip", "undo", "adjudicate")
SETTINGS = {"contested": ("wait", "latest"), "taxonomy": None}  # name -> allowed values (None: any path/name)
EVENT_FIELDS = (
    "annotator",
    "clustering",
    "target_kind",
    "target",
    "action",
    "global_concepts",
    "local_concepts",
    "panel_type",
    "panel_subtype",
    "note",
    "taxonomy_version",
)
_SQL = {
    "create": f"""
        CREATE TABLE IF NOT EXISTS label_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            annotator TEXT NOT NULL,
            clustering TEXT NOT NULL,
            target_kind TEXT NOT NULL CHECK (target_kind IN {TARGET_KINDS}),
            target TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN {ACTIONS}),
            global_concepts TEXT NOT NULL,
            local_concepts TEXT NOT NULL,
            panel_type TEXT,
            panel_subtype TEXT,
            note TEXT NOT NULL,
            taxonomy_version TEXT NOT NULL
        )""",
    "index": "CREATE INDEX IF NOT EXISTS label_events_by_target ON label_events (clustering, target_kind, target)",
    "settings": "CREATE TABLE IF NOT EXISTS label_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "legacy_exists": "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'annotations'",
    "migrated": "SELECT value FROM label_settings WHERE name = 'legacy_migrated'",
    "migrate": """
        INSERT INTO label_events (created_at, annotator, clustering, target_kind, target, action, global_concepts,
                                  local_concepts, panel_type, panel_subtype, note, taxonomy_version)
        SELECT created_at, annotator, '', 'image', key, 'label',
               CASE WHEN concept IS NULL THEN '[]' ELSE json_array(concept) END, '[]', panel_type, NULL,
               'migrated from the annotations table', 'legacy'
        FROM annotations WHERE concept IS NOT NULL OR panel_type IS NOT NULL ORDER BY id""",
    "legacy_count": "SELECT count(*) FROM annotations",
    "mark_migrated": "INSERT OR REPLACE INTO label_settings VALUES ('legacy_migrated', ?)",
    "insert": f"INSERT INTO label_events ({', '.join(EVENT_FIELDS)}) VALUES ({', '.join('?' for _ in EVENT_FIELDS)})",
    "events": f"SELECT id, created_at, {', '.join(EVENT_FIELDS)} FROM label_events ORDER BY id",
    "events_of": f"SELECT id, created_at, {', '.join(EVENT_FIELDS)} FROM label_events WHERE clustering = ? "
    "OR target_kind = 'image' ORDER BY id",
    "events_after": f"SELECT id, created_at, {', '.join(EVENT_FIELDS)} FROM label_events WHERE id > ? ORDER BY id",
    "latest_of": "SELECT target_kind FROM label_events WHERE annotator = ? AND clustering = ? AND target = ? "
    "ORDER BY id DESC LIMIT 1",
    "fingerprint": "SELECT count(*), coalesce(max(id), 0) FROM label_events",
    "all_settings": "SELECT name, value FROM label_settings WHERE name != 'legacy_migrated' ORDER BY name",
    "set": "INSERT OR REPLACE INTO label_settings VALUES (?, ?)",
}
_READY: set[tuple[str, int]] = set()  # store files this process has created/migrated (skip that transaction)


@dataclass(frozen=True)
class Decision:
    """One annotator's decision about a cluster (target = its id as text) or an image (target = its key).

    `action`: 'label' (the fields say what it shows), 'skip' (no opinion), 'undo' (withdraws this annotator's
    previous decision on the target) or 'adjudicate' (settles a contested target; wins over the others).
    """

    annotator: str
    clustering: str
    target_kind: str
    target: str
    global_concepts: tuple[str, ...] = ()
    local_concepts: tuple[str, ...] = ()
    panel_type: str | None = None
    panel_subtype: str | None = None
    note: str = ""
    taxonomy_version: str = ""
    action: str = "label"

    def __post_init__(self) -> None:
        for name in ("global_concepts", "local_concepts"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            # kept in order and as given (BIOMEDICA's file repeats a concept now and then; export must match)
            cleaned = tuple(str(item).strip() for item in (value or ()) if str(item).strip())
            object.__setattr__(self, name, cleaned)
        object.__setattr__(self, "target", str(self.target).strip())
        for name in ("panel_type", "panel_subtype"):
            value = getattr(self, name)
            object.__setattr__(self, name, str(value).strip() or None if value is not None else None)
        if not str(self.annotator).strip():
            raise UserError("a decision needs an annotator name")
        if self.target_kind not in TARGET_KINDS:
            raise UserError(f"target_kind must be one of {', '.join(TARGET_KINDS)}, got {self.target_kind!r}")
        if self.action not in ACTIONS:
            raise UserError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if not self.target:
            raise UserError("a decision needs a target (a cluster id or an image key)")
        if self.target_kind == "cluster" and not self.target.isdigit():
            raise UserError(f"a cluster target is a cluster id (a whole number), got {self.target!r}")
        if self.target_kind == "cluster" and not str(self.clustering).strip():
            raise UserError("a cluster decision needs the clustering it belongs to")
        if self.action in ("label", "adjudicate") and not (self.global_concepts or self.panel_type):
            raise UserError(f"a {self.action} decision on {self.target} needs a global concept or a panel type")

    @property
    def has_label(self) -> bool:
        return self.action in ("label", "adjudicate")


@dataclass(frozen=True)
class Event:
    """A stored decision: its id (the order of events) and when it was written (UTC, ISO 8601)."""

    id: int
    created_at: str
    decision: Decision = field(repr=True)


class LabelStore:
    """Append and read the annotation events of one workspace; check labels against its taxonomy."""

    def __init__(self, workspace: Workspace | str, taxonomy: Taxonomy | str | None = None) -> None:
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
        self.path = self.workspace.annotations_db
        self._taxonomy = taxonomy

    @property
    def taxonomy(self) -> Taxonomy:
        """The taxonomy given, else the workspace's setting `taxonomy`, else BIOMEDICA's."""
        if not isinstance(self._taxonomy, Taxonomy):
            self._taxonomy = load_taxonomy(self._taxonomy or self.settings().get("taxonomy"))
        return self._taxonomy

    # --- writing -------------------------------------------------------------------------------------------
    def _connect(self):  # noqa: ANN202 - sqlite3.Connection
        connection = connect_sqlite(self.path)
        identity = _identity(self.path)
        if identity in _READY:
            return connection
        try:
            with write_transaction(connection):
                connection.execute(_SQL["create"])
                connection.execute(_SQL["index"])
                connection.execute(_SQL["settings"])
                if (
                    connection.execute(_SQL["legacy_exists"]).fetchone()[0]
                    and not connection.execute(_SQL["migrated"]).fetchone()
                ):
                    _migrate(connection, self.path)
        except BaseException:
            connection.close()
            raise
        _READY.add(identity)
        return connection

    def prepare(self, decision: Decision, *, strict: bool = True) -> Decision:
        """Check a decision's label against the taxonomy and stamp the taxonomy version (UserError when outside)."""
        if decision.has_label:
            self.taxonomy.check(decision, strict=strict)
        if not decision.taxonomy_version:
            decision = replace(decision, taxonomy_version=self.taxonomy.version)
        return decision

    def record(self, decision: Decision, *, strict: bool = True) -> int:
        """Append one decision (checked against the taxonomy); returns its event id."""
        return self.record_many([decision], strict=strict)[0]

    def record_many(self, decisions: Iterable[Decision], *, strict: bool = True) -> list[int]:
        """Append decisions in one transaction: all are checked first, so a bad one stores none of them."""
        rows = [_row(self.prepare(decision, strict=strict)) for decision in decisions]
        if not rows:
            return []
        connection = self._connect()
        try:
            with write_transaction(connection):
                return [connection.execute(_SQL["insert"], row).lastrowid for row in rows]
        finally:
            connection.close()

    def undo(self, annotator: str, clustering: str, target: str, target_kind: str | None = None) -> int:
        """Withdraw `annotator`'s latest decision on `target` (a new 'undo' event); UserError when there is none."""
        kind = target_kind
        if kind is None:
            connection = self._connect()
            try:
                found = connection.execute(_SQL["latest_of"], [annotator, clustering, str(target)]).fetchone()
            finally:
                connection.close()
            if not found:
                raise UserError(f"{annotator} has no decision on {target} in clustering {clustering!r} to undo")
            kind = found[0]
        return self.record(Decision(annotator, clustering, kind, str(target), action="undo"))

    def set_setting(self, name: str, value: str) -> None:
        """Set a workspace setting: `contested` ('wait': contested targets wait for adjudication; 'latest':
        the latest decision wins) or `taxonomy` (a bundled name or a file)."""
        if name not in SETTINGS:
            raise UserError(f"unknown annotation setting {name!r}; known: {', '.join(SETTINGS)}")
        allowed = SETTINGS[name]
        if allowed is not None and value not in allowed:
            raise UserError(f"setting {name} must be one of {', '.join(allowed)}, got {value!r}")
        if name == "taxonomy":
            load_taxonomy(value)  # refuse a bad taxonomy before storing it
        connection = self._connect()
        try:
            with write_transaction(connection):
                connection.execute(_SQL["set"], [name, value])
        finally:
            connection.close()

    # --- reading -------------------------------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        connection = self._connect()
        try:
            return dict(connection.execute(_SQL["all_settings"]).fetchall())
        finally:
            connection.close()

    def events(self, clustering: str | None = None, *, after: int = 0) -> list[Event]:
        """Stored events in order: all, or those of one clustering plus every image decision; `after` an id."""
        if not self.path.is_file():
            return []
        connection = self._connect()
        try:
            if after:
                rows = connection.execute(_SQL["events_after"], [after]).fetchall()
                if clustering is not None:
                    rows = [row for row in rows if row[3] == clustering or row[4] == "image"]
            elif clustering is None:
                rows = connection.execute(_SQL["events"]).fetchall()
            else:
                rows = connection.execute(_SQL["events_of"], [clustering]).fetchall()
        finally:
            connection.close()
        return [_event(row) for row in rows]

    def fingerprint(self) -> str:
        """'events:last id:settings' — changes with every appended event or changed setting; '0:0:' without a store."""
        if not self.path.is_file():
            return "0:0:"
        connection = self._connect()
        try:
            count, last = connection.execute(_SQL["fingerprint"]).fetchone()
            settings = connection.execute(_SQL["all_settings"]).fetchall()
        finally:
            connection.close()
        return f"{count}:{last}:" + ",".join(f"{name}={value}" for name, value in settings)


def _migrate(connection: Any, path: Path) -> None:
    """Copy the old per-key table's rows once as image decisions; a table of more than LEGACY_LIMIT rows (model
    labels for every figure, not expert decisions) is left where it is, with a warning."""
    rows = connection.execute(_SQL["legacy_count"]).fetchone()[0]
    if rows > LEGACY_LIMIT:
        warnings.warn(
            f"{path}: the old annotations table holds {rows:,} per-figure labels; they are not expert decisions "
            f"and stay in that table (only tables of up to {LEGACY_LIMIT:,} rows are copied into label_events)",
            stacklevel=4,
        )
        connection.execute(_SQL["mark_migrated"], [f"skipped {rows} rows"])
        return
    connection.execute(_SQL["migrate"])
    connection.execute(_SQL["mark_migrated"], [f"{rows} rows"])


def _identity(path: Path) -> tuple[str, int]:
    return (str(path), path.stat().st_ino)


def _row(decision: Decision) -> tuple[Any, ...]:
    values = {name: getattr(decision, name) for name in EVENT_FIELDS}
    for name in ("global_concepts", "local_concepts"):
        values[name] = json.dumps(list(values[name]), ensure_ascii=False)
    return tuple(values[name] for name in EVENT_FIELDS)


def _event(row: tuple[Any, ...]) -> Event:
    values = dict(zip(EVENT_FIELDS, row[2:], strict=True))
    for name in ("global_concepts", "local_concepts"):
        values[name] = tuple(json.loads(values[name]))
    values["note"] = values["note"] or ""
    return Event(int(row[0]), str(row[1]), Decision(**values))
