"""The gradio demo: upload or pick a dark photo, choose DarkIR or DarkIR+CSF, compare with a slider."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkir.errors import DarkIRError
from darkir.examples import example_images
from darkir.image_header import read_header
from darkir.imageio import read_image, to_storage, write_image
from darkir.infer import Restorer
from darkir.infer.exposure import MAX_EV
from darkir.outputs import pid_alive
from darkir.runtime import memory_returned_to_os
from darkir.signals import handled, stopping_signals

TITLE = "darkir: low-light image restoration"
#: Uploads with more pixels than this are refused with a message (tiling keeps memory bounded below it).
MAX_PIXELS = 24_000_000
MAX_VIDEO_FRAMES = 300
#: Results older than this (seconds) are deleted from the demo's folder and from gradio's cache.
KEEP_RESULTS_S = 900
#: Images with more pixels than this run with memory given back to the OS afterwards.
LARGE_PIXELS = 4_000_000


#: The demo's result folders are ``<temp>/darkir-demo-<pid>-<random>``: the pid says whether their owner still runs.
WORKDIR_PREFIX = "darkir-demo-"
#: The folder of gradio's copies of the uploads and results (its ``GRADIO_TEMP_DIR``), named the same way.
GRADIO_PREFIX = "darkir-gradio-"


def remove_stale_workdirs() -> list[Path]:
    """Delete the result folders (and gradio's) of demos that were killed (their process is gone, and no process
    holds the folder: a demo in another PID namespace sharing the temporary folder, a container's, seems gone, and
    lost its live folders so); returns what went."""
    removed = []
    for prefix in (WORKDIR_PREFIX, GRADIO_PREFIX):
        for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
            pid = folder.name.removeprefix(prefix).split("-", 1)[0]
            if folder.is_dir() and pid.isdigit() and not pid_alive(int(pid)) and _remove_unheld(folder):
                removed.append(folder)
    return removed


def _remove_unheld(folder: Path) -> bool:
    """Remove ``folder`` unless a process holds it (:class:`_HeldFolder`), holding it meanwhile; whether it went."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        shutil.rmtree(folder, ignore_errors=True)
        return True
    finally:
        os.close(fd)


