"""The demo: the engine restores and explains bad input; the served app answers gradio_client and a browser."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from darkir.demo import DemoEngine
from darkir.errors import DarkIRError
from darkir.examples import example_images
from darkir.imageio import Image, read_image, to_storage, write_image
from darkir.infer import Restorer
from darkir.models.factory import load_model

pytest.importorskip("gradio")


def test_examples_ship_with_the_package():
    examples = example_images()
    assert len(examples) >= 3 and all(cv2.imread(str(p)) is not None for p in examples)


def test_engine_restores_and_explains(tiny_checkpoint, tmp_path, monkeypatch):
    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    example = example_images()[0]
    result = engine.restore_image(str(example), "tiny")
    assert result.before.shape == result.after.shape == cv2.imread(str(example)).shape
    assert result.path.is_file() and "restored in" in result.summary and "whole image" in result.summary
    assert not result.tiled
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


def test_an_upload_over_the_pixel_limit_is_refused_before_it_is_decoded(tiny_checkpoint, tmp_path, monkeypatch):
    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    upload = tmp_path / "huge.png"
    cv2.imwrite(str(upload), np.zeros((60, 50), np.uint8))  # a small file; its header gives the size
    monkeypatch.setattr("darkir.demo.MAX_PIXELS", 1000)

    def decode(path):
        raise AssertionError(f"{path} was decoded")

    monkeypatch.setattr("darkir.demo.read_image", decode)
    with pytest.raises(DarkIRError, match=r"^huge\.png is 50x60; the demo accepts up to"):
        engine.restore_image(str(upload), "tiny")


def test_an_upload_over_every_pixel_limit_is_told_the_demos(tiny_checkpoint, tmp_path):
    """A header of 100000x100000 was told the library's limit ("above the limit of 1074"), not the demo's."""
    from tests.test_reliability_batches import _png_bomb

    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    upload = _png_bomb(tmp_path / "huge.png", 100_000, 100_000)
    with pytest.raises(DarkIRError, match=r"^huge\.png is 100000x100000; the demo accepts up to 24 megapixels"):
        engine.restore_image(str(upload), "tiny")


def _demo_driver():
    """scripts/demo_screenshot.py, which also makes the README's demo picture."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "demo_screenshot.py"
    spec = importlib.util.spec_from_file_location("demo_screenshot", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    with _demo_driver().serve_demo("--weights", str(tiny_checkpoint), "--device", "cpu") as url:
        yield url


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
def test_browser_clicks_an_example_and_downloads_the_result(server, tiny_checkpoint, tmp_path):
    """A first visit in headless Chromium: click a thumbnail, see the slider and timing, download the result."""
    driver = _demo_driver()
    if driver.find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; .ci/run installs it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    pytest.importorskip("playwright")
    shot = tmp_path / "demo.png"
    visit = driver.click_example(server, tmp_path / "downloads", shot, example=1)
    example = example_images()[1]
    assert visit.slider_images == 2
    assert "tiny" in visit.timing and "whole image" in visit.timing and "restored in" in visit.timing
    assert visit.download.name == f"{example.stem}_restored{example.suffix}"
    restorer = Restorer(load_model(str(tiny_checkpoint)), device="cpu")
    expected = to_storage(restorer.restore_array(read_image(example).rgb), 8)
    downloaded = cv2.cvtColor(cv2.imread(str(visit.download)), cv2.COLOR_BGR2RGB)
    assert np.abs(downloaded.astype(int) - expected.astype(int)).max() <= 1
    assert cv2.imread(str(shot)).shape[1] == 1280


def test_engine_download_keeps_format_and_bit_depth_and_says_when_tiled(tiny_checkpoint, tmp_path):
    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu", tile=64)
    rng = np.random.default_rng(0)
    deep = tmp_path / "deep.png"
    write_image(deep, Image(rgb=rng.random((150, 70, 3), dtype=np.float32) * 0.2, alpha=None, bit_depth=16,
                            grayscale=False))  # fmt: skip
    result = engine.restore_image(str(deep), "tiny")
    assert result.path.name == "deep_restored.png" and read_image(result.path).bit_depth == 16
    assert result.tiled and "tiled: 6 windows of 64 px" in result.summary
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), (rng.random((40, 50, 3)) * 60).astype(np.uint8))
    result = engine.restore_image(str(photo), "tiny")
    assert result.path.suffix == ".jpg" and cv2.imread(str(result.path)).shape == (40, 50, 3)
    assert not result.tiled


def test_an_address_that_cannot_be_served_is_named_before_models_load(capsys):
    import socket

    from darkir.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port), "--weights", "no-such-weights.pt"]) == 2
        assert f"cannot serve the demo on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err
    assert main(["demo", "--host", "256.1.1.1", "--weights", "no-such-weights.pt"]) == 2
    assert "cannot serve the demo on host '256.1.1.1'" in capsys.readouterr().err


def test_results_are_cleaned_up_by_one_request_at_a_time(tiny_checkpoint):
    """The app's listeners (restore, example, video) run at once: two requests deleting the same old results used
    to crash the later one (FileNotFoundError), losing a finished restore."""
    import os
    import tempfile
    import threading
    import time
    from pathlib import Path

    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    errors = []

    def request(barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            engine._new_result("out.png")
        except Exception as error:  # what a request would have shown
            errors.append(error)

    try:
        for _ in range(3):
            old = time.time() - 3600
            for _ in range(1500):
                result = Path(tempfile.mkdtemp(dir=engine.workdir)) / "r.png"
                result.write_bytes(b"x")
                os.utime(result, (old, old))
            barrier = threading.Barrier(3)
            threads = [threading.Thread(target=request, args=(barrier,)) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert not errors and len(list(engine.workdir.iterdir())) == 9  # only the new results' folders remain
    finally:
        engine.close()
