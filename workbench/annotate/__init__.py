"""Expert annotation: a concept taxonomy, an append-only label store for many annotators, derived labels.

Modules, one job each: `taxonomy` (the concepts as data), `events` (decisions appended to
WS/state/annotations.sqlite), `derive` (current labels: agreement, contested, adjudicated, overrides),
`agreement` (Cohen's and Fleiss' kappa, the disagreement queue), `io` (BIOMEDICA's cluster_labels.json, CSV,
event-log Parquet), `demo` (labels from the sample mirror's ground truth, propagated accuracy). The widget,
its loop and the Voila app build on these.
"""

from workbench.annotate.derive import CurrentLabels, Label, TargetState, current_labels, derive
from workbench.annotate.events import ACTIONS, TARGET_KINDS, Decision, Event, LabelStore
from workbench.annotate.taxonomy import Taxonomy, load_taxonomy

__all__ = [
    "ACTIONS",
    "TARGET_KINDS",
    "CurrentLabels",
    "Decision",
    "Event",
    "Label",
    "LabelStore",
    "TargetState",
    "Taxonomy",
    "current_labels",
    "derive",
    "load_taxonomy",
]
