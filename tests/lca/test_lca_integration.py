"""LCAIntegration on twin states: extraction, analysis, saving, scenarios, report, charts.

Hand computation for the FLOW_STATE of conftest.py (spec factors, LCA_DEFAULTS):
materials used silicon_wafer 100 kg, solar_glass 200 kg, aluminum_frame 50 kg; energy 500 kWh.
* manufacturing: 100*120 + 200*25 + 50*40 + 500*0.5 = 12000 + 5000 + 2000 + 250 = 19250
* recycling rates: silicon 4/5 = 0.8, glass 9/10 = 0.9, aluminum no waste -> default 0
* use: 200 kg glass / 10 = 20 m2 * 1000 * 0.2 = 4000 kWh/yr * 25 yr = 100000 kWh;
  100000 * 0.01 - 100000 * 0.275 = -26500
* end of life: 100*10*0.2 + 200*5*0.1 + 50*8*1 = 200 + 100 + 400 = 700,
  transport 0.35 t * 100 km * 0.025 = 0.875 -> 700.875
* recycling credit: 100*0.8*(-80) + 200*0.9*(-20) + 0 = -6400 - 3600 = -10000
* total 19250 - 26500 + 700.875 = -6549.125; net -16549.125
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.integration.lca_integration import LCAIntegration
from circman5.manufacturing.lifecycle.lca_core import LifeCycleImpact

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def lca(static_twin: Any) -> LCAIntegration:
    return LCAIntegration(static_twin)


def test_material_data_is_consumption_not_inventory(lca: LCAIntegration) -> None:
    frame = lca.extract_material_data_from_state()
    assert list(frame.columns) == [
        "batch_id",
        "timestamp",
        "material_type",
        "quantity_used",
        "waste_generated",
        "recycled_amount",
    ]
    rows = frame.set_index("material_type")
    assert rows.loc["silicon_wafer", "quantity_used"] == 100.0  # not the inventory of 850
    assert rows.loc["solar_glass", "waste_generated"] == 10.0
    assert rows.loc["aluminum_frame", "recycled_amount"] == 0.0
    assert set(frame["batch_id"]) == {"B-042"}


def test_energy_data(lca: LCAIntegration, flow_state: dict[str, Any]) -> None:
    frame = lca.extract_energy_data_from_state()
    assert frame.loc[0, "energy_consumption"] == 500.0
    assert frame.loc[0, "energy_source"] == "grid_electricity"
    flow_state["production_line"] = {"status": "idle"}
    assert lca.extract_energy_data_from_state(flow_state).empty


def test_analysis_matches_the_hand_computation(lca: LCAIntegration) -> None:
    impact = lca.perform_lca_analysis(save_results=False)
    assert impact.manufacturing_impact == pytest.approx(19250.0)
    assert impact.use_phase_impact == pytest.approx(-26500.0)
    assert impact.end_of_life_impact == pytest.approx(700.875)
    assert impact.recycling_benefit == pytest.approx(-10000.0)
    assert impact.total_carbon_footprint == pytest.approx(-6549.125)
    assert impact.net_carbon_footprint == pytest.approx(-16549.125)


def test_overrides(lca: LCAIntegration) -> None:
    impact = lca.perform_lca_analysis(
        save_results=False, energy_kwh=100.0, lifetime_years=0.0, transport_distance=0.0
    )
    # manufacturing 19000 + 100*0.5; no use phase; disposal 700, no transport
    assert impact.manufacturing_impact == pytest.approx(19050.0)
    assert impact.use_phase_impact == 0.0
    assert impact.end_of_life_impact == pytest.approx(700.0)


def test_results_are_saved_under_the_data_dir(lca: LCAIntegration, isolated_data_dir: Path) -> None:
    impact = lca.perform_lca_analysis()
    path = isolated_data_dir / "lca_results" / "lca_impact_B-042.json"
    saved = json.loads(path.read_text())
    assert saved["impact"]["total_carbon_footprint"] == pytest.approx(impact.total_carbon_footprint)
    assert saved["material_inputs"]["silicon_wafer"] == 100.0
    assert lca.lca_results_history[-1]["result_path"] == str(path)


def test_output_dir_is_honoured(lca: LCAIntegration, tmp_path: Path) -> None:
    lca.perform_lca_analysis(batch_id="my batch/1", output_dir=tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["lca_impact_my_batch_1.json"]


def test_unknown_materials_are_reported(lca: LCAIntegration, flow_state: dict[str, Any]) -> None:
    flow_state["materials"]["junction_box"] = {"consumption": 4.0, "inventory": 10.0}
    impact = lca.perform_lca_analysis(flow_state, save_results=False)
    assert impact.unknown_materials == ("junction_box",)
    assert impact.manufacturing_impact == pytest.approx(19250.0)
    report = lca.generate_lca_report()
    assert report["unknown_materials"] == ["junction_box"]


@pytest.mark.parametrize(
    "path, value",
    [
        (("materials", "solar_glass", "consumption"), -1.0),
        (("materials", "solar_glass", "waste"), "lots"),
        (("production_line", "energy_consumption"), -10.0),
    ],
)
def test_negative_or_bad_flows_raise(
    lca: LCAIntegration, flow_state: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    node = flow_state
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=path[-1]):
        lca.perform_lca_analysis(flow_state, save_results=False)
    assert len(lca.lca_results_history) == 0


def test_compare_scenarios(lca: LCAIntegration, flow_state: dict[str, Any]) -> None:
    alternative = json.loads(json.dumps(flow_state))
    alternative["production_line"]["energy_consumption"] = 400.0
    alternative["materials"]["silicon_wafer"]["recycled"] = 5.0
    comparison = lca.compare_scenarios(flow_state, alternative, "less_energy", save_results=True)
    diff = comparison["absolute_differences"]
    assert diff["manufacturing_impact"] == pytest.approx(-50.0)  # 100 kWh * 0.5
    assert diff["end_of_life_impact"] == pytest.approx(-200.0)  # silicon now fully recycled
    assert diff["recycling_benefit"] == pytest.approx(-1600.0)  # 100 * 0.2 * -80
    assert diff["total_carbon_footprint"] == pytest.approx(-250.0)
    assert comparison["percent_differences"]["manufacturing_impact"] == pytest.approx(
        -50.0 / 19250.0 * 100
    )
    assert comparison["improved"] is True
    assert Path(comparison["report_path"]).name == "lca_comparison_less_energy.json"
    assert len(lca.lca_results_history) == 0  # what-ifs are not analyses of the line


def test_simulate_improvements(lca: LCAIntegration) -> None:
    results = lca.simulate_lca_improvements(
        {
            "thinner_wafers": {"silicon_wafer_quantity": 0.9},
            "efficient_line": {"energy_efficiency": 1.25},
            "typo": {"silicon_quantity": 0.9},
            "negative": {"energy_consumption": -1.0},
        }
    )
    baseline = results["baseline"]
    thinner = results["thinner_wafers"]
    efficient = results["efficient_line"]
    assert isinstance(baseline, LifeCycleImpact)
    assert isinstance(thinner, LifeCycleImpact) and isinstance(efficient, LifeCycleImpact)
    # 10 kg less silicon: -1200 manufacturing, -20 disposal, -0.025 transport
    assert thinner.total_carbon_footprint - baseline.total_carbon_footprint == pytest.approx(
        -1220.025
    )
    # 500 / 1.25 = 400 kWh: -50
    assert efficient.manufacturing_impact == pytest.approx(19200.0)
    assert isinstance(results["typo"], str) and "unknown adjustment" in results["typo"]
    assert isinstance(results["negative"], str) and "negative" in results["negative"]


def test_report(lca: LCAIntegration, flow_state: dict[str, Any]) -> None:
    assert lca.generate_lca_report()["total_analyses"] == 0
    for energy in (100.0, 200.0, 300.0):
        flow_state["production_line"]["energy_consumption"] = energy
        lca.perform_lca_analysis(flow_state, save_results=False)
    report = lca.generate_lca_report(num_results=2, save=True)
    assert report["total_analyses"] == 3 and report["num_results"] == 2
    # manufacturing 19000 + 100 and 19000 + 150
    assert report["average_impacts"]["manufacturing_impact"] == pytest.approx(19125.0)
    assert Path(report["report_path"]).is_file()
    with pytest.raises(ValueError, match="num_results"):
        lca.generate_lca_report(0)


def test_lca_of_a_simulated_twin_state() -> None:
    twin = DigitalTwin()
    assert twin.initialize()
    twin.update({"production_line": {"status": "running", "production_rate": 8.0}})
    final = twin.simulate(steps=20)[-1]
    lca = LCAIntegration(twin)
    impact = lca.perform_lca_analysis(final, save_results=False)
    used = {m: final["materials"][m]["consumption"] for m in ("silicon_wafer", "solar_glass")}
    assert used["silicon_wafer"] > 0
    energy = final["production_line"]["energy_consumption"]
    expected = used["silicon_wafer"] * 120.0 + used["solar_glass"] * 25.0 + energy * 0.5
    assert impact.manufacturing_impact == pytest.approx(expected)
    assert impact.unknown_materials == ()


def test_charts(lca: LCAIntegration, isolated_data_dir: Path, tmp_path: Path) -> None:
    impact = lca.perform_lca_analysis(save_results=False)
    visualizer = lca.lca_visualizer
    phases = visualizer.plot_phase_breakdown(impact)
    assert phases.parent == isolated_data_dir / "charts"
    materials = visualizer.plot_material_breakdown(impact, tmp_path / "materials.png")
    scenarios = visualizer.plot_scenario_comparison(
        lca.simulate_lca_improvements({"less": {"solar_glass_quantity": 0.8}, "bad": {"x": 1}})
    )
    report = visualizer.create_comprehensive_report(impact, tmp_path / "report", "B-042")
    for path in (phases, materials, scenarios, *report):
        assert path.read_bytes()[:8] == PNG
    assert [p.name for p in report] == ["lca_phases_B-042.png", "lca_materials_B-042.png"]
