"""Flattening JATS elements to text: block marks, whitespace normalising, and small lxml helpers that accept None.

Block elements (title, p, list items, ...) get a mark (`BLOCK_MARK`) after them, so one serialisation of a
subtree gives either one line of text (`flat_text`) or one line per block (`block_text`).
"""

from __future__ import annotations

from lxml import etree

BLOCK_MARK = "\x7f"  # DEL, allowed in XML yet never in text: marks block ends in the tree while flattening
BLOCK_TAGS = (
    "p", "title", "label", "caption", "sec", "list", "list-item", "def-list", "def-item", "term", "def",
    "table", "tr", "td", "th", "disp-quote", "disp-formula", "boxed-text", "statement", "speech", "verse-line",
    "ref", "mixed-citation", "element-citation", "citation", "abstract", "trans-abstract", "kwd", "subject",
    "ack", "app", "glossary", "notes", "fn", "attrib", "preformat", "license-p", "address", "break",
    "supplementary-material", "fig", "fig-group", "table-wrap", "alt-text", "long-desc",
)  # fmt: skip
# Blocks that may follow inline text inside a paragraph are marked at both ends; the others at their end only.
IN_PARAGRAPH_BLOCKS = frozenset(
    ("list", "def-list", "disp-formula", "disp-quote", "boxed-text", "statement", "speech", "preformat", "table")
)


def mark_blocks(element: etree._Element) -> None:
    """Put a block mark after each block element below `element` (and before those that sit inside paragraphs)."""
    for block in element.iter(*BLOCK_TAGS):
        tail = block.tail
        block.tail = BLOCK_MARK + tail if tail else BLOCK_MARK
        if block.tag in IN_PARAGRAPH_BLOCKS:
            text = block.text
            block.text = BLOCK_MARK + text if text else BLOCK_MARK


def detach(node: etree._Element, replacement: str = "") -> None:
    """Remove `node` from the tree, keeping its tail text (and `replacement` in its place)."""
    parent = node.getparent()
    if parent is None:
        return
    kept = replacement + (node.tail or "")
    if kept:
        previous = node.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + kept
        else:
            parent.text = (parent.text or "") + kept
    parent.remove(node)


def raw_text(element: etree._Element) -> str:
    return etree.tostring(element, method="text", encoding=str, with_tail=False)


def normalise_space(text: str) -> str:
    """Tabs, newlines, carriage returns and no-break spaces become spaces; runs of spaces collapse to one.

    Other characters, typographic spaces such as U+2009 included, are kept (replace() runs at C speed;
    `" ".join(text.split())` is 4x slower on a full body text).
    """
    text = text.replace("\n", " ").replace("\t", " ").replace("\r", " ").replace("\xa0", " ")
    collapsed = text.replace("  ", " ")  # searching for "  " is the costly part: search once per pass
    while len(collapsed) != len(text):
        text, collapsed = collapsed, collapsed.replace("  ", " ")
    return text


def flat_text(element: etree._Element | None, blocks: bool = False) -> str:
    """Flattened text on one line, whitespace normalised; `blocks`: separate block elements first."""
    if element is None:
        return ""
    if len(element) == 0:  # no markup inside: skip serialising
        return normalise_space((element.text or "").replace(BLOCK_MARK, " ")).strip()
    if blocks:
        mark_blocks(element)
    return normalise_space(raw_text(element).replace(BLOCK_MARK, " ")).strip()


def block_text(element: etree._Element | None, marked: bool = False) -> str:
    """Flattened text with one line per block (paragraph, title, list item, ...), whitespace normalised."""
    if element is None:
        return ""
    if not marked:
        mark_blocks(element)
    lines = normalise_space(raw_text(element)).split(BLOCK_MARK)
    return "\n".join(filter(None, map(str.strip, lines)))


def find_in(element: etree._Element | None, path: str) -> etree._Element | None:
    return element.find(path) if element is not None else None


def iter_in(element: etree._Element | None, *tags: str):
    return element.iter(*tags) if element is not None else iter(())


def unique(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))
