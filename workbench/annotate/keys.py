"""`KeyPad`: keyboard shortcuts for the annotation widget (ipywidgets has no key events; this is an anywidget).

In the browser it listens to key presses (capture phase) while the focus is inside the annotation widget (any
element of the `.wb-annotate` box: a thumbnail's button, a picker's label) or on the page itself (Voila); typing into
a text field, a dropdown or a list is left alone. A key it knows is kept from JupyterLab's own shortcuts and sent to
the kernel as `{"key": KEY}`; `press(key)` does the same from Python (the unit tests' key events).
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import traitlets

_ESM = """
function render({ model, el }) {
  el.classList.add('wb-annotate-keypad');
  el.tabIndex = 0;
  el.textContent = model.get('hint');
  model.on('change:hint', () => { el.textContent = model.get('hint'); });
  const handler = (event) => {
    const root = el.closest('.wb-annotate');
    const target = event.target;
    const inside = root !== null && root.contains(target);
    if (!inside && target !== document.body && target !== document.documentElement) return;
    if (target.closest && target.closest('input, textarea, select, [contenteditable="true"], .cm-editor')) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (!model.get('shortcuts').includes(event.key)) return;
    event.preventDefault();
    event.stopPropagation();
    model.send({ key: event.key });
  };
  document.addEventListener('keydown', handler, true);
  return () => document.removeEventListener('keydown', handler, true);
}
export default { render };
"""


class KeyPad(anywidget.AnyWidget):
    """Sends the keys in `shortcuts` to `on_key` callbacks."""

    _esm = _ESM
    shortcuts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    hint = traitlets.Unicode("").tag(sync=True)

    def __init__(self, *, keys: list[str], hint: str = "", **kwargs) -> None:
        super().__init__(shortcuts=keys, hint=hint, **kwargs)
        self._callbacks: list[Callable[[str], None]] = []
        self.on_msg(self._message)

    def on_key(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def press(self, key: str) -> None:
        """A key press as the browser sends it."""
        self._handle_custom_msg({"key": key}, [])

    def _message(self, _widget: object, content: dict, _buffers: list) -> None:
        key = content.get("key") if isinstance(content, dict) else None
        if isinstance(key, str) and key in self.shortcuts:
            for callback in self._callbacks:
                callback(key)