class _HeldFolder:
    """A new folder in the temporary folder named ``<prefix><pid>-<random>``, held (an ``flock`` on it, which dies
    with the process, seen from any PID namespace) until :meth:`cleanup` deletes it."""

    def __init__(self, prefix: str) -> None:
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
        except OSError as exc:  # (none of $TMPDIR, /tmp, /var/tmp, /usr/tmp and the working folder takes files)
            why = exc.strerror or exc
            raise DarkIRError(
                f"the demo keeps its results in the temporary folder, and found none it can write in ({why}): set "
                "TMPDIR to a writable folder"
            ) from None
        self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def cleanup(self) -> None:
        """Delete the folder and let go of it (nothing if done already)."""
        if self._fd is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def _gradio_files() -> Iterator[None]:
    """Have gradio keep its copies of uploads and results in a folder of this demo's, deleted when it stops (they
    stayed in ``<temp>/gradio``); a ``GRADIO_TEMP_DIR`` the user set is left as it is."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        yield
        return
    folder = _HeldFolder(GRADIO_PREFIX)
    os.environ["GRADIO_TEMP_DIR"] = str(folder.path)
    try:
        yield
    finally:
        del os.environ["GRADIO_TEMP_DIR"]
        folder.cleanup()


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[list[int]]:
    """While inside, Ctrl-C, SIGTERM and SIGHUP (:func:`~darkir.signals.stopping_signals`) stop the demo as Ctrl-C
    does (gradio closes its server on a KeyboardInterrupt and returns), so that its results are deleted on the way
    out; the list yielded receives the signal that stopped it. A signal ignored (a demo started in the background
    ignores Ctrl-C) stays ignored; the handlers before come back after."""
    stopped: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopped.append(signum)
        raise KeyboardInterrupt

    with handled((signal.SIGINT, *stopping_signals()), stop):
        yield stopped


def _check_size(name: str, width: int, height: int) -> None:
    """Refuse an image over :data:`MAX_PIXELS`, naming it as uploaded."""
    if width * height > MAX_PIXELS:
        raise DarkIRError(
            f"{name} is {width}x{height}; the demo accepts up to {MAX_PIXELS / 1e6:.0f} megapixels "
            "(use `darkir restore` for larger images)."
        )


@dataclass
class DemoResult:
    """One restored image: 8-bit RGB before/after for the slider, the full-resolution file, and what happened."""

    before: np.ndarray
    after: np.ndarray
    path: Path
    summary: str
    seconds: float
    tiled: bool


class DemoEngine:
    """Loads each variant's model once (all of them with :meth:`load_all`, else each on first use), and restores
    images and short videos with it."""

    def __init__(self, weights: Mapping[str, str], device: str = "auto", tile: int | str | None = None) -> None:
        if not weights:
            raise DarkIRError("the demo needs weights: none ship with this version; give it a checkpoint")
        self.weights = dict(weights)
        self.device, self.tile = device, tile
        self._restorers: dict[str, Restorer] = {}
        self._results_lock = threading.Lock()  # the app's event listeners run at once: one cleanup at a time
        remove_stale_workdirs()
        self._workdir = _HeldFolder(WORKDIR_PREFIX)
        self.workdir = self._workdir.path

    def close(self) -> None:
        """Delete every result this engine wrote (called at shutdown)."""
        self._workdir.cleanup()

    def _new_result(self, name: str) -> Path:
        """A fresh path for a result, after deleting results older than :data:`KEEP_RESULTS_S`."""
        now = time.time()
        with self._results_lock:
            for old in self.workdir.glob("*/*"):
                with contextlib.suppress(FileNotFoundError):  # gone meanwhile (a temp cleaner)
                    if now - old.stat().st_mtime > KEEP_RESULTS_S:
                        old.unlink()
                        with contextlib.suppress(OSError):
                            old.parent.rmdir()
            return Path(tempfile.mkdtemp(dir=self.workdir)) / name

    @property
    def variants(self) -> list[str]:
        return list(self.weights)

    @property
    def default_variant(self) -> str:
        """The variant chosen at first: the one serving the default weights, else the last."""
        from darkir.models import zoo

        return next(
            (name for name, weights in self.weights.items() if weights == zoo.DEFAULT_WEIGHTS), self.variants[-1]
        )

    def restorer(self, variant: str) -> Restorer:
        """The (cached) Restorer of ``variant``."""
        from darkir.infer.defaults import DEFAULT_TILE
        from darkir.models import create_model

        if variant not in self.weights:
            raise DarkIRError(f"unknown variant {variant!r}; choose one of {', '.join(self.weights)}")
        if variant not in self._restorers:
            tile = DEFAULT_TILE if self.tile is None else self.tile
            model = create_model(self.weights[variant], require_weights=True)
            self._restorers[variant] = Restorer(model, device=self.device, tile=tile)
        return self._restorers[variant]

    def load_all(self) -> None:
        """Load every variant's model now: weights that are missing or no DarkIR checkpoint raise here."""
        for variant in self.variants:
            self.restorer(variant)

    def restore_image(self, path: str | None, variant: str, exposure: float = 0.0) -> DemoResult:
        """Restore an uploaded or example image, ``exposure`` EV brighter or darker than the model's output; the
        download keeps its format and bit depth."""
        if not path:
            raise DarkIRError("Please upload an image or pick an example first.")
        name = Path(path).name
        header = read_header(Path(path))
        if header is not None:
            _check_size(name, header.width, header.height)  # before decoding: a small file may hold a huge image
        try:
            image = read_image(path)
        except DarkIRError as exc:  # name the upload, not the server's temporary path
            raise DarkIRError(str(exc).replace(str(path), name)) from None
        height, width = image.rgb.shape[:2]
        _check_size(name, width, height)
        before = to_storage(image.rgb, 8)
        restorer = self.restorer(variant).with_exposure(exposure)
        tiles = restorer.tiles_for(height, width)
        start = time.perf_counter()
        large = height * width > LARGE_PIXELS and restorer.device.type == "cpu"
        with memory_returned_to_os() if large else contextlib.nullcontext():
            image.rgb = restorer.restore_array(image.rgb)
        seconds = time.perf_counter() - start
        target = self._new_result(f"{Path(path).stem}_restored{Path(path).suffix.lower()}")
        write_image(target, image)
        how = "whole image" if tiles == 1 else f"tiled: {tiles} windows of {restorer.plan_for(height, width).tile} px"
        ev = f" · exposure {exposure:+g} EV" if exposure else ""
        summary = f"**{variant}** · {width}x{height} · {how}{ev} · restored in {seconds:.2f} s on {restorer.device}"
        return DemoResult(before, to_storage(image.rgb, 8), target, summary, seconds, tiles > 1)

    def restore_video(
        self, path: str | None, variant: str, progress: bool = False, exposure: float = 0.0
    ) -> tuple[Path, str]:
        """Restore a short clip (``exposure`` as for images); refuses clips longer than :data:`MAX_VIDEO_FRAMES`,
        counted before any work by their packets (MKV and WebM headers have no count, an AVI's may lie), and frames
        over :data:`MAX_PIXELS`, as images are."""
        from darkir.infer.video import restore_video
        from darkir.infer.video_input import count_frames, frame_size

        if not path:
            raise DarkIRError("Please upload a video first.")
        try:
            _check_size(f"{Path(path).name}'s frame", *frame_size(path))
            frames = count_frames(path, header=False)
            if frames > MAX_VIDEO_FRAMES:
                raise DarkIRError(
                    f"That clip has {frames} frames; the demo restores up to {MAX_VIDEO_FRAMES}. Use `darkir video`."
                )
            target = self._new_result(f"{Path(path).stem}_restored.mp4")
            start = time.perf_counter()
            report = restore_video(self.restorer(variant).with_exposure(exposure), path, target, progress=progress)
        except DarkIRError as exc:  # name the upload, not the server's temporary path
            raise DarkIRError(str(exc).replace(str(path), Path(path).name)) from None
        ev = f", exposure {exposure:+g} EV" if exposure else ""
        seconds = time.perf_counter() - start
        summary = f"{variant}: {report.frames} frames in {seconds:.1f} s{ev}, audio {report.audio}"
        if report.pixel_format.startswith("yuv444p"):
            summary += (
                f". The clip has an odd side, so the result's colour is 4:4:4 ({report.pixel_format}), which browsers "
                "cannot play: download it, or crop the clip to even sides"
            )
        return target, summary


