"""LCAAnalyzer and LifeCycleImpact against hand-computed figures from the spec's factors.

Factors (technical manual 16.1.2), kg CO2-eq: materials per kg silicon_wafer 120, solar_glass 25,
aluminum_frame 40; energy 0.5 per kWh; disposal per kg silicon_wafer 10, solar_glass 5,
aluminum_frame 8; recycling credit per kg silicon_wafer -80, solar_glass -20, aluminum_frame
-35; transport 0.025 per tonne-km; grid EU_average 0.275 per kWh; operational 0.01 per kWh.
"""

from __future__ import annotations

from typing import Any

import pytest

from circman5.manufacturing.lifecycle import impact_factors
from circman5.manufacturing.lifecycle.lca_core import LCAAnalyzer, LifeCycleImpact

MATERIALS = {"silicon_wafer": 10.0, "solar_glass": 20.0, "aluminum_frame": 5.0}
RATES = {"silicon_wafer": 0.8, "solar_glass": 0.9}  # aluminum_frame: 0 (not given)


@pytest.fixture
def analyzer() -> LCAAnalyzer:
    return LCAAnalyzer()


def test_manufacturing_impact(analyzer: LCAAnalyzer) -> None:
    # 10*120 + 20*25 + 5*40 + 100 kWh * 0.5 = 1200 + 500 + 200 + 50
    assert analyzer.calculate_manufacturing_impact(MATERIALS, 100.0) == pytest.approx(1950.0)


def test_use_phase_impact(analyzer: LCAAnalyzer) -> None:
    # G = 1000 kWh/yr * 25 yr = 25000 kWh; 25000 * 0.01 - 25000 * 0.275 = 250 - 6875
    assert analyzer.calculate_use_phase_impact(25, 1000.0, 0.275) == pytest.approx(-6625.0)


def test_end_of_life_impact(analyzer: LCAAnalyzer) -> None:
    # disposal: 10*10*(1-0.8) + 20*5*(1-0.9) + 5*8*(1-0) = 20 + 10 + 40 = 70
    # transport: 35 kg = 0.035 t * 100 km * 0.025 = 0.0875
    assert analyzer.calculate_end_of_life_impact(MATERIALS, RATES, 100.0) == pytest.approx(70.0875)


def test_recycling_benefit(analyzer: LCAAnalyzer) -> None:
    # 10*0.8*(-80) + 20*0.9*(-20) + 5*0*(-35) = -640 - 360 + 0
    assert analyzer.calculate_recycling_benefit(MATERIALS, RATES) == pytest.approx(-1000.0)


def test_full_lca_total_and_net(analyzer: LCAAnalyzer) -> None:
    impact = analyzer.perform_full_lca(MATERIALS, 100.0, 25, 1000.0, 0.275, RATES, 100.0)
    assert impact.manufacturing_impact == pytest.approx(1950.0)
    assert impact.use_phase_impact == pytest.approx(-6625.0)
    assert impact.end_of_life_impact == pytest.approx(70.0875)
    assert impact.recycling_benefit == pytest.approx(-1000.0)
    # CF_total = manufacturing + use + end of life (16.3.3); the credit is reported beside it.
    assert impact.total_carbon_footprint == pytest.approx(1950.0 - 6625.0 + 70.0875)
    assert impact.total_impact == impact.total_carbon_footprint
    assert impact.net_carbon_footprint == pytest.approx(-4604.9125 - 1000.0)
    assert impact.material_impacts == pytest.approx(
        {"silicon_wafer": 1200.0, "solar_glass": 500.0, "aluminum_frame": 200.0}
    )
    assert impact.energy_impact == pytest.approx(50.0)
    assert impact.transport_impact == pytest.approx(0.0875)
    assert impact.unknown_materials == () and impact.warnings == ()
    data = impact.to_dict()
    assert data["total_carbon_footprint"] == pytest.approx(-4604.9125)
    assert data["breakdown"]["recycling_benefits"]["solar_glass"] == pytest.approx(-360.0)


