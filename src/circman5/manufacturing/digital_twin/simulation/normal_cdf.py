"""The standard normal distribution function, element by element, in numpy alone.

The statistical forecast needs Phi(x) for whole arrays at every check. scipy's ``ndtr`` would
do, but importing ``scipy.special`` costs an edge service ~26 MB of memory and ~0.4 s of CPU
at its first forecast; this is Cephes' ``ndtr`` (S. L. Moshier: the erf/erfc rational
approximations scipy itself long used), relative error below 1e-12 over the double range
(``tests/simulation/test_normal_cdf.py`` checks it against ``math.erfc``).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["ndtr"]

FloatArray = npt.NDArray[np.float64]

# erfc(z) = exp(-z^2) P(z)/Q(z) for 1 <= z < 8, exp(-z^2) R(z)/S(z) beyond;
# erf(x) = x T(x^2)/U(x^2) for |x| < 1. Highest power first.
_P = (
    2.46196981473530512524e-10,
    5.64189564831068821977e-1,
    7.46321056442269912687e0,
    4.86371970985681366614e1,
    1.96520832956077098242e2,
    5.26445194995477358631e2,
    9.34528527171957607540e2,
    1.02755188689515710272e3,
    5.57535335369399327526e2,
)
_Q = (
    1.0,
    1.32281951154744992508e1,
    8.67072140885989742329e1,
    3.54937778887819891062e2,
    9.75708501743205489753e2,
    1.82390916687909736289e3,
    2.24633760818710981792e3,
    1.65666309194161350182e3,
    5.57535340817727675546e2,
)
_R = (
    5.64189583547755073984e-1,
    1.27536670759978104416e0,
    5.01905042251180477414e0,
    6.16021097993053585195e0,
    7.40974269950448939160e0,
    2.97886665372100240670e0,
)
_S = (
    1.0,
    2.26052863220117276590e0,
    9.39603524938001434673e0,
    1.20489539808096656605e1,
    1.70814450747565897222e1,
    9.60896809063285878198e0,
    3.36907645100081516050e0,
)
_T = (
    9.60497373987051638749e0,
    9.00260197203842689217e1,
    2.23200534594684319226e3,
    7.00332514112805075473e3,
    5.55923013010394962768e4,
)
_U = (
    1.0,
    3.35617141647503099647e1,
    5.21357949780152679795e2,
    4.59432382970980127987e3,
    2.26290000613890934246e4,
    4.92673942608635921086e4,
)
_SQRT_HALF = math.sqrt(0.5)
#: Beyond |x| = 42 Phi is 0 or 1 in doubles (exp(-882) underflows).
_CLIP = 42.0


def _polynomial(coefficients: tuple[float, ...], x: FloatArray) -> FloatArray:
    result = np.full_like(x, coefficients[0])
    for coefficient in coefficients[1:]:
        result *= x
        result += coefficient
    return result


def _erf(x: FloatArray) -> FloatArray:
    """erf(x) for |x| < 1."""
    squared = x * x
    result: FloatArray = x * _polynomial(_T, squared) / _polynomial(_U, squared)
    return result


def ndtr(values: npt.ArrayLike) -> FloatArray:
    """Phi(values): P(Z <= x) for a standard normal Z, element by element (NaN stays NaN)."""
    given = np.asarray(values, dtype=np.float64)
    x = np.clip(given, -_CLIP, _CLIP).ravel() * _SQRT_HALF
    z = np.abs(x)
    out = np.empty_like(x)
    central = z < _SQRT_HALF
    if central.any():
        out[central] = 0.5 + 0.5 * _erf(x[central])
    tails = ~central
    if tails.any():
        zt = z[tails]
        half_erfc = np.empty_like(zt)
        close = zt < 1.0  # erfc = 1 - erf up to 1 (Cephes' erfc does the same)
        half_erfc[close] = 0.5 - 0.5 * _erf(zt[close])
        near = ~close & (zt < 8.0)
        zn = zt[near]
        half_erfc[near] = 0.5 * np.exp(-zn * zn) * _polynomial(_P, zn) / _polynomial(_Q, zn)
        far = zt >= 8.0
        if far.any():
            zf = zt[far]
            half_erfc[far] = 0.5 * np.exp(-zf * zf) * _polynomial(_R, zf) / _polynomial(_S, zf)
        out[tails] = np.where(x[tails] > 0.0, 1.0 - half_erfc, half_erfc)
    out[np.isnan(x)] = np.nan
    return out.reshape(given.shape)