def build_app(engine: DemoEngine) -> Any:
    """The gradio Blocks app over ``engine``."""
    import gradio as gr

    with gr.Blocks(title=TITLE, delete_cache=(KEEP_RESULTS_S, KEEP_RESULTS_S)) as app:
        gr.Markdown(
            f"# {TITLE}\nRestore dark, noisy, blurry photos with DarkIR (CVPR 2025) or DarkIR + Cross-Scale Fusion. "
            "Click an example, or upload a photo and press Restore."
        )
        with gr.Row():
            variant = gr.Radio(engine.variants, value=engine.default_variant, label="Model")
            exposure = gr.Slider(
                -MAX_EV,
                MAX_EV,
                value=0,
                step=0.25,
                label="Exposure (EV): 0 is the model's choice, -1 half as bright, +1 about twice",
                elem_id="exposure",
            )
        with gr.Tab("Image"):
            _image_tab(engine, variant, exposure)
        with gr.Tab("Video"):
            _video_tab(engine, variant, exposure)
    return app.queue(default_concurrency_limit=1)


def _image_tab(engine: DemoEngine, variant: Any, exposure: Any) -> None:
    """The examples, the upload, the before/after slider, the timing and the full-resolution download."""
    import gradio as gr

    examples = example_images()

    def on_image(
        path: str | None, variant: str, exposure: float = 0.0
    ) -> tuple[tuple[np.ndarray, np.ndarray], str, str]:
        try:
            result = engine.restore_image(path, variant, exposure)
        except DarkIRError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return (result.before, result.after), str(result.path), result.summary

    def on_example(variant: str, exposure: float, event: Any) -> tuple[str, tuple[np.ndarray, np.ndarray], str, str]:
        path = str(examples[event.index])
        return (path, *on_image(path, variant, exposure))

    # gradio passes the clicked thumbnail to a parameter annotated SelectData, resolved at run time (gradio is an
    # optional import, so the annotation cannot be written in the signature under postponed evaluation).
    on_example.__annotations__["event"] = gr.SelectData

    gallery = gr.Gallery(
        [(str(p), p.stem) for p in examples],
        label="Examples: click one to restore it",
        columns=len(examples),
        height=170,
        object_fit="cover",
        allow_preview=False,
        elem_id="examples",
    )
    with gr.Row():
        with gr.Column(scale=2):
            # A file input: darkir decodes it, so 16-bit, EXIF and bad files are handled (and explained).
            source = gr.File(label="Low-light photo (PNG, JPEG, TIFF, WebP, BMP)", type="filepath")
            run = gr.Button("Restore", variant="primary")
        with gr.Column(scale=3):
            compare = gr.ImageSlider(label="Before / after", type="numpy", elem_id="slider")
            timing = gr.Markdown(elem_id="timing")
            download = gr.File(label="Restored image (full resolution, the input's format)", elem_id="download")
    run.click(on_image, inputs=[source, variant, exposure], outputs=[compare, download, timing], api_name="restore")
    gallery.select(on_example, inputs=[variant, exposure], outputs=[source, compare, download, timing])


