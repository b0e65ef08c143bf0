"""Evaluation: image metrics (metrics), the offline FID Inception (inception), the bundled view
classifier that judges pose correctness (views), the 28-case publication protocol (case_list: the
cases and their masking; protocol: running imputers over them; reports: its tables and evaluation files)
with its trivial baselines, the samplers' measures (samplers) and training-time FID (training_fid).
`spriteforge evaluate` (spriteforge/evaluating.py) runs them."""

PROTOCOL = ("METRICS", "run_protocol")
CASES = ("cases",)
REPORTS = ("markdown",)
BASELINES = ("CopyBaseline", "MirrorBaseline")
VIEW_CLASSIFIER = ("classify_views", "view_score")

__all__ = [*PROTOCOL, *CASES, *REPORTS, *BASELINES, *VIEW_CLASSIFIER]


def __getattr__(name: str):
    # Loaded on first use, so that reading the Inception weights' location (options, below the models)
    # does not import the protocol and with it every model.
    if name in PROTOCOL:
        from spriteforge.evaluation import protocol

        return getattr(protocol, name)
    if name in CASES:
        from spriteforge.evaluation import case_list

        return getattr(case_list, name)
    if name in REPORTS:
        from spriteforge.evaluation import reports

        return getattr(reports, name)
    if name in BASELINES:
        from spriteforge.models import baselines

        return getattr(baselines, name)
    if name in VIEW_CLASSIFIER:
        from spriteforge.evaluation import views

        return getattr(views, name)
    raise AttributeError(f"module 'spriteforge.evaluation' has no attribute {name!r}")
