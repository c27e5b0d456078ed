"""PyTorch adapters of the theory: initializers, models, optimizers, Jacobian spectra, diagnostics."""

# 10,000-layer vanilla CNNs (Xiao et al. 2018)
from dltheory.nn.convstack import circular_pad as circular_pad
from dltheory.nn.convstack import conv_stack as conv_stack
from dltheory.nn.convstack import reference_conv_stack as reference_conv_stack

# loss curvature: the top Hessian eigenvalue and the step size it allows
from dltheory.nn.curvature import CurvatureEstimate as CurvatureEstimate
from dltheory.nn.curvature import stable_learning_rate as stable_learning_rate
from dltheory.nn.curvature import top_hessian_eigenvalue as top_hessian_eigenvalue

# implicit acceleration by depth (Arora, Cohen & Hazan 2018)
from dltheory.nn.deeplinear import DeepLinear as DeepLinear
from dltheory.nn.deeplinear import collapse as collapse
from dltheory.nn.deeplinear import overparameterize as overparameterize

# signal-propagation diagnostics of any model (mean-field theory, Xiao et al. 2018 section 2)
from dltheory.nn.diagnose import DiagnosisReport as DiagnosisReport
from dltheory.nn.diagnose import diagnose as diagnose

# orthogonal initializers and Jacobian spectra (Xiao et al. 2018; Pennington et al. 2017)
from dltheory.nn.init import conv_operator_blocks as conv_operator_blocks
from dltheory.nn.init import conv_operator_singular_values as conv_operator_singular_values
from dltheory.nn.init import critical_init_ as critical_init_
from dltheory.nn.init import delta_orthogonal_ as delta_orthogonal_
from dltheory.nn.init import delta_orthogonal_stack_ as delta_orthogonal_stack_
from dltheory.nn.init import haar_orthogonal as haar_orthogonal
from dltheory.nn.init import orthogonal_conv_ as orthogonal_conv_
from dltheory.nn.jacobian import JacobianMoments as JacobianMoments
from dltheory.nn.jacobian import LanczosResult as LanczosResult
from dltheory.nn.jacobian import full_jacobian as full_jacobian
from dltheory.nn.jacobian import jacobian_lanczos as jacobian_lanczos
from dltheory.nn.jacobian import jacobian_moments as jacobian_moments
from dltheory.nn.jacobian import jacobian_singular_values as jacobian_singular_values
from dltheory.nn.models import VanillaCNN as VanillaCNN
from dltheory.nn.optim import EndToEndOptimizer as EndToEndOptimizer
from dltheory.nn.optim import preconditioned_gradient as preconditioned_gradient

# residual networks initialised as the residual mean field assumes (Yang & Schoenholz 2017)
from dltheory.nn.resnets import ResidualMLP as ResidualMLP
from dltheory.nn.resnets import ResNet as ResNet
