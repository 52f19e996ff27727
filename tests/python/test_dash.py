"""The dashboard in a real browser: Debian's chromium, driven by selenium through chromedriver.

Starts `edgekv cluster` (three regions in memory, short delays), opens the page it prints, and
does what a user would: sees every region and the link matrix, probes a write and watches it
reach every region, cuts a link from the page and sees the matrix and the backlog change,
heals and sees the regions converge, stops and starts a region. The browser console must stay
free of errors. Screenshots go to `EDGEKV_SCREENSHOTS` (a directory) when it is set: that is
how docs/dash-*.png are made.

Skipped when chromium or chromedriver is missing, except in CI (`CI` set), where .ci/run
installs them and a skip would hide a broken page.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import edgekv_bin

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WAIT_S = 60.0

if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("the dashboard test needs chromium and chromedriver (apt install chromium chromium-driver)")
    pytest.skip("chromium or chromedriver not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


def _start_cluster() -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    proc = subprocess.Popen(
        [str(edgekv_bin()), "cluster", "--port", "0", "--in-memory", "--delay", "uniform(300ms,800ms)",
         "--write-rate-limit", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_") or k == "EDGEKV_BIN"},
    )
    assert proc.stdout is not None
    regions: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        fields = line.split()
        if len(fields) == 5 and fields[1].startswith("http://"):
            regions[fields[0]] = fields[1]
        if line.startswith("dashboard "):
            return proc, fields[1], regions
    proc.kill()
    raise RuntimeError("edgekv cluster printed no dashboard URL")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    proc, dash, regions = _start_cluster()
    try:
        yield dash, regions
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(what: str, check, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # an element replaced between two reads: look again
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    directory = os.environ.get("EDGEKV_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(directory) / f"dash-{name}.png"))


def cell(driver: webdriver.Chrome, src: str, dst: str):
    return driver.find_element(By.CSS_SELECTOR, f'#matrix td[data-from="{src}"][data-to="{dst}"]')


def put(api: str, key: str, value: str) -> None:
    """Writes through the region's API, in the dashboard's own probe namespace's account."""
    account = f"{api}/accounts/edgekv-dash-test/storage/kv/namespaces"
    headers = {"Authorization": "Bearer edgekv-dev-token", "Content-Type": "application/json"}
    if not hasattr(put, "namespace"):
        body = json.dumps({"title": "load"}).encode()
        request = urllib.request.Request(account, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            put.namespace = json.load(reply)["result"]["id"]  # type: ignore[attr-defined]
    url = f"{account}/{put.namespace}/values/{key}"  # type: ignore[attr-defined]
    request = urllib.request.Request(url, data=value.encode(), headers=headers, method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


def console_errors(driver: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_page_shows_probes_cuts_heals_and_restarts(cluster, browser) -> None:
    dash, regions = cluster
    browser.get(dash)
    wait_until("three regions up", lambda: len(browser.find_elements(By.CSS_SELECTOR, '.region[data-up="true"]')) == 3)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#matrix td[data-from]")) == 6
    assert "uniform(300ms,800ms)" in cell(browser, "wnam", "enam").text
    wait_until("the stream is live", lambda: browser.find_element(By.ID, "conn").text == "live")

    # A probe written in wnam is seen in the two other regions.
    Select(browser.find_element(By.ID, "probe-region")).select_by_value("wnam")
    browser.find_element(By.ID, "probe-key").clear()
    browser.find_element(By.ID, "probe-key").send_keys("greeting")
    browser.find_element(By.ID, "probe-go").click()
    wait_until("the probe arrives everywhere",
               lambda: len(browser.find_elements(By.CSS_SELECTOR, '#probe-log li[data-arrived="true"]')) == 2)
    assert "model uniform(300ms,800ms)" in browser.find_element(By.ID, "probe-log").text
    screenshot(browser, "probe")

    # Cut wnam from enam from the page: the cell turns red, and writes in wnam queue up.
    Select(browser.find_element(By.ID, "fault-kind")).select_by_value("partition")
    Select(browser.find_element(By.ID, "fault-from")).select_by_value("wnam")
    Select(browser.find_element(By.ID, "fault-to")).select_by_value("enam")
    browser.find_element(By.ID, "fault-add").click()
    wait_until("the page says what it did", lambda: "added: partition" in browser.find_element(By.ID, "message").text)
    wait_until("the cut shows in the matrix", lambda: "cut" in cell(browser, "wnam", "enam").get_attribute("class"))
    assert "cut" in cell(browser, "enam", "wnam").get_attribute("class"), "a partition cuts both ways"
    assert "cut" not in cell(browser, "wnam", "weur").get_attribute("class")
    for i in range(30):
        put(regions["wnam"], f"k{i}", f"v{i}")
    wait_until("the backlog of wnam -> enam grows",
               lambda: float(cell(browser, "wnam", "enam").get_attribute("data-backlog") or 0) > 0)
    wait_until("the faults list has the cut", lambda: browser.find_elements(By.CSS_SELECTOR, '#faults li[data-kind="partition"]'))
    screenshot(browser, "partition")

    # Heal from the page: the cut goes, the backlog drains, the regions converge.
    browser.find_element(By.ID, "heal").click()
    wait_until("the cut is gone", lambda: "cut" not in cell(browser, "wnam", "enam").get_attribute("class"))
    wait_until("the backlog drains", lambda: cell(browser, "wnam", "enam").get_attribute("data-backlog") in ("0", "0.0"))
    wait_until("the regions converge", lambda: browser.find_element(By.ID, "converged").text.startswith("converged"))
    screenshot(browser, "converged")

    # Stop a region from the page and start it again; the page keeps its stream throughout.
    browser.find_element(By.CSS_SELECTOR, '.region[data-region="weur"] button[data-action="stop"]').click()
    wait_until("weur is down", lambda: browser.find_elements(By.CSS_SELECTOR, '.region[data-region="weur"][data-up="false"]'))
    browser.find_element(By.CSS_SELECTOR, '.region[data-region="weur"] button[data-action="start"]').click()
    wait_until("weur is up again", lambda: browser.find_elements(By.CSS_SELECTOR, '.region[data-region="weur"][data-up="true"]'))
    assert browser.find_element(By.ID, "conn").text == "live"
    assert console_errors(browser) == []
