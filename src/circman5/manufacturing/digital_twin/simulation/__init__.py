"""Simulation of the PV-module line (technical manual 5, implementation guide 4.2, 4.5.2).

* :mod:`.simulation_engine`: ``SimulationEngine`` (what-if runs, Monte Carlo);
* :mod:`.process_models`: ``PVManufacturingModel`` and the custom-model contract;
* :mod:`.monte_carlo`: ``MonteCarloSummary`` (vectorized statistics, breach probabilities);
* :mod:`.scenario_manager`: ``ScenarioManager`` (stored scenarios, runs, comparison);
* :mod:`.forecast`: ``ForecastChecker`` (warn before a threshold is crossed);
* :mod:`.calibration`: ``calibrate``, ``load_active_calibration`` (the model fitted to the line's
  history, versioned under the data directory); :mod:`.calibration_fit` does the fitting and
  :mod:`.known_history` generates history with known parameters (tests, benchmark).

Nothing is imported here, so importing one module does not pull in the others.
"""
