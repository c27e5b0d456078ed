"""Random-matrix theory of gradient-descent learning curves (Liao & Couillet 2018). numpy only."""

from dltheory.learningdyn.curves import LearningTerms, LimitErrors, StoppingPoint, gaussian_tail
from dltheory.learningdyn.general_cov import GeneralCovGDTheory
from dltheory.learningdyn.simulate import Simulation, simulate, simulate_on_data
from dltheory.learningdyn.spectral import MarchenkoPastur, SignalMeasure, largest_eigenvalue
from dltheory.learningdyn.theory import GDTheory

__all__ = [
    "GDTheory",
    "GeneralCovGDTheory",
    "LearningTerms",
    "LimitErrors",
    "MarchenkoPastur",
    "SignalMeasure",
    "Simulation",
    "StoppingPoint",
    "gaussian_tail",
    "largest_eigenvalue",
    "simulate",
    "simulate_on_data",
]
