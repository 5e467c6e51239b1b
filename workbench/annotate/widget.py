"""`AnnotateView`: the cluster annotation widget as widgets only (it knows no catalog and no label store).

One cluster at a time: title, progress, a suggestion line, a grid of thumbnails with captions (each can be selected
for a per-image override or enlarged; the PMCID links to the article), pickers (global concepts, local concepts of
the chosen globals, panel type and subtype, note), buttons (save, accept suggestion, skip, undo, back, label the
selected images) and a `KeyPad` for the keyboard. `AnnotateLoop` (loop.py) feeds it and listens to `on(action)`.

Keys: 1-9 toggle the first nine global concepts, Enter saves the cluster's label, a accepts the suggestion,
s skips, u undoes, b goes back, o gives the selected images the pickers' label, x clears the selection,
Escape closes the enlarged figure.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets

from workbench.annotate.keys import KeyPad
from workbench.annotate.values import Choices, LabelValue
from workbench.catalog.store import PreviewItem
from workbench.catalog.views import ERROR, NOTE, OK, coloured

ACTIONS = ("save", "accept", "skip", "undo", "back", "override", "enlarge", "close")
KEY_ACTIONS = {"Enter": "save", "a": "accept", "s": "skip", "u": "undo", "b": "back", "o": "override"}
KEY_HELP = (
    "keys: 1-9 toggle a global concept · Enter save · a accept suggestion · s skip · u undo · b back · "
    "o label selected images · x clear selection · Esc close"
)
GRID_SIZE = 20
CAPTION_CHARS = 110


class Tile:
    """One thumbnail of the grid: image, select toggle, enlarge button, caption with the article link."""

    def __init__(self, index: int, thumbnail_px: int) -> None:
        size = f"{thumbnail_px}px"
        self.key = ""
        self.image = widgets.Image(format="jpeg", layout=widgets.Layout(width=size, height=size, object_fit="contain"))
        self.select = widgets.ToggleButton(description="select", layout=widgets.Layout(width="70px"))
        self.enlarge = widgets.Button(description="enlarge", layout=widgets.Layout(width="70px"))
        self.caption = widgets.HTML(layout=widgets.Layout(width=size))
        self.select.add_class("wb-annotate-select")
        self.enlarge.add_class("wb-annotate-enlarge")
        self.box = widgets.VBox([self.image, widgets.HBox([self.select, self.enlarge]), self.caption])
        self.box.add_class("wb-annotate-tile")
        self.index = index

    def show(self, item: PreviewItem | None, badge: str = "") -> None:
        self.select.value = False
        if item is None:
            self.key = ""
            self.box.layout.display = "none"
            return
        self.key = item.key
        self.image.value = item.thumbnail
        caption = item.caption if len(item.caption) <= CAPTION_CHARS else item.caption[: CAPTION_CHARS - 3] + "..."
        self.caption.value = (
            f'<a href="{html.escape(item.url)}" target="_blank">{html.escape(item.pmcid)}</a>'
            f'<div style="line-height:1.2"><small>{html.escape(caption)}</small></div>'
            + (f'<div class="wb-annotate-badge">{coloured(badge, OK)}</div>' if badge else "")
        )
        self.box.layout.display = None


class AnnotateView:
    """Widgets of the annotation widget; `widget` is what the notebook displays."""

    def __init__(self, choices: Choices, grid_size: int = GRID_SIZE, thumbnail_px: int = 128) -> None:
        self.choices = choices
        self.title = widgets.HTML()
        self.progress = widgets.HTML()
        self.suggestion = widgets.HTML()
        self.status = widgets.HTML()
        self.tiles = [Tile(i, thumbnail_px) for i in range(grid_size)]
        for tile in self.tiles:
            tile.enlarge.on_click(lambda _b, tile=tile: self._fire("enlarge", tile.key))
        self.grid = widgets.GridBox(
            [tile.box for tile in self.tiles],
            layout=widgets.Layout(grid_template_columns=f"repeat(5, {thumbnail_px + 24}px)", grid_gap="6px"),
        )
        self.large_image = widgets.Image(format="jpeg", layout=widgets.Layout(max_width="480px"))
        self.large_text = widgets.HTML()
        self.close = widgets.Button(description="close")
        self.close.on_click(lambda _b: self.hide_large())
        self.large = widgets.VBox([self.large_image, self.large_text, self.close], layout=widgets.Layout(width="500px"))
        self.large.layout.display = "none"
        numbered = [(f"{i + 1} {name}" if i < 9 else name, name) for i, name in enumerate(choices.globals)]
        self.globals = widgets.SelectMultiple(options=numbered, rows=min(10, len(numbered)), description="global")
        self.locals = widgets.SelectMultiple(options=(), rows=8, description="local")
        self.panel_type = widgets.Dropdown(options=("", *choices.panel_types), description="panel type")
        self.panel_subtype = widgets.Dropdown(options=("", *choices.panel_subtypes), description="subtype")
        self.definition = widgets.HTML()
        self.note = widgets.Text(description="note", placeholder="optional")
        self.globals.observe(lambda _c: self._refresh_locals(), names="value")
        for picker in (self.panel_type, self.panel_subtype):
            picker.observe(lambda _c: self._show_definition(), names="value")
        self.buttons: dict[str, widgets.Button] = {}
        for action, text, style in (
            ("save", "save label (Enter)", "success"),
            ("accept", "accept suggestion (a)", "info"),
            ("skip", "skip (s)", ""),
            ("undo", "undo (u)", "warning"),
            ("back", "back (b)", ""),
            ("override", "label selected images (o)", ""),
        ):
            button = widgets.Button(description=text, button_style=style, layout=widgets.Layout(width="auto"))
            button.add_class(f"wb-annotate-{action}")
            button.on_click(lambda _b, action=action: self._fire(action))
            self.buttons[action] = button
        keys = [*KEY_ACTIONS, *(str(i + 1) for i in range(len(choices.shortcut_globals()))), "x", "Escape"]
        self.keypad = KeyPad(keys=keys, hint="⌨ " + KEY_HELP)
        self.keypad.on_key(self.press)
        for name in ("title", "progress", "suggestion", "status", "grid", "large", "globals", "locals", "note"):
            getattr(self, name).add_class(f"wb-annotate-{name}")
        self.panel_type.add_class("wb-annotate-panel-type")
        self.panel_subtype.add_class("wb-annotate-panel-subtype")
        pickers = widgets.VBox(
            [self.globals, self.locals, self.panel_type, self.panel_subtype, self.definition, self.note],
            layout=widgets.Layout(width="420px"),
        )
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.title, self.progress], layout=widgets.Layout(align_items="baseline")),
                widgets.HBox(list(self.buttons.values())),
                self.keypad,
                self.status,
                self.suggestion,
                widgets.HBox([self.grid, widgets.VBox([pickers, self.large])]),
            ]
        )
        self.widget.add_class("wb-annotate")
        self._handlers: dict[str, list[Callable[..., None]]] = {action: [] for action in ACTIONS}
        self._suggested: LabelValue | None = None

    # --- events -------------------------------------------------------------------------------------------------
    def on(self, action: str, callback: Callable[..., None]) -> None:
        """`callback()` for save/accept/skip/undo/back/override, `callback(key)` for enlarge."""
        self._handlers[action].append(callback)

    def _fire(self, action: str, *args: object) -> None:
        for callback in self._handlers[action]:
            callback(*args)

    def press(self, key: str) -> None:
        """A shortcut key (from the browser through the key pad, or from a test)."""
        if key in KEY_ACTIONS:
            self._fire(KEY_ACTIONS[key])
        elif key.isdigit() and 1 <= int(key) <= len(self.choices.shortcut_globals()):
            name = self.choices.globals[int(key) - 1]
            chosen = list(self.globals.value)
            self.globals.value = tuple(n for n in chosen if n != name) if name in chosen else (*chosen, name)
        elif key == "x":
            for tile in self.tiles:
                tile.select.value = False
        elif key == "Escape":
            self.hide_large()

    # --- pickers ------------------------------------------------------------------------------------------------
    def value(self) -> LabelValue:
        """The label the pickers hold."""
        return LabelValue(
            tuple(self.globals.value),
            tuple(self.locals.value),
            self.panel_type.value,
            self.panel_subtype.value,
            self.note.value.strip(),
        )

    def set_value(self, label: LabelValue) -> None:
        known = set(self.choices.globals)
        self.globals.value = tuple(name for name in label.globals if name in known)
        options = set(self.locals.options)
        self.locals.value = tuple(name for name in label.locals if name in options)
        self.panel_type.value = label.panel_type if label.panel_type in self.panel_type.options else ""
        self.panel_subtype.value = label.panel_subtype if label.panel_subtype in self.panel_subtype.options else ""
        self.note.value = label.note

    def _refresh_locals(self) -> None:
        kept = self.locals.value
        options = self.choices.locals_of(tuple(self.globals.value))
        self.locals.options = options
        self.locals.value = tuple(name for name in kept if name in options)

    def _show_definition(self) -> None:
        lines = [
            f"<b>{html.escape(name)}</b>: {html.escape(self.choices.definitions[name])}"
            for name in (self.panel_type.value, self.panel_subtype.value)
            if name and name in self.choices.definitions
        ]
        self.definition.value = "".join(f"<div><small>{line}</small></div>" for line in lines)

    # --- what the loop shows ------------------------------------------------------------------------------------
    def show_cluster(
        self, title: str, items: list[PreviewItem], label: LabelValue, badges: dict[str, str] | None = None
    ) -> None:
        """A cluster: its title, its thumbnails (badges: key -> override text) and the pickers set to `label`."""
        badges = badges or {}
        self.title.value = f"<h3 style='margin:4px 12px 4px 0'>{html.escape(title)}</h3>"
        for tile, item in zip(self.tiles, [*items, *[None] * len(self.tiles)], strict=False):
            tile.show(item, badges.get(item.key, "") if item else "")
        self.hide_large()
        self.set_value(label)

    def show_suggestion(self, label: LabelValue | None, confidence: float = 0.0) -> None:
        self._suggested = label
        self.buttons["accept"].disabled = label is None
        self.suggestion.value = (
            coloured(f"suggested: {label.describe()} · confidence {confidence:.0%}", NOTE) if label is not None else ""
        )

    @property
    def suggested(self) -> LabelValue | None:
        return self._suggested

    def show_progress(self, labelled: int, total: int, seconds_per_cluster: float | None) -> None:
        pace = f" · {seconds_per_cluster:.1f} s per cluster" if seconds_per_cluster is not None else ""
        self.progress.value = f"<b>{labelled} / {total}</b> clusters labelled{pace}"

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.value = coloured(text, ERROR if error else OK)

    def show_done(self, text: str) -> None:
        self.title.value = f"<h3>{html.escape(text)}</h3>"
        for tile in self.tiles:
            tile.show(None)
        self.show_suggestion(None)

    def selected_keys(self) -> list[str]:
        return [tile.key for tile in self.tiles if tile.key and tile.select.value]

    def show_large(self, item: PreviewItem) -> None:
        self.large_image.value = item.thumbnail
        self.large_text.value = (
            f'<a href="{html.escape(item.url)}" target="_blank" class="wb-annotate-article">open '
            f"{html.escape(item.pmcid)} at PMC</a><div><small>{html.escape(item.caption)}</small></div>"
        )
        self.large.layout.display = None

    def hide_large(self) -> None:
        self.large.layout.display = "none"
