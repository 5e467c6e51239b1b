"""The annotation app for experts who do not code (`workbench annotate serve`, Voila): one page that asks the
annotator's name once, then shows the annotation widget (`annotate_widget`). The served notebook holds one cell
calling `annotation_app(...)` with literal settings (`workbench.annotate.serve.app_notebook` writes it)."""

from __future__ import annotations

import ipywidgets as widgets

from workbench.annotate.serve import AppSettings
from workbench.catalog.views import ERROR, NOTE, coloured
from workbench.errors import UserError


class AnnotationApp:
    """Name prompt, then the widget in the same box (`box` is what the page shows)."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.loop = None
        self.name = widgets.Text(description="your name", placeholder="e.g. a.smith")
        self.start = widgets.Button(description="start annotating", button_style="success")
        self.message = widgets.HTML(
            coloured("Your name is recorded with every decision (asked once for this session).", NOTE)
        )
        self.name.add_class("wb-annotate-name")
        self.start.add_class("wb-annotate-start")
        self.start.on_click(lambda _b: self.begin(self.name.value))
        self.box = widgets.VBox([widgets.HTML("<h2>Cluster annotation</h2>"), self.name, self.start, self.message])
        if settings.annotator:
            self.begin(settings.annotator)

    def begin(self, annotator: str) -> None:
        from workbench.annotate.session import annotate_widget
        from workbench.catalog import open_catalog

        if self.loop is not None:
            return
        if not annotator.strip():
            self.message.value = coloured("Please type your name first.", ERROR)
            return
        try:
            with open_catalog(self.settings.workspace, refresh=False) as catalog:
                self.loop = annotate_widget(
                    catalog,
                    annotator.strip(),
                    self.settings.clustering,
                    self.settings.order,
                    self.settings.embeddings,
                    self.settings.taxonomy or None,
                )
        except (UserError, OSError) as error:
            self.message.value = coloured(str(error), ERROR)
            return
        who = widgets.HTML(coloured(f"annotating as {annotator.strip()}", NOTE))
        self.box.children = (who, self.loop.view.widget)


def annotation_app(settings: dict) -> widgets.Widget:
    """The app's page (the served notebook's only call)."""
    return AnnotationApp(AppSettings(**settings)).box
