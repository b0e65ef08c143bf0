"""Evaluation: image metrics (metrics), the offline FID Inception (inception), the bundled view
classifier that judges pose correctness (views) and the 28-case publication protocol with its trivial
baselines (protocol). `spriteforge evaluate` runs them."""

from spriteforge.evaluation.protocol import METRICS, CopyBaseline, MirrorBaseline, cases, markdown, run_protocol
from spriteforge.evaluation.views import classify_views, view_score

__all__ = ["METRICS", "CopyBaseline", "MirrorBaseline", "cases", "classify_views", "markdown", "run_protocol", "view_score"]
