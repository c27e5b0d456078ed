"""Activation functions with vectorised values and first and second derivatives (numpy, float64).

``get_activation(name_or_callable, **params)`` returns an :class:`Activation`; :data:`ACTIVATIONS` lists
the built-in names. Besides ``fn``, ``deriv`` and ``deriv2`` an activation carries what the Gaussian
quadrature of :mod:`dltheory.core.gaussian` needs to be accurate: its parity (odd functions halve the
work), the positions of its kinks (where ``fn`` or ``deriv`` is not smooth: quadrature is split there),
the half-width of the strip around the real axis in which it is analytic (it sets the trapezoid step),
and a bound on ``|fn|`` if there is one.

Derivatives at a kink are one-sided conventions (``relu'(0) = 0``, ``hard_tanh'(+-1) = 0``); second
derivatives are the ordinary ones and omit the Dirac masses at kinks, so use them only for smooth
activations (the mean-field code never needs them).

User callables (numpy ufunc-like, ``f(ndarray) -> ndarray``) get derivatives by the complex-step method
``f'(x) = Im f(x + i h) / h`` with ``h = 1e-20`` (exact to rounding) when ``f`` accepts complex input and
the result agrees with a central difference at a few probe points; otherwise by central finite differences
(step ``eps**(1/3) * max(1, |x|)``, relative error about 1e-10). The second derivative is a central
difference of the first (error about 1e-10 with complex step, 1e-6 with finite differences). Pass
``deriv=``/``deriv2=`` to supply exact ones, and ``kinks=`` for a non-smooth callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import erf, expit, ndtr

from dltheory.core.validation import check_choice

ArrayFn = Callable[[np.ndarray], np.ndarray]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

ACTIVATIONS: list[str] = [
    "tanh",
    "hard_tanh",
    "erf",
    "relu",
    "leaky_relu",
    "sigmoid",
    "selu",
    "gelu",
    "silu",
    "swish",
    "linear",
]


@dataclass(frozen=True)
class Activation:
    """An activation phi with its derivatives and the facts quadrature needs.

    Attributes:
        name: registry name (or the callable's name).
        fn, deriv, deriv2: vectorised phi, phi', phi'' on float64 arrays.
        params: parameters the activation was built with (e.g. ``{"slope": 0.01}``).
        parity: ``"odd"`` if phi(-x) = -phi(x), else ``None``.
        kinks: points where phi or phi' is not smooth (empty for smooth activations).
        analytic_strip: half-width of the strip |Im x| < d where phi is analytic (``inf`` for entire
            functions, ``0`` when there are kinks).
        bound: sup |phi| if phi is bounded, else ``None``.
        derivative_method: ``"exact"``, ``"complex-step"``, ``"finite-difference"`` or ``"user"``.
    """

    name: str
    fn: ArrayFn
    deriv: ArrayFn
    deriv2: ArrayFn
    params: dict[str, float] = field(default_factory=dict)
    parity: str | None = None
    kinks: tuple[float, ...] = ()
    analytic_strip: float = math.inf
    bound: float | None = None
    derivative_method: str = "exact"
    value_and_deriv: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = field(
        default=None, repr=False, compare=False
    )

    def values_and_derivs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(phi(x), phi'(x)), sharing work where the activation allows it (tanh, sigmoid)."""
        if self.value_and_deriv is not None:
            return self.value_and_deriv(x)
        return self.fn(x), self.deriv(x)

    @property
    def is_smooth(self) -> bool:
        return not self.kinks


def _tanh_pair(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.tanh(x)
    return t, 1.0 - t * t


def _sigmoid_pair(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = expit(x)
    return s, s * (1.0 - s)


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _tanh() -> Activation:
    def d1(x: np.ndarray) -> np.ndarray:
        return 1.0 - np.tanh(x) ** 2

    def d2(x: np.ndarray) -> np.ndarray:
        t = np.tanh(x)
        return -2.0 * t * (1.0 - t * t)

    return Activation(
        "tanh",
        np.tanh,
        d1,
        d2,
        parity="odd",
        analytic_strip=math.pi / 2,
        bound=1.0,
        value_and_deriv=_tanh_pair,
    )


def _hard_tanh() -> Activation:
    def fn(x: np.ndarray) -> np.ndarray:
        return np.clip(x, -1.0, 1.0)

    def d1(x: np.ndarray) -> np.ndarray:
        return (np.abs(x) < 1.0).astype(np.float64)

    return Activation(
        "hard_tanh", fn, d1, np.zeros_like, parity="odd", kinks=(-1.0, 1.0), analytic_strip=0.0, bound=1.0
    )


def _erf() -> Activation:
    def d1(x: np.ndarray) -> np.ndarray:
        return (2.0 / math.sqrt(math.pi)) * np.exp(-x * x)

    def d2(x: np.ndarray) -> np.ndarray:
        return -2.0 * x * d1(x)

    return Activation("erf", erf, d1, d2, parity="odd", bound=1.0)


def _leaky(name: str, slope: float) -> Activation:
    def fn(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, slope * x)

    def d1(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, 1.0, slope)

    params = {"slope": slope} if name == "leaky_relu" else {}
    return Activation(name, fn, d1, np.zeros_like, params=params, kinks=(0.0,), analytic_strip=0.0)


def _linear() -> Activation:
    def fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).copy()

    return Activation("linear", fn, np.ones_like, np.zeros_like, parity="odd")


def _sigmoid() -> Activation:
    def d1(x: np.ndarray) -> np.ndarray:
        s = expit(x)
        return s * (1.0 - s)

    def d2(x: np.ndarray) -> np.ndarray:
        s = expit(x)
        return s * (1.0 - s) * (1.0 - 2.0 * s)

    return Activation(
        "sigmoid", expit, d1, d2, analytic_strip=math.pi, bound=1.0, value_and_deriv=_sigmoid_pair
    )


def _selu() -> Activation:
    a, lam = SELU_ALPHA, SELU_SCALE

    def fn(x: np.ndarray) -> np.ndarray:
        return lam * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)))

    def d1(x: np.ndarray) -> np.ndarray:
        return lam * np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0)))

    def d2(x: np.ndarray) -> np.ndarray:
        return lam * np.where(x > 0, 0.0, a * np.exp(np.minimum(x, 0.0)))

    return Activation("selu", fn, d1, d2, kinks=(0.0,), analytic_strip=0.0)