def _video_tab(engine: DemoEngine, variant: Any, exposure: Any) -> None:
    """A short clip in, the restored clip and its timing out."""
    import gradio as gr

    video_progress = gr.Progress(track_tqdm=True)  # gradio shows restore_video's progress bar in the page

    def on_video(
        path: str | None, variant: str, exposure: float = 0.0, progress: Any = video_progress
    ) -> tuple[str, str]:
        try:
            target, timing = engine.restore_video(path, variant, progress=True, exposure=exposure)
        except DarkIRError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return str(target), timing

    with gr.Row():
        clip = gr.Video(label=f"Short clip (up to {MAX_VIDEO_FRAMES} frames)", sources=["upload"])
        restored_clip = gr.Video(label="Restored")
    run_video = gr.Button("Restore video")
    video_timing = gr.Markdown()
    run_video.click(
        on_video,
        inputs=[clip, variant, exposure],
        outputs=[restored_clip, video_timing],
        api_name="restore_video",
    )


def default_weights() -> dict[str, str]:
    """Variant label -> packaged weights name, for the variants that ship weights."""
    from darkir.models import get_spec, list_models

    labels = {}
    for name in list_models("*-synth", pretrained=True):
        labels["DarkIR+CSF" if get_spec(name).config["use_csf"] else "DarkIR"] = name
    return dict(sorted(labels.items()))


def check_address(host: str, port: int) -> None:
    """Refuse, before any model loads, a ``host`` that does not resolve or a ``port`` that cannot be served on (in
    use, or reserved), naming the reason (gradio's own errors name neither)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise DarkIRError(f"cannot serve the demo on host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise DarkIRError(
                f"cannot serve the demo on {host}:{port}: {exc.strerror or exc}; choose another port or host"
            ) from None


def launch(
    weights: str | None = None, host: str = "127.0.0.1", port: int = 7860, share: bool = False, device: str = "auto"
) -> int | None:
    """Serve the demo (blocks until stopped; Ctrl-C, SIGTERM or SIGHUP stop it and delete its results) and return
    the signal that stopped it (None where none did). The models are loaded first, so that weights that are missing
    or no DarkIR checkpoint raise before anything is served."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise DarkIRError("the demo needs gradio, which is not installed: pip install 'darkir[demo]'")

    check_address(host, port)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    engine = DemoEngine({Path(weights).stem: weights} if weights else default_weights(), device=device)
    with _stopped_by_signals() as stopped:
        try:
            engine.load_all()
            with _gradio_files():
                build_app(engine).launch(server_name=host, server_port=port, share=share, show_error=True)
        finally:
            engine.close()
    return stopped[0] if stopped else None
