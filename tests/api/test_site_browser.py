"""The site page in headless Chromium: two lines publishing to a real mosquitto (child processes
running the service's MQTT publisher), the API with its site view served by uvicorn. The page
lists both lines with their status, values and alarm, opens a line's live view and turns a
line offline when its process is killed (its last will)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from circman5.api.context import ApiContext
from circman5.api.users import UserStore
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.sinks.site_config import SiteViewSettings
from circman5.sinks.site_watch import SiteWatcher
from simulators.external import Mosquitto
from tests.api.served_api import served_api
from tests.api.test_hmi_browser import browser, text, wait  # noqa: F401 (the fixture)

LINE_SCRIPT = str(Path(__file__).with_name("line_process.py"))


@pytest.fixture
def site_url(mosquitto: Mosquitto) -> Iterator[str]:
    twin = DigitalTwin()
    assert twin.initialize()
    users = UserStore(hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
    users.add("sam", "site-password", "viewer", sites=["plantA"])

    @contextlib.asynccontextmanager
    async def context() -> AsyncIterator[ApiContext]:
        settings = SiteViewSettings(
            enabled=True,
            port=mosquitto.port,
            key_values=["production_line.temperature"],
            dashboards={"plantA/line1": "http://edge-a1.example:8080/hmi/"},
        )
        async with SiteWatcher(settings, "plantA") as watcher:
            yield ApiContext(twin=twin, users=users, site_view=watcher)

    with served_api(context) as url:
        yield url


def _line(port: int, line: str, temperature: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, LINE_SCRIPT, str(port), "plantA", line, str(temperature)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "connected"
    return process


def test_the_site_page_shows_every_line_and_follows_them(
    site_url: str,
    mosquitto: Mosquitto,
    browser: WebDriver,  # noqa: F811
) -> None:
    lines = [_line(mosquitto.port, "line1", 21.5), _line(mosquitto.port, "line2", 29.0)]
    driver = browser
    try:
        driver.get(f"{site_url}/")
        wait(driver, lambda d: d.find_element(By.ID, "login-username").is_displayed())
        driver.find_element(By.ID, "login-username").send_keys("sam")
        driver.find_element(By.ID, "login-password").send_keys("site-password")
        driver.find_element(By.ID, "login-submit").click()
        wait(driver, lambda d: d.find_element(By.ID, "site-link").is_displayed())
        driver.find_element(By.ID, "site-link").click()

        row1 = 'tr[data-line="plantA/line1"]'
        row2 = 'tr[data-line="plantA/line2"]'
        wait(
            driver,
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, row1)
                and "alarm" in text(d, f"{row2} td.alarms")
                and "21.5" in text(d, f"{row1} td.value")
            ),
            timeout=30,
        )
        assert text(driver, f"{row1} td:nth-child(2)") == "online"
        assert "29.0" in text(driver, f"{row2} td.value")
        link = driver.find_element(By.CSS_SELECTOR, f"{row1} a.open-dashboard")
        assert link.get_attribute("href") == "http://edge-a1.example:8080/hmi/"

        # line 2 has no dashboard of its own: its live view from the retained state
        driver.find_element(By.CSS_SELECTOR, f"{row2} a.open-live").click()
        wait(driver, lambda d: d.find_element(By.ID, "line-view").is_displayed())
        wait(driver, lambda d: "production_line.temperature" in text(d, "#line-view-table"))
        assert text(driver, "#line-view-title") == "Line plantA/line2"

        lines[1].kill()  # no DISCONNECT: the broker publishes line 2's will
        lines[1].wait()
        wait(driver, lambda d: text(d, f"{row2} td:nth-child(2)") == "offline", timeout=30)
        assert text(driver, f"{row1} td:nth-child(2)") == "online"
    finally:
        for process in lines:
            process.kill()
            process.wait()