def _gelu() -> Activation:
    def fn(x: np.ndarray) -> np.ndarray:
        return x * ndtr(x)

    def d1(x: np.ndarray) -> np.ndarray:
        return ndtr(x) + x * _normal_pdf(x)

    def d2(x: np.ndarray) -> np.ndarray:
        return (2.0 - x * x) * _normal_pdf(x)

    return Activation("gelu", fn, d1, d2)


def _swish(name: str, beta: float) -> Activation:
    def fn(x: np.ndarray) -> np.ndarray:
        return x * expit(beta * x)

    def d1(x: np.ndarray) -> np.ndarray:
        s = expit(beta * x)
        return s + beta * x * s * (1.0 - s)

    def d2(x: np.ndarray) -> np.ndarray:
        s = expit(beta * x)
        ds = beta * s * (1.0 - s)
        return 2.0 * ds + beta * x * ds * (1.0 - 2.0 * s)

    params = {"beta": beta} if name == "swish" else {}
    strip = math.pi / abs(beta) if beta != 0 else math.inf
    return Activation(name, fn, d1, d2, params=params, analytic_strip=strip)


def _builtin(name: str, params: dict[str, Any]) -> Activation:
    allowed = {"leaky_relu": {"slope"}, "swish": {"beta"}}.get(name, set())
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"activation {name!r} got unknown parameters {sorted(unknown)}; "
            f"allowed: {sorted(allowed) or 'none'}"
        )
    if name == "tanh":
        return _tanh()
    if name == "hard_tanh":
        return _hard_tanh()
    if name == "erf":
        return _erf()
    if name == "relu":
        return _leaky("relu", 0.0)
    if name == "leaky_relu":
        slope = float(params.get("slope", 0.01))
        if not math.isfinite(slope):
            raise ValueError(f"slope must be finite, got {slope!r}")
        return _leaky("leaky_relu", slope)
    if name == "sigmoid":
        return _sigmoid()
    if name == "selu":
        return _selu()
    if name == "gelu":
        return _gelu()
    if name in ("silu", "swish"):
        beta = float(params.get("beta", 1.0))
        if not math.isfinite(beta):
            raise ValueError(f"beta must be finite, got {beta!r}")
        return _swish(name, beta)
    return _linear()


def _central_difference(f: ArrayFn, x: np.ndarray) -> np.ndarray:
    h = np.finfo(np.float64).eps ** (1.0 / 3.0) * np.maximum(1.0, np.abs(x))
    return (np.asarray(f(x + h), dtype=np.float64) - np.asarray(f(x - h), dtype=np.float64)) / (2.0 * h)


