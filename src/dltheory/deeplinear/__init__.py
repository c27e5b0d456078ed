"""Deep linear networks: implicit acceleration (Arora, Cohen & Hazan 2018) and landscape certificates
(Laurent & von Brecht 2018). numpy/scipy theory; torch only where a model is trained."""

# implicit acceleration by depth (Arora, Cohen & Hazan 2018)
from dltheory.deeplinear.balance import balanced_factors as balanced_factors
from dltheory.deeplinear.balance import end_to_end_matrix as end_to_end_matrix
from dltheory.deeplinear.balance import imbalance as imbalance
from dltheory.deeplinear.dynamics import end_to_end_direction as end_to_end_direction
from dltheory.deeplinear.dynamics import end_to_end_update as end_to_end_update
from dltheory.deeplinear.dynamics import psd_power as psd_power
from dltheory.deeplinear.dynamics import single_output_update as single_output_update
from dltheory.deeplinear.gradient_field import field_jacobian as field_jacobian
from dltheory.deeplinear.gradient_field import is_gradient_field as is_gradient_field
from dltheory.deeplinear.gradient_field import jacobian_asymmetry as jacobian_asymmetry
from dltheory.deeplinear.gradient_field import linear_loss_asymmetry as linear_loss_asymmetry
from dltheory.deeplinear.gradient_field import linear_loss_curl_flux as linear_loss_curl_flux
from dltheory.deeplinear.gradient_field import loop_integral as loop_integral
from dltheory.deeplinear.gradient_field import update_field as update_field
from dltheory.deeplinear.preconditioner import EndToEndPreconditioner as EndToEndPreconditioner

# landscape certificates: all local minima are global (Laurent & von Brecht 2018)
# isort: split
from dltheory.deeplinear.counterexample import counterexample_function as counterexample_function
from dltheory.deeplinear.landscape import LandscapeReport as LandscapeReport
from dltheory.deeplinear.landscape import analyze as analyze
from dltheory.deeplinear.losses import LOSS_NAMES as LOSS_NAMES
from dltheory.deeplinear.losses import Loss as Loss
from dltheory.deeplinear.losses import make_loss as make_loss
from dltheory.deeplinear.objective import EndToEndObjective as EndToEndObjective
from dltheory.deeplinear.objective import MatrixFunction as MatrixFunction
from dltheory.deeplinear.objective import make_objective as make_objective
from dltheory.deeplinear.optimum import Optimum as Optimum
from dltheory.deeplinear.optimum import global_optimum as global_optimum
from dltheory.deeplinear.train import TrainResult as TrainResult
from dltheory.deeplinear.train import train as train
