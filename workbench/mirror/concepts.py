"""The ground-truth concepts a sample-mirror figure can show, and the coarse group each belongs to."""

from __future__ import annotations

from workbench.errors import UserError
from workbench.mirror.charts import CHART_RENDERERS
from workbench.mirror.sources import image_concepts

CHART_CONCEPTS: tuple[str, ...] = tuple(CHART_RENDERERS)
IMAGE_CONCEPTS: tuple[str, ...] = image_concepts()
CONCEPTS: tuple[str, ...] = CHART_CONCEPTS + IMAGE_CONCEPTS

_IMAGE_GROUPS = {
    "ct": "radiology",
    "mri": "radiology",
    "xray": "radiology",
    "ultrasound": "radiology",
    "nuclear_medicine": "radiology",
    "immunohistochemistry": "microscopy",
    "microscopy": "microscopy",
    "fundus_photograph": "photograph",
}


def concept_group(concept: str) -> str:
    """The concept's group: chart, radiology, microscopy or photograph."""
    if concept in CHART_RENDERERS:
        return "chart"
    try:
        return _IMAGE_GROUPS[concept]
    except KeyError:
        raise UserError(f"unknown sample-mirror concept {concept!r}") from None
