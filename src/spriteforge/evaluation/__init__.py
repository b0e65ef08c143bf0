"""Evaluation: image metrics (metrics), the offline FID Inception (inception) and the 28-case
publication protocol with its trivial baselines (protocol). `spriteforge evaluate` runs them."""

from spriteforge.evaluation.protocol import METRICS, CopyBaseline, MirrorBaseline, cases, markdown, run_protocol

__all__ = ["METRICS", "CopyBaseline", "MirrorBaseline", "cases", "markdown", "run_protocol"]
