"""End to end in a real browser: ``deeprel serve`` in a subprocess, the visualiser page in headless Chromium.

Skipped where /usr/bin/chromium is absent, unless DEEPREL_REQUIRE_BROWSER=1 (CI), where that is a failure.
A screenshot of the page goes to the test's tmp folder and, when DEEPREL_SCREENSHOT_DIR is set, there too.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A training sentence of the tiny model: it finds both people and place and the relation between them.
SENTENCE = "In 1752, flagmaker Betsy Ross was born in Philadelphia."


@pytest.fixture(scope="session")  # session-scoped so that it is checked before the model is trained
def chromium() -> Path:
    if not CHROMIUM.is_file():
        if os.environ.get("DEEPREL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and DEEPREL_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def service(trained_run: Path, tmp_path: Path) -> Iterator[str]:
    """The base URL of ``deeprel serve`` running the tiny model; the server is stopped however the test ends."""
    port = free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "deeprel.cli", "serve", str(trained_run / "model"), "--port", str(port)]
    with log.open("w") as output:
        server = subprocess.Popen([*command, "--num-threads", "1"], stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for_health(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"deeprel serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json() == {"status": "ok"}:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"deeprel serve did not answer /health within {timeout} s:\n{log.read_text()}")


def test_the_visualiser_marks_entities_and_draws_relations(chromium: Path, service: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    # What the page must show: the service's own answer for the sentence.
    [expected] = httpx.post(f"{service}/extract", json={"text": SENTENCE}, timeout=60).json()["results"]
    assert {e["text"] for e in expected["entities"]} >= {"Betsy Ross", "Philadelphia"}
    assert expected["relations"], "the tiny model should find a relation in the test sentence"

    screenshot = tmp_path / "visualiser.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 600})
            page.goto(service + "/")
            page.fill("#text", SENTENCE)
            page.click("#submit")
            page.wait_for_selector("#result path.arc[data-relation]", timeout=30_000)
            page.screenshot(path=str(screenshot), full_page=True)

            marks = page.locator("#result mark.entity[data-type][data-entity]")
            shown = {
                (marks.nth(i).get_attribute("data-type"), marks.nth(i).get_attribute("data-entity"))
                for i in range(marks.count())
            }
            assert shown == {(e["type"], str(i)) for i, e in enumerate(expected["entities"])}
            for i in range(marks.count()):
                mark = marks.nth(i)
                assert mark.locator(":scope > .entity-type").text_content() == mark.get_attribute("data-type")
            arcs = page.locator("#result path.arc[data-relation]")
            assert arcs.count() == len(expected["relations"])
            labels = page.locator("#result text.arc-label").all_text_contents()
            assert sorted(labels) == sorted(r["type"] for r in expected["relations"])
            assert "error" not in (page.get_attribute("#status", "class") or "")
        finally:
            browser.close()

    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(screenshot) as image:
        assert image.width >= 800 and image.height >= 300
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20  # a page, not a blank frame
    if os.environ.get("DEEPREL_SCREENSHOT_DIR"):
        target = Path(os.environ["DEEPREL_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, target / screenshot.name)
