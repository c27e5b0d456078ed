"""PyTorch adapters of the theory: initializers, models, optimizers, Jacobian spectra, diagnostics."""

# implicit acceleration by depth (Arora, Cohen & Hazan 2018)
from dltheory.nn.deeplinear import DeepLinear as DeepLinear
from dltheory.nn.deeplinear import collapse as collapse
from dltheory.nn.deeplinear import overparameterize as overparameterize
from dltheory.nn.optim import EndToEndOptimizer as EndToEndOptimizer
from dltheory.nn.optim import preconditioned_gradient as preconditioned_gradient
