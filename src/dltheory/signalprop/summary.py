"""The mean-field facts about one (activation, sigma_w2, sigma_b2) that a diagnosis reports, and the
critical point it recommends (numpy only).

:func:`fixed_point_summary` bundles q*, c*, chi_1, chi_c, xi_q, xi_c and the phase (Schoenholz et al.
2017; Xiao et al. 2018, section 2) in one record, also where the length map has no finite fixed point;
:func:`critical_parameters` picks the point of the critical line chi_1 = 1 to recommend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dltheory.core.activations import Activation, get_activation
from dltheory.signalprop.kernels import dual_kernel
from dltheory.signalprop.meanfield import critical_sigma_w2, fixed_point
from dltheory.signalprop.phases import classify_phase

#: sigma_b2 recommended for bounded activations: the authors' public demo value (Xiao et al. 2018:
#: sigma_w2 = 1.05, sigma_b2 = 2.01e-5 is on the tanh critical line), the small-q* end of the line
DEFAULT_SIGMA_B2 = 2.01e-5


@dataclass(frozen=True)
class FixedPointSummary:
    """Mean-field quantities at (sigma_w2, sigma_b2) for one activation: fixed point q*, c*, chi_1,
    chi_c, depth scales xi_q, xi_c, the phase label and whether a finite fixed point exists."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    chi_1: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: str
    bounded: bool
    activation_params: dict[str, float] = field(default_factory=dict)


def fixed_point_summary(
    activation: str | Activation, sigma_w2: float, sigma_b2: float, tol: float
) -> FixedPointSummary:
    """:class:`FixedPointSummary` at (sigma_w2, sigma_b2), phase by
    :func:`~dltheory.signalprop.phases.classify_phase` with tolerance ``tol``.

    Without a finite fixed point (the variance grows without bound, e.g. ReLU with sigma_w2 > 2) chi_1 is
    that of a positively homogeneous activation, where it does not depend on q (``sigma_w2 E[phi'^2]``),
    and NaN otherwise (phase "unbounded").

    Args:
        activation: name or Activation.
        sigma_w2: weight variance (scalar).
        sigma_b2: bias variance (scalar).
        tol: half-width of the critical band of the phase label.

    Returns:
        The summary.

    References:
        Schoenholz et al. 2017, eqs. 5, 7, 9; Xiao et al. 2018, section 2.

    Examples:
        >>> s = fixed_point_summary("tanh", 1.7610, 0.05, tol=1e-3)
        >>> round(s.q_star, 3), round(s.chi_1, 4), s.phase
        (0.57, 1.0, 'critical')
        >>> fixed_point_summary("relu", 3.0, 0.0, tol=0.05).phase  # no fixed point, chi_1 = 3 / 2
        'chaotic'
    """
    act = get_activation(activation)
    kernel = dual_kernel(act)
    fp = fixed_point(kernel, sigma_w2, sigma_b2, diverged="inf")
    bounded = bool(np.isfinite(fp.q_star))
    chi1 = float(fp.chi_1)
    if not bounded and kernel.homogeneous_gain is not None:
        chi1 = float(sigma_w2) * kernel.homogeneous_gain
    return FixedPointSummary(
        act.name,
        float(sigma_w2),
        float(sigma_b2),
        float(fp.q_star),
        float(fp.c_star),
        chi1,
        float(fp.chi_c),
        float(fp.xi_q),
        float(fp.xi_c),
        str(classify_phase(chi1, tol)),
        bounded,
        dict(act.params),
    )


def critical_parameters(activation: str | Activation, sigma_b2: float) -> tuple[float, float] | None:
    """A point (sigma_w2, sigma_b2) on the critical line chi_1 = 1 to recommend, or None if the activation
    has none.

    Positively homogeneous activations (ReLU family, linear) are critical only at sigma_b2 = 0. Others get
    the small-q* end of the line, sigma_b2 = :data:`DEFAULT_SIGMA_B2`, where orthogonal weights make the
    Jacobian spectrum concentrate (dynamical isometry; Pennington et al. 2017, Xiao et al. 2018), or
    failing that the given ``sigma_b2``.

    Examples:
        >>> critical_parameters("relu", 0.3)
        (2.0, 0.0)
        >>> sw2, sb2 = critical_parameters("tanh", 0.05)
        >>> round(sw2, 4), sb2
        (1.05, 2.01e-05)
    """
    kernel = dual_kernel(get_activation(activation))
    candidates = [0.0] if kernel.homogeneous_gain is not None else [DEFAULT_SIGMA_B2, float(sigma_b2)]
    for target in candidates:
        try:
            return float(critical_sigma_w2(kernel, target)), float(target)
        except ValueError:
            continue
    return None
