"""The forecast's normal distribution function against the standard library's erfc."""

from __future__ import annotations

import math

import numpy as np
import pytest

from circman5.manufacturing.digital_twin.simulation.normal_cdf import ndtr


def _reference(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def test_relative_error_below_1e_12_over_the_whole_range() -> None:
    # every branch: the central erf, the near and the far erfc, both signs, deep tails
    grid = np.concatenate([np.linspace(-38.0, 38.0, 40_001), [-1e-300, 0.0, 1e-300]])
    got = ndtr(grid)
    expected = np.array([_reference(x) for x in grid])
    # below 0 relative to Phi (the tails are computed from |x|, so this covers both), above 0
    # to the last bit a double near 1 has
    low = grid <= 0.0
    normal = low & (expected > 1e-290)  # subnormal doubles carry fewer digits
    assert np.max(np.abs(got[normal] - expected[normal]) / expected[normal]) < 1e-12
    assert np.max(np.abs(got[low & ~normal] - expected[low & ~normal])) < 1e-300
    assert np.max(np.abs(got[~low] - expected[~low])) <= 4.5e-16


@pytest.mark.parametrize(
    ("x", "phi"),
    [(0.0, 0.5), (1.0, 0.8413447460685429), (-1.959963984540054, 0.025), (-8.0, 6.22096057e-16)],
)
def test_known_values(x: float, phi: float) -> None:
    assert ndtr(np.array([x]))[0] == pytest.approx(phi, rel=1e-8)


def test_limits_nan_and_shape() -> None:
    got = ndtr(np.array([[-np.inf, np.inf], [np.nan, 50.0]]))
    assert got.shape == (2, 2)
    assert got[0, 0] == 0.0 and got[0, 1] == 1.0 and got[1, 1] == 1.0
    assert math.isnan(got[1, 0])
    assert ndtr(np.empty((3, 0))).shape == (3, 0)


def test_monotone_and_symmetric() -> None:
    x = np.linspace(-10.0, 10.0, 2_001)
    phi = ndtr(x)
    assert np.all(np.diff(phi) >= 0.0)
    assert np.allclose(phi + ndtr(-x), 1.0, rtol=0.0, atol=1e-15)


def test_a_forecast_loads_no_scipy() -> None:
    """An edge service forecasting its paths stays without scipy (~26 MB)."""
    import subprocess
    import sys

    script = """
import sys
from circman5.adapters.config.simulation_parameters import StatisticalForecastConfig
from circman5.manufacturing.digital_twin.simulation.statistical_forecast import (
    StatisticalForecaster,
)
forecaster = StatisticalForecaster(["a.b"], {"a.b": (0.0, 10.0)}, StatisticalForecastConfig())
for t in range(200):
    forecaster.observe("a.b", float(t), 5.0 + 0.04 * t)
result = forecaster.forecast()
assert result.ready[0] and result.p_exceed[0] > 0.5, (result.ready, result.p_exceed)
print(sorted(name for name in sys.modules if name.split(".")[0] == "scipy"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
