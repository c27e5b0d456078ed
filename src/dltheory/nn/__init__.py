"""PyTorch adapters of the theory: initializers, models, optimizers, Jacobian spectra, diagnostics."""

# implicit acceleration by depth (Arora, Cohen & Hazan 2018)
from dltheory.nn.deeplinear import DeepLinear as DeepLinear
from dltheory.nn.deeplinear import collapse as collapse
from dltheory.nn.deeplinear import overparameterize as overparameterize
from dltheory.nn.optim import EndToEndOptimizer as EndToEndOptimizer
from dltheory.nn.optim import preconditioned_gradient as preconditioned_gradient

# 10,000-layer vanilla CNNs (Xiao et al. 2018)
from dltheory.nn.convstack import circular_pad as circular_pad
from dltheory.nn.convstack import conv_stack as conv_stack
from dltheory.nn.convstack import reference_conv_stack as reference_conv_stack
from dltheory.nn.models import VanillaCNN as VanillaCNN

# signal-propagation diagnostics of any model (mean-field theory, Xiao et al. 2018 section 2)
from dltheory.nn.diagnose import DiagnosisReport as DiagnosisReport
from dltheory.nn.diagnose import diagnose as diagnose
