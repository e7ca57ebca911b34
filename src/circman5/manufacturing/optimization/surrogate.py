"""A smooth polynomial surrogate of a model over a box, with exact gradients.

Gradient-boosted trees are piecewise constant: their gradient is zero almost everywhere, so a
gradient-based optimizer on the raw trees stops where it starts (finite differences with a tiny
step see no change) or chases steps between leaves. The optimizer therefore samples the model
once on a fixed scrambled Sobol design over the feasible box and fits, per output, a
least-squares polynomial of total degree ``degree`` in the box coordinates scaled to
``[-1, 1]``. The polynomial is smooth, cheap (microseconds per evaluation) and has an exact
Jacobian, so L-BFGS-B / SLSQP converge in a few iterations; the candidates it proposes are then
checked on the real model.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

__all__ = ["PolynomialSurrogate", "monomial_exponents", "sobol_design"]


def monomial_exponents(dimensions: int, degree: int) -> IntArray:
    """All exponent tuples of ``dimensions`` variables with total degree <= ``degree``."""
    rows = [
        combo
        for combo in itertools.product(range(degree + 1), repeat=dimensions)
        if sum(combo) <= degree
    ]
    rows.sort(key=lambda c: (sum(c), [-e for e in c]))
    return np.array(rows, dtype=np.int64).reshape(len(rows), dimensions)


def sobol_design(dimensions: int, log2_points: int, seed: int) -> FloatArray:
    """``2**log2_points`` scrambled Sobol points in ``[0, 1]**dimensions`` (deterministic)."""
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=dimensions, scramble=True, seed=seed)
    return np.asarray(sampler.random_base2(m=log2_points), dtype=np.float64)


@dataclass(frozen=True)
class PolynomialSurrogate:
    """``y(v) = phi(v) @ coefficients`` with ``v`` in ``[-1, 1]**k``; one column per output."""

    exponents: IntArray
    coefficients: FloatArray

    @classmethod
    def fit(cls, v: FloatArray, y: FloatArray, degree: int) -> PolynomialSurrogate:
        """Least-squares fit; the degree is lowered until there are 3 points per term."""
        k = v.shape[1]
        while degree > 1 and math.comb(k + degree, degree) * 3 > v.shape[0]:
            degree -= 1
        exponents = monomial_exponents(k, degree)
        phi = _features(v, exponents)
        coefficients, *_ = np.linalg.lstsq(phi, y, rcond=None)
        return cls(exponents, np.asarray(coefficients, dtype=np.float64))

    @property
    def degree(self) -> int:
        return int(self.exponents.sum(axis=1).max())

    def predict(self, v: FloatArray) -> FloatArray:
        """Outputs at rows ``v``: shape ``(n, outputs)``."""
        return _features(np.atleast_2d(v), self.exponents) @ self.coefficients

    def value_and_jacobian(self, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """At one point: outputs ``(outputs,)`` and Jacobian ``(outputs, k)``."""
        e = self.exponents
        k = e.shape[1]
        degree = int(e.max()) if e.size else 0
        powers = np.ones((k, degree + 1))
        for p in range(1, degree + 1):
            powers[:, p] = powers[:, p - 1] * v
        factors = powers[np.arange(k)[np.newaxis, :], e]  # (terms, k)
        phi = np.prod(factors, axis=1)
        d_phi = np.empty((e.shape[0], k))
        for i in range(k):
            others = np.prod(np.delete(factors, i, axis=1), axis=1)
            lower = powers[i, np.maximum(e[:, i] - 1, 0)]
            d_phi[:, i] = e[:, i] * lower * others
        return phi @ self.coefficients, self.coefficients.T @ d_phi


def _features(v: FloatArray, exponents: IntArray) -> FloatArray:
    """Monomials of each row: shape ``(n, terms)``."""
    n, k = v.shape
    degree = int(exponents.max()) if exponents.size else 0
    powers = np.ones((n, k, degree + 1))
    for p in range(1, degree + 1):
        powers[:, :, p] = powers[:, :, p - 1] * v
    cols = powers[:, np.arange(k)[np.newaxis, :], exponents]  # (n, terms, k)
    return np.asarray(np.prod(cols, axis=2), dtype=np.float64)
