"""Reproduced results, one module per experiment (contract in :mod:`dltheory.experiments.base`)."""