def _complex_step(f: ArrayFn) -> ArrayFn | None:
    """A complex-step derivative of f, or None if f does not support it (checked at probe points)."""
    step = 1e-20

    def d1(x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, dtype=np.float64) + 1j * step
        return np.imag(np.asarray(f(z))) / step

    probes = np.array([-1.7, -0.45, 0.3, 0.9, 2.2])
    try:
        with np.errstate(all="ignore"):
            exact = d1(probes)
            approx = _central_difference(f, probes)
    except (TypeError, ValueError, AttributeError):
        return None
    if not np.all(np.isfinite(exact)) or not np.allclose(exact, approx, rtol=1e-5, atol=1e-7):
        return None
    return d1


def _from_callable(
    f: ArrayFn,
    *,
    name: str | None,
    deriv: ArrayFn | None,
    deriv2: ArrayFn | None,
    kinks: tuple[float, ...],
    parity: str | None,
    bound: float | None,
    analytic_strip: float | None,
) -> Activation:
    try:
        probe = np.asarray(f(np.linspace(-2.0, 2.0, 5)), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - any failure means the callable is unusable
        raise TypeError(
            f"activation callable {f!r} must map a float64 ndarray to an ndarray; it raised {exc!r}"
        ) from exc
    if probe.shape != (5,):
        raise TypeError(
            f"activation callable {f!r} must be vectorised (ndarray of shape (n,) -> shape (n,)), "
            f"got output shape {probe.shape}"
        )
    if parity is not None:
        check_choice("parity", parity, ["odd"])
    method = "user"
    if deriv is None:
        cs = None if kinks else _complex_step(f)
        if cs is not None:
            deriv, method = cs, "complex-step"
        else:

            def deriv(x: np.ndarray) -> np.ndarray:
                return _central_difference(f, np.asarray(x, dtype=np.float64))

            method = "finite-difference"
    first = deriv
    if deriv2 is None:

        def deriv2(x: np.ndarray) -> np.ndarray:
            return _central_difference(first, np.asarray(x, dtype=np.float64))

    strip = analytic_strip if analytic_strip is not None else (0.0 if kinks else 0.5)

    def fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(f(x), dtype=np.float64)

    return Activation(
        str(name or getattr(f, "__name__", "callable")),
        fn,
        first,
        deriv2,
        parity=parity,
        kinks=tuple(float(k) for k in kinks),
        analytic_strip=float(strip),
        bound=bound,
        derivative_method=method,
    )


def get_activation(
    activation: str | ArrayFn | Activation,
    *,
    name: str | None = None,
    deriv: ArrayFn | None = None,
    deriv2: ArrayFn | None = None,
    kinks: tuple[float, ...] = (),
    parity: str | None = None,
    bound: float | None = None,
    analytic_strip: float | None = None,
    **params: Any,
) -> Activation:
    """Return the :class:`Activation` for a registry name, a user callable, or an Activation (as is).

    Names: see :data:`ACTIVATIONS`; ``leaky_relu`` takes ``slope`` (default 0.01), ``swish`` takes
    ``beta`` (default 1; ``silu`` is swish with beta = 1). For a callable, the keyword arguments describe
    it: ``deriv``/``deriv2`` (exact derivatives; otherwise complex step or finite differences, see the
    module docstring), ``kinks`` (points where it is not smooth), ``parity="odd"``, ``bound`` (sup |f|)
    and ``analytic_strip`` (half-width of its strip of analyticity; default 0.5, a cautious guess that
    makes quadrature use a fine step).
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        key = activation.strip().lower().replace("-", "_")
        key = {"hardtanh": "hard_tanh", "leakyrelu": "leaky_relu", "identity": "linear"}.get(key, key)
        check_choice("activation", key, ACTIVATIONS)
        return _builtin(key, params)
    if callable(activation):
        if params:
            raise ValueError(
                f"parameters {sorted(params)} apply only to named activations, not to a callable"
            )
        return _from_callable(
            activation,
            name=name,
            deriv=deriv,
            deriv2=deriv2,
            kinks=tuple(kinks),
            parity=parity,
            bound=bound,
            analytic_strip=analytic_strip,
        )
    raise TypeError(
        f"activation must be a name (one of {ACTIVATIONS}), a callable or an Activation, got {activation!r}"
    )
