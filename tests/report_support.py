"""Run folders for the report tests, made with the real runner on the ``demo`` task.

The runner writes the previews the viewer shows (``RunConfig.save_previews``, on by default).

Also a headless-Chromium driver (Selenium), shared by the browser test and the README screenshot
(``python tests/report_support.py OUT_DIR`` writes ``docs/img/report.png`` from fresh demo runs).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")


def demo_run(output_dir: Path, run_name: str, *restorer_args: str) -> Path:
    """``bench run`` on the demo task (offline, no data); the runner writes the previews."""
    from typer.testing import CliRunner

    from harness.cli.main import app

    args = ["run", "--output-dir", str(output_dir), "--run-name", run_name, "--no-tracking",
            "--no-progress", *restorer_args]
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise RuntimeError(f"bench {' '.join(args)} failed:\n{result.output}\n{result.exception!r}")
    return Path(output_dir) / run_name


def chromium_binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is absent."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def open_chromium(profile_dir: Path) -> Any:
    """A headless Chromium with a fresh profile, no network chatter, console logs captured."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium_binaries()
    if found is None:
        raise FileNotFoundError("chromium / chromedriver not installed (apt-get install -y chromium "
                                "chromium-driver)")
    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def screenshot_report(html: Path, png: Path, profile_dir: Path, mode: str = "image") -> None:
    """Screenshot of the report's top: leaderboard and the first samples, zoomed 2.25× (README)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = open_chromium(profile_dir)
    try:
        driver.set_window_size(1400, 1500)
        driver.get(html.resolve().as_uri())
        viewer = driver.find_element(By.CSS_SELECTOR, ".viewer")
        for _ in range(2):
            viewer.find_element(By.CSS_SELECTOR, ".zoom-in").click()
        if mode != "image":
            Select(viewer.find_element(By.CSS_SELECTOR, ".mode")).select_by_value(mode)
        driver.execute_script("window.scrollTo(0, 0);")
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


def main(out: str) -> None:
    """Demo runs → ``bench report`` → ``docs/img/report.png``."""
    from harness.cli.report import make_report

    work = Path(out)
    first = demo_run(work, "demo-a")
    second = demo_run(work, "demo-b", "-r", "clahe", "-r", "identity")
    files = make_report([first, second], work / "report")
    with tempfile.TemporaryDirectory() as profile:
        screenshot_report(files.files["html"], REPO / "docs" / "img" / "report.png", Path(profile))
    print(files.files)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("BENCH_OFFLINE", "1")
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
