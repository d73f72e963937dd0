"""The demo: the engine restores and explains bad input; the served app answers gradio_client and a browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import pytest

from darkir.demo import TITLE, DemoEngine, example_images
from darkir.errors import DarkIRError

pytest.importorskip("gradio")


def test_examples_ship_with_the_package():
    examples = example_images()
    assert len(examples) >= 3 and all(cv2.imread(str(p)) is not None for p in examples)


def test_engine_restores_and_explains(tiny_checkpoint, tmp_path, monkeypatch):
    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    example = example_images()[0]
    before, after, saved, timing = engine.restore_image(str(example), "tiny")
    assert before.shape == after.shape == cv2.imread(str(example)).shape
    assert saved.is_file() and "restored in" in timing
    with pytest.raises(DarkIRError, match="upload an image"):
        engine.restore_image(None, "tiny")
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(DarkIRError, match=r"^junk\.png: cannot decode image"):
        engine.restore_image(str(junk), "tiny")
    with pytest.raises(DarkIRError, match="unknown variant"):
        engine.restore_image(str(example), "other")
    monkeypatch.setattr("darkir.demo.MAX_PIXELS", 1000)
    with pytest.raises(DarkIRError, match="megapixels"):
        engine.restore_image(str(example), "tiny")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "darkir.cli",
            "demo",
            "--weights",
            str(tiny_checkpoint),
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(process.stdout.read().decode())
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the demo did not start within 120 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_served_demo_restores_examples_and_survives_bad_uploads(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    example = example_images()[0]
    _, saved, timing = client.predict(handle_file(str(example)), "tiny", api_name="/restore")
    assert cv2.imread(saved).shape == cv2.imread(str(example)).shape
    assert "restored in" in timing
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(Exception, match="junk.png: cannot decode image"):
        client.predict(handle_file(str(junk)), "tiny", api_name="/restore")
    _, saved_again, _ = client.predict(handle_file(str(example_images()[1])), "tiny", api_name="/restore")
    assert cv2.imread(saved_again) is not None  # still serving


@pytest.mark.slow
def test_page_loads_in_headless_chromium(server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; .ci/run installs it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--window-size=1280,900",
    ]
    dom = subprocess.run([chromium, *flags, "--dump-dom", server], capture_output=True, text=True, timeout=180)
    assert f"<title>{TITLE}</title>" in dom.stdout
    assert "Before / after" in dom.stdout and "Restore" in dom.stdout
    shot = tmp_path / "demo.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", server], capture_output=True, timeout=180)
    assert shot.is_file() and cv2.imread(str(shot)).shape[:2] == (900, 1280)
