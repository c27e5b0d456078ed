"""Run directories, the generic training loop and parameter sweeps."""

from dltheory.runner.runs import RunDir, RunExistsError

__all__ = ["RunDir", "RunExistsError"]
