"""What the annotation widget shows and edits, free of widgets and storage: the label choices a taxonomy offers
(`Choices`) and one label as the pickers hold it (`LabelValue`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelValue:
    """A label: global concepts (several), local concepts (of those globals), panel type and subtype, a note."""

    globals: tuple[str, ...] = ()
    locals: tuple[str, ...] = ()
    panel_type: str = ""
    panel_subtype: str = ""
    note: str = ""

    @property
    def empty(self) -> bool:
        return not self.globals

    def describe(self) -> str:
        parts = [", ".join(self.globals) or "(no concept)"]
        if self.locals:
            parts.append("/ " + ", ".join(self.locals))
        if self.panel_type:
            parts.append(f"· {self.panel_type}" + (f" ({self.panel_subtype})" if self.panel_subtype else ""))
        return " ".join(parts)


@dataclass(frozen=True)
class Choices:
    """The values the pickers offer: global concepts in taxonomy order with their local concepts, panel types and
    subtypes. The first nine globals get the number keys 1-9."""

    locals_by_global: dict[str, tuple[str, ...]]
    panel_types: tuple[str, ...] = ()
    panel_subtypes: tuple[str, ...] = ()
    version: str = ""
    definitions: dict[str, str] = field(default_factory=dict)  # panel type/subtype -> its written definition

    @property
    def globals(self) -> tuple[str, ...]:
        return tuple(self.locals_by_global)

    def locals_of(self, chosen: tuple[str, ...]) -> tuple[str, ...]:
        """Local concepts of the chosen globals, in taxonomy order, each once."""
        seen: dict[str, None] = {}
        for name in chosen:
            for local in self.locals_by_global.get(name, ()):
                seen.setdefault(local)
        return tuple(seen)

    def shortcut_globals(self) -> tuple[str, ...]:
        return self.globals[:9]
