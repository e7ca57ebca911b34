"""The scenario page's "Run on a processing worker" in headless Chromium: the API on PostgreSQL
served by uvicorn, a real ``circman5 run --role processing`` process; the engineer queues the
selected scenarios and the page follows the jobs until the worker has done them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from circman5.api.context import ApiContext
from circman5.api.users import UserStore
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
from circman5.storage.jobs import JobQueue
from circman5.storage.postgres import PostgresDatabase
from tests.api.served_api import served_api
from tests.api.test_hmi_browser import browser, text, wait  # noqa: F401 (the fixture)
from tests.service.test_processing_role import Workers


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase(postgres_dsn) as db:
        yield db


@pytest.fixture
def api_url(database: PostgresDatabase) -> Iterator[str]:
    twin = DigitalTwin()
    assert twin.initialize()
    users = UserStore(hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
    users.add("erika", "engineer-password", "engineer")
    manager = ScenarioManager(store=database.scenarios)
    for name, target in (("warm", 26.0), ("cool", 22.0)):
        manager.create_scenario(name, {"production_line.target_temperature": target})

    @contextlib.asynccontextmanager
    async def context() -> AsyncIterator[ApiContext]:
        yield ApiContext(twin=twin, users=users, scenarios=manager, jobs=JobQueue(database))

    with served_api(context) as url:
        yield url


def test_the_engineer_runs_scenarios_on_a_processing_worker(
    api_url: str,
    database: PostgresDatabase,
    postgres_dsn: str,
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811
) -> None:
    config = tmp_path / "processing.toml"
    config.write_text(f'[database]\nurl = "{postgres_dsn}"\n')
    workers = Workers(config, tmp_path / "worker-data")
    workers.start()
    driver = browser
    try:
        driver.get(f"{api_url}/")
        wait(driver, lambda d: d.find_element(By.ID, "login-username").is_displayed())
        driver.find_element(By.ID, "login-username").send_keys("erika")
        driver.find_element(By.ID, "login-password").send_keys("engineer-password")
        driver.find_element(By.ID, "login-submit").click()
        scenarios = 'button[data-view="scenarios"]'
        wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, scenarios).is_displayed())
        driver.find_element(By.CSS_SELECTOR, scenarios).click()
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".scenario-pick")) == 2)
        driver.find_element(By.ID, "job-run").click()
        # generous: the worker process starts and computes two runs on a loaded machine
        wait(driver, lambda d: text(d, "#job-message") == "2 job(s) done", timeout=180)
        rows = driver.find_elements(By.CSS_SELECTOR, "#job-list tr")
        assert sorted(r.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text for r in rows) == [
            "cool",
            "warm",
        ]
        assert all(r.find_element(By.CSS_SELECTOR, ".job-status").text == "done" for r in rows)
        results = [r.find_element(By.CSS_SELECTOR, ".job-result").text for r in rows]
        assert all(result.startswith("run ") for result in results), results
    finally:
        assert workers.close() == [0]
    jobs = JobQueue(database).recent()
    assert sorted(job.payload["scenario"] for job in jobs) == ["cool", "warm"]
    assert all(job.status == "done" and job.payload["steps"] == 60 for job in jobs)
    stored = ScenarioManager(store=database.scenarios).list_simulations()
    assert {s["id"] for s in stored} == {job.result["simulation_id"] for job in jobs}
    # shown on the page: each row names the run the worker stored
    assert {r.split(",")[0].removeprefix("run ") for r in results} == {s["id"] for s in stored}
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
