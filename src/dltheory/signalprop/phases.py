"""The one rule that names the phase of signal propagation from a gradient growth factor chi.

Mean-field theory calls a deep network *ordered* when the mean squared singular value of one layer's
Jacobian, chi (chi_1 at the fixed point; Schoenholz et al. 2017, eq. 5), is below 1 (gradients vanish
exponentially with depth), *chaotic* when it is above 1 (they explode) and *critical* at chi = 1. Every
place in dltheory that prints a phase (:func:`dltheory.signalprop.meanfield.phase`,
:meth:`dltheory.signalprop.PhaseDiagram.phase`, :func:`dltheory.diagnose`, ``dltheory meanfield``) uses
:func:`classify_phase`, so the labels and the tolerance convention cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from dltheory.core.validation import check_positive

#: |chi - 1| below which theory calls a point critical (the accuracy of the quadrature behind chi_1)
CRITICAL_TOL = 1e-8
PHASES = ("ordered", "critical", "chaotic", "unbounded")


def classify_phase(chi: object, tol: float = CRITICAL_TOL, *, bounded: object = True) -> np.ndarray:
    """Label gradient growth factors: ``"ordered"`` (chi < 1 - tol), ``"critical"`` (|chi - 1| <= tol) or
    ``"chaotic"`` (chi > 1 + tol); ``"unbounded"`` where ``bounded`` is False (no finite fixed point of the
    length map) or chi is not finite.

    Args:
        chi: gradient growth per layer (float or array; NaN and inf allowed).
        tol: half-width of the critical band, >= 0.
        bounded: bool or bool array broadcastable with ``chi``.

    Returns:
        A string array of the broadcast shape (0-d for scalars; ``str(...)`` gives the label).

    References:
        Poole et al. 2016; Schoenholz et al. 2017, eq. 5 (chi_1 and the order-to-chaos transition).

    Examples:
        >>> str(classify_phase(0.9))
        'ordered'
        >>> classify_phase([0.97, 1.0, 1.2], tol=0.05).tolist()
        ['critical', 'critical', 'chaotic']
        >>> str(classify_phase(float("nan")))
        'unbounded'
    """
    tol_arr = check_positive("tol", tol, allow_zero=True)
    try:
        values = np.asarray(chi, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"chi must be a real number or array of real numbers, got {chi!r}") from exc
    finite = np.isfinite(values) & np.asarray(bounded, dtype=bool)
    with np.errstate(invalid="ignore"):
        above = np.where(values > 1.0 + tol_arr, "chaotic", "critical")
        labels = np.where(values < 1.0 - tol_arr, "ordered", above)
    return np.where(finite, labels, "unbounded")


GROWTH_VERDICTS = ("vanishing", "stable", "exploding")


def classify_growth(growth: object, target: float = 10.0) -> np.ndarray:
    """Label the end-to-end growth G = |g_in|^2 / |g_out|^2 of the squared gradient across a residual stack:
    ``"exploding"`` (G > target), ``"vanishing"`` (G < 1 / target) or ``"stable"``; ``"unbounded"`` where G
    is not finite. A residual stack has no fixed point and no per-layer phase: its gradient grows
    polynomially, stretched-exponentially or exponentially with depth (Yang & Schoenholz 2017), so the verdict
    is about the whole stack.

    Args:
        growth: end-to-end growth (float or array).
        target: factor, > 1, beyond which the growth counts as exploding.

    Returns:
        A string array of the shape of ``growth``.

    Examples:
        >>> classify_growth([0.05, 3.0, 500.0]).tolist()
        ['vanishing', 'stable', 'exploding']
    """
    target_arr = check_positive("target", target)
    if np.any(target_arr <= 1.0):
        raise ValueError(f"target must be > 1, got {target!r}")
    try:
        values = np.asarray(growth, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"growth must be a real number or array of real numbers, got {growth!r}") from exc
    with np.errstate(invalid="ignore", divide="ignore"):
        labels = np.where(
            values > target_arr, "exploding", np.where(values < 1.0 / target_arr, "vanishing", "stable")
        )
    return np.where(np.isfinite(values), labels, "unbounded")
