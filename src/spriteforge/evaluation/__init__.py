"""Evaluation: image metrics (metrics), the offline FID Inception (inception), the bundled view
classifier that judges pose correctness (views) and the 28-case publication protocol with its trivial
baselines (protocol). `spriteforge evaluate` (spriteforge/evaluating.py) runs them."""

PROTOCOL = ("METRICS", "cases", "markdown", "run_protocol")
BASELINES = ("CopyBaseline", "MirrorBaseline")
VIEW_CLASSIFIER = ("classify_views", "view_score")

__all__ = [*PROTOCOL, *BASELINES, *VIEW_CLASSIFIER]


def __getattr__(name: str):
    # Loaded on first use, so that reading the Inception weights' location (options, below the models)
    # does not import the protocol and with it every model.
    if name in PROTOCOL:
        from spriteforge.evaluation import protocol

        return getattr(protocol, name)
    if name in BASELINES:
        from spriteforge.models import baselines

        return getattr(baselines, name)
    if name in VIEW_CLASSIFIER:
        from spriteforge.evaluation import views

        return getattr(views, name)
    raise AttributeError(f"module 'spriteforge.evaluation' has no attribute {name!r}")
