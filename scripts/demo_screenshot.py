"""Drive the demo in headless Chromium as a first-time user would: open it, click an example, wait for the result.

    python scripts/demo_screenshot.py docs/demo.jpg [--url URL] [--example N]

Without ``--url`` it serves ``darkir demo`` (the default weights, CPU) on a free port for the duration. It clicks
example thumbnail N, waits until the before/after slider shows the result and its timing line, downloads the
full-resolution result, and saves a screenshot of the page (the README's demo picture is made this way; the browser
test calls :func:`click_example`). Needs ``pip install playwright`` and a Chromium (Debian: ``apt-get install
chromium``; Playwright's own browser download is not used).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class DemoVisit:
    """What a visit saw: the timing line, how many images the slider showed, and the downloaded result."""

    timing: str
    slider_images: int
    download: Path


def find_chromium() -> str | None:
    """The system Chromium's path, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_demo(*extra: str, timeout: float = 180) -> Iterator[str]:
    """Run ``darkir demo`` (with ``extra`` arguments) on a free port; yields its URL, stops it afterwards."""
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "darkir", "demo", "--port", str(port), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"the demo exited: {process.stdout.read().decode()}") from None
                if time.time() > deadline:
                    raise RuntimeError(f"the demo did not start within {timeout:.0f} s") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def click_example(
    url: str, downloads: Path, screenshot: Path | None = None, example: int = 0, timeout_s: float = 300
) -> DemoVisit:
    """Open the demo, click example thumbnail ``example``, wait for the result; download it (and screenshot)."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 960})
            page.goto(url, wait_until="networkidle")
            page.locator("#examples img").nth(example).click()
            page.wait_for_function(
                "document.querySelector('#timing')?.innerText.includes('restored in')", timeout=timeout_s * 1000
            )
            page.locator("#slider img").last.wait_for(timeout=timeout_s * 1000)
            visit_timing = page.locator("#timing").inner_text()
            slider_images = page.locator("#slider img").count()
            with page.expect_download() as download:
                page.locator("#download a").first.click()
            downloads.mkdir(parents=True, exist_ok=True)
            saved = downloads / download.value.suggested_filename
            download.value.save_as(saved)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                if screenshot.suffix.lower() in (".jpg", ".jpeg"):
                    page.screenshot(path=str(screenshot), full_page=True, type="jpeg", quality=85)
                else:
                    page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return DemoVisit(visit_timing.strip(), slider_images, saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("screenshot", type=Path, help="where the page's screenshot goes (.jpg or .png)")
    parser.add_argument("--url", help="a running demo (default: serve one with the default weights on the CPU)")
    parser.add_argument("--example", type=int, default=0, help="which example thumbnail to click (from 0)")
    args = parser.parse_args()
    downloads = args.screenshot.parent / ".demo-downloads"
    if args.url:
        visit = click_example(args.url, downloads, args.screenshot, args.example)
    else:
        with serve_demo("--device", "cpu") as url:
            visit = click_example(url, downloads, args.screenshot, args.example)
    shutil.rmtree(downloads, ignore_errors=True)
    print(f"{visit.timing}\n-> {args.screenshot}")


if __name__ == "__main__":
    main()
