"""The training engine: run folders, the step loop, checkpoints with exact resume."""
