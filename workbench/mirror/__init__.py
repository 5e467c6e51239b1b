"""An offline sample of PMC Open Access: generated articles with real-looking JATS, real medical images and
rendered charts, packaged and listed exactly like PMC's FTP tree, with per-figure ground truth."""

from workbench.mirror.build import MirrorConfig, MirrorSummary, build_sample_mirror
from workbench.mirror.plan import PlanConfig

__all__ = ["MirrorConfig", "MirrorSummary", "PlanConfig", "build_sample_mirror"]