def test_unknown_materials_are_reported(analyzer: LCAAnalyzer) -> None:
    impact = analyzer.perform_full_lca(
        {**MATERIALS, "junction_box": 2.0, "perovskite": 1.0},
        100.0,
        25,
        1000.0,
        0.275,
        RATES,
        100.0,
    )
    assert impact.unknown_materials == ("junction_box", "perovskite")
    assert any("junction_box" in w and "perovskite" in w for w in impact.warnings)
    # They add no material impact, only their 3 kg to transport: 0.038 t * 100 km * 0.025.
    assert impact.manufacturing_impact == pytest.approx(1950.0)
    assert impact.transport_impact == pytest.approx(0.095)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a: a.calculate_manufacturing_impact({"silicon_wafer": -1.0}, 10.0), "negative"),
        (lambda a: a.calculate_manufacturing_impact(MATERIALS, -5.0), "energy_consumption"),
        (lambda a: a.calculate_use_phase_impact(-25, 1000.0, 0.275), "lifetime_years"),
        (lambda a: a.calculate_use_phase_impact(25, -1.0, 0.275), "annual_energy_generation"),
        (lambda a: a.calculate_end_of_life_impact(MATERIALS, RATES, -1.0), "transport"),
        (lambda a: a.calculate_end_of_life_impact(MATERIALS, {"solar_glass": 1.2}, 1.0), "0..1"),
        (lambda a: a.calculate_manufacturing_impact({"solar_glass": float("nan")}, 1.0), "finite"),
        (lambda a: a.calculate_manufacturing_impact({"solar_glass": "10"}, 1.0), "number"),
        (
            lambda a: a.perform_full_lca(MATERIALS, 1.0, -1.0, 1000.0, 0.275, RATES, 1.0),
            "lifetime_years",
        ),
    ],
)
def test_bad_input_raises_value_error(analyzer: LCAAnalyzer, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(analyzer)


def test_custom_impact_factors_keep_spec_defaults_for_the_rest() -> None:
    analyzer = LCAAnalyzer({"MATERIAL_IMPACT_FACTORS": {"silicon_wafer": 50.0}})
    # 10*50 (solar_glass and aluminum_frame now unknown) + 100*0.5 (default energy factor)
    assert analyzer.calculate_manufacturing_impact(MATERIALS, 100.0) == pytest.approx(550.0)
    with pytest.raises(ValueError, match="invalid impact factors"):
        LCAAnalyzer({"ENERGY_IMPACT_FACTOR": -0.5})


def test_grid_intensity_by_region(analyzer: LCAAnalyzer) -> None:
    assert analyzer.grid_carbon_intensity() == 0.275  # LCA_DEFAULTS.grid_region EU_average
    assert analyzer.grid_carbon_intensity("Sweden") == 0.013
    with pytest.raises(ValueError, match="unknown grid region"):
        analyzer.grid_carbon_intensity("Atlantis")


def test_energy_generation_from_glass(analyzer: LCAAnalyzer) -> None:
    # 200 kg glass / 10 kg/m2 = 20 m2 * 1000 kWh/m2/yr * 0.20 = 4000 kWh/yr
    assert analyzer.calculate_energy_generation({"solar_glass": 200.0}) == pytest.approx(4000.0)


def test_impact_factors_module_reads_the_configuration() -> None:
    assert impact_factors.MATERIAL_IMPACT_FACTORS["silver_paste"] == 200.0
    assert impact_factors.ENERGY_IMPACT_FACTOR == 0.5
    assert impact_factors.get_impact_factors()["TRANSPORT_IMPACT_FACTOR"] == 0.025
    with pytest.raises(AttributeError):
        impact_factors.NOT_A_FACTOR  # noqa: B018


def test_life_cycle_impact_is_a_frozen_value() -> None:
    impact = LifeCycleImpact(100.0, -50.0, 10.0)
    assert impact.total_carbon_footprint == 60.0 and impact.net_carbon_footprint == 60.0
    with pytest.raises(AttributeError):
        impact.manufacturing_impact = 0.0  # type: ignore[misc]
