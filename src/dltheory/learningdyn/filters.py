"""Spectral filters of gradient descent on the squared loss (Liao & Couillet 2018, eqs. 4-5).

Gradient descent on ``L(w) = (1/2n) ||y^T - w^T X||^2 + (ridge/2) ||w||^2`` with step ``alpha`` from
``w_0`` gives, in the eigenbasis of ``A = X X^T / n``,

    w(t) = f_t(A) w_0 + g_t(A) X y / n,      g_t(x) = (1 - f_t(x)) / (x + ridge),

with ``f_t(x) = exp(-alpha t (x + ridge))`` for gradient flow (continuous time, the paper's form) and
``f_t(x) = (1 - alpha (x + ridge))^t`` for the exact discrete-time iterates (integer t). The paper has
``ridge = 0``; the ridge term is our extension. ``g_t`` is entire in x: at ``x + ridge = 0`` it equals
``alpha t``. ``t = inf`` gives ``f = 0``, ``g = 1/(x + ridge)`` (the least-squares / ridge solution).
"""

from __future__ import annotations

import numpy as np


def gd_filters(
    x: np.ndarray, t: np.ndarray, alpha: float, *, ridge: float = 0.0, discrete: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(f_t(x), g_t(x))`` broadcast over ``x`` and ``t`` (real or complex x, t >= 0 or inf).

    For ``discrete=True`` t must hold integers (or inf); the caller checks this. Continuous form:
    ``f = exp(-alpha t s)``, ``g = -expm1(-alpha t s)/s``; discrete form: ``f = (1 - alpha s)^t``,
    ``g = (1 - f)/s``, with ``s = x + ridge``.
    """
    s = np.asarray(x) + ridge
    t = np.asarray(t, dtype=np.float64)
    finite = np.isfinite(t)
    t_fin = np.where(finite, t, 0.0)
    if discrete:
        base = 1.0 - alpha * s
        if np.iscomplexobj(base):
            one_minus_f = -np.expm1(t_fin * np.log1p(-alpha * s))
        else:
            positive = base > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                smooth = -np.expm1(t_fin * np.log1p(-alpha * np.where(positive, s, 0.0)))
            one_minus_f = np.where(positive, smooth, 1.0 - np.power(base, t_fin))
    else:
        one_minus_f = -np.expm1(-alpha * t_fin * s)
    zero = s == 0
    safe_s = np.where(zero, 1.0, s)
    g = np.where(zero, alpha * t_fin, one_minus_f / safe_s)
    f = 1.0 - one_minus_f
    if not np.all(finite):
        # t = inf: the limit of gradient descent (requires s > 0 where it matters; the null space
        # of A keeps f = 1 when ridge = 0 and contributes nothing to g).
        with np.errstate(divide="ignore"):
            g_inf = np.where(zero, 0.0, 1.0 / safe_s)
        f = np.where(finite, f, np.where(zero, 1.0, 0.0))
        g = np.where(finite, g, g_inf)
    return f, g
