"""`darkir video`: frame count, frame rate, duration, resolution and audio survive restoration."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import darkir.infer.video_output
from darkir.cli import main
from darkir.errors import DarkIRError
from tests.conftest import REPO

av = pytest.importorskip("av")

RATE = Fraction(24000, 1001)


def make_video(path: Path, frames: int = 24, size: tuple[int, int] = (50, 66), audio: bool = True) -> Path:
    """Write a dark H.264 clip at 23.976 fps, optionally with a stereo AAC tone of the same length."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.height, video.width = size
        video.pix_fmt = "yuv420p"
        if audio:
            sound = container.add_stream("aac", rate=44100)
            sound.layout = "stereo"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray((rng.random((*size, 3)) * 50).astype(np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio:
            total = int(frames / RATE * 44100)
            for start in range(0, total, 1024):
                t = np.arange(start, min(start + 1024, total)) / 44100
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 44100, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def describe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        info = {
            "rate": video.average_rate,
            "size": (video.codec_context.height, video.codec_context.width),
            "duration": float(video.duration * video.time_base),
            "audio": [(s.codec_context.name, s.codec_context.sample_rate, s.frames) for s in container.streams.audio],
        }
        info["frames"] = sum(1 for _ in container.decode(video=0))
    return info


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "night.mp4")


def test_video_keeps_frames_timing_resolution_and_audio(clip, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "restored.mp4"
    assert main(["video", str(clip), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert "restored 24 frames, audio copied" in capsys.readouterr().out
    before, after = describe(clip), describe(out)
    assert after["frames"] == before["frames"] == 24
    assert after["rate"] == before["rate"] == RATE
    assert after["duration"] == pytest.approx(before["duration"], abs=1e-3)
    assert after["size"] == before["size"] == (50, 66)
    assert after["audio"] == before["audio"] and after["audio"][0][0] == "aac"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_video_without_audio_into_folder(tmp_path, tiny_checkpoint, capsys):
    silent = make_video(tmp_path / "silent.mp4", frames=5, audio=False)
    assert main(["video", str(silent), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert "audio none" in capsys.readouterr().out
    assert describe(tmp_path / "out" / "silent.mp4")["frames"] == 5


def test_existing_output_is_not_overwritten(clip, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "x.mp4"
    out.write_bytes(b"precious")
    assert main(["video", str(clip), "-o", str(out), "--weights", str(tiny_checkpoint)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such video file"),
        (b"\x00" * 64, "cannot open as a video"),
        ("folder", "is a folder; darkir video"),
        ("pipe", "in.mp4: not a file or folder (a pipe, socket or device)"),  # it was "no such video file"
    ],
)
def test_bad_video_inputs(tmp_path, tiny_checkpoint, capsys, content, message):
    source = tmp_path / "in.mp4"
    if content == "folder":
        source.mkdir()
    elif content == "pipe":
        os.mkfifo(source)
    elif content is not None:
        source.write_bytes(content)
    assert main(["video", str(source), "-o", str(tmp_path / "o.mp4"), "--weights", str(tiny_checkpoint)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_seed_inference_video_script(clip, tmp_path, tiny_checkpoint):
    options = tmp_path / "video.yml"
    options.write_text(
        "network:\n  width: 8\n  middle_blk_num_enc: 1\n  middle_blk_num_dec: 1\n  enc_blk_nums: [1, 1, 1]\n"
        f"  dec_blk_nums: [1, 1, 1]\n  use_csf: true\nsave:\n  path: {tiny_checkpoint}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(REPO / "inference_video.py"), "-p", str(options), "-i", str(clip), "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert describe(tmp_path / "videos" / "results" / "night.mp4")["frames"] == 24


def test_seed_inference_video_keeps_results_of_inputs_with_one_name_apart(clip, tmp_path, tiny_checkpoint, monkeypatch):
    # night.mp4 and night.avi both used to become videos/results/night.mp4, the second replacing the first's result.
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("seed_inference_video", REPO / "inference_video.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.chdir(tmp_path)
    other = shutil.copy(clip, tmp_path / "night.avi")
    flags = ["--weights", str(tiny_checkpoint), "-q"]
    assert script.run(["-i", str(clip), *flags]) == 0
    first = (tmp_path / "videos" / "results" / "night.mp4").read_bytes()
    assert script.run(["-i", str(other), *flags]) == 0
    assert (tmp_path / "videos" / "results" / "night.mp4").read_bytes() == first
    assert describe(tmp_path / "videos" / "results" / "night.avi.mp4")["frames"] == 24
    assert script.run(["-i", str(clip), *flags]) == 2  # a rerun replaces no file, not even its own result ...
    assert script.run(["-i", str(clip), *flags, "--overwrite"]) == 0  # ... unless asked to
    assert script.run(["-i", str(other), "-o", str(tmp_path / "out" / "result.mp4"), *flags]) == 0  # a file named
    assert describe(tmp_path / "out" / "result.mp4")["frames"] == 24
    assert script.run(["-i", str(other), "-o", str(tmp_path / "v1.2"), *flags]) == 0  # a folder, as the official -o
    assert describe(tmp_path / "v1.2" / "night.avi.mp4")["frames"] == 24
    assert script.run(["-i", str(clip), "-o", str(tmp_path / "out.avi"), *flags]) == 2  # a video suffix: refused
    assert not (tmp_path / "out.avi").exists()
    for folder in ("res.mkv/", "out.avi/"):  # ... but a name ending in / is a folder, whatever its suffix
        assert script.run(["-i", str(clip), "-o", f"{tmp_path}/{folder}", *flags]) == 0
        assert describe(tmp_path / folder / "night.mp4")["frames"] == 24
    assert main(["video", str(clip), "-o", f"{tmp_path / 'v2.0'}/", "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert describe(tmp_path / "v2.0" / "night.mp4")["frames"] == 24


# Issue 25, "Nothing lost": timing, rotation, the demo's limit and the encoder settings.
MS = Fraction(1, 1000)


@pytest.fixture(scope="module")
def tiny_restorer(tiny_checkpoint):
    from darkir.infer import Restorer
    from darkir.models.factory import load_model

    return Restorer(load_model(tiny_checkpoint), device="cpu", tile=0)


def make_timed_video(
    path: Path, times_ms: list[int], rotation: tuple[int, bool] | None = None, aspect: Fraction | None = None
) -> Path:
    """Write 64x48 H.264 frames at ``times_ms`` (time base 1/1000); ``rotation`` (degrees, hflip) sets the display
    matrix phones write, ``aspect`` the pixels' aspect ratio (an anamorphic video's)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        if aspect is not None:
            video.codec_context.sample_aspect_ratio = aspect
        video.time_base = video.codec_context.time_base = MS
        if rotation is not None:
            video.set_display_rotation(rotation[0], hflip=rotation[1])
        for index, pts in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 + index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, MS
            container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def frame_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


def display_matrix(path: Path) -> list[int] | None:
    with av.open(str(path)) as container:
        matrix = next(container.decode(video=0)).side_data.get("DISPLAYMATRIX")
    return None if matrix is None else np.frombuffer(bytes(matrix), dtype=np.int32).tolist()


@pytest.mark.parametrize(("source", "output"), [("mp4", "mp4"), ("mkv", "mkv"), ("mkv", "mov")])
def test_variable_frame_rate_keeps_every_timestamp(tmp_path, tiny_restorer, source, output):
    from darkir.infer.video import restore_video

    times = [0, 100, 150, 250]
    clip = make_timed_video(tmp_path / f"vfr.{source}", times)
    assert frame_times(clip) == [t * MS for t in times]
    restore_video(tiny_restorer, clip, tmp_path / f"out.{output}", progress=False)
    assert frame_times(tmp_path / f"out.{output}") == [t * MS for t in times]  # was 0, .08, .16, .24


def test_unevenly_spaced_frames_are_restored_with_their_times(tmp_path, tiny_restorer):
    from darkir.infer.video import restore_video

    times = [0, 10, 20, 30, 1000]  # a burst, then a second of nothing: failed, naming a temporary file
    report = restore_video(tiny_restorer, make_timed_video(tmp_path / "burst.mp4", times), tmp_path / "o.mp4")
    assert report.frames == 5 and frame_times(tmp_path / "o.mp4") == [t * MS for t in times]


@pytest.mark.parametrize("suffix", ["mp4", "mov", "mkv"])
def test_a_long_gap_among_the_last_frames_keeps_the_duration(tmp_path, tiny_restorer, suffix):
    """A frame held a second before the end (a screen recording's last frame) gave an MP4 or MOV that players and
    FFmpeg's tools read as 0.24 s long: its last sample lasted one frame from a decode time that B-frames leave two
    frames behind (found by an outside test). Matroska, which times each frame by itself, was right."""
    from darkir.infer.video import restore_video

    times = [0, 40, 80, 120, 160, 1000]
    clip = make_timed_video(tmp_path / "held.mkv", times)
    restore_video(tiny_restorer, clip, tmp_path / f"out.{suffix}", progress=False)
    assert frame_times(tmp_path / f"out.{suffix}") == [t * MS for t in times]
    with av.open(str(clip)) as source, av.open(str(tmp_path / f"out.{suffix}")) as output:
        assert source.duration > 1_000_000  # (microseconds)
        assert output.duration == pytest.approx(source.duration, abs=1000)  # it was 240_000


def make_mjpeg_with_times(path: Path, times_ms: list[int]) -> Path:
    """An MJPEG clip whose packets carry ``times_ms`` as they are (decode order kept), as a broken file does."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mjpeg", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuvj420p"
        video.time_base = video.codec_context.time_base = MS
        for index, pts in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, MS
            for packet in video.encode(frame):
                packet.pts, packet.dts = pts, index
                container.mux(packet)
    return path


def test_frames_timed_together_are_kept_one_tick_apart_with_one_warning(tmp_path, tiny_restorer):
    """Frames that a broken file times at one moment (no output can hold two frames at one time; the muxer failed
    with 'Invalid argument') are all restored, each later one a tick after the one ahead of it, with one warning."""
    from darkir.errors import DarkIRWarning
    from darkir.infer.video import restore_video

    clip = make_mjpeg_with_times(tmp_path / "twice.mkv", [0, 200, 200, 200, 300])
    with pytest.warns(
        DarkIRWarning, match=r"twice\.mkv: frame 3 is timed at 0\.200 s, as the frame ahead of it"
    ) as caught:
        report = restore_video(tiny_restorer, clip, tmp_path / "out.mkv", progress=False)
    assert sum("as the frame ahead of it" in str(w.message) for w in caught) == 1
    assert report.frames == 5 and frame_times(tmp_path / "out.mkv") == [0, 200 * MS, 201 * MS, 202 * MS, 300 * MS]


def test_a_video_failure_names_the_users_file_not_a_temporary_one(tmp_path, tiny_restorer):
    from darkir.infer.video import restore_video

    clip = make_mjpeg_with_times(tmp_path / "backwards.mkv", [0, 200, 100, 300])  # frame 3 before frame 2
    with pytest.raises(DarkIRError) as failure:
        restore_video(tiny_restorer, clip, tmp_path / "out.mp4", progress=False)
    message = str(failure.value)
    assert message.startswith(str(clip)) and "frame 3 is timed at 0.100 s" in message
    assert "darkir-part" not in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backwards.mkv"]


@pytest.mark.parametrize("failing", ["output", "input"])
def test_an_ffmpeg_failure_names_the_users_file(clip, tmp_path, tiny_restorer, monkeypatch, failing):
    from darkir.infer import video

    def fail(av, container, output, *rest):
        raise av.error.ArgumentError(22, "Invalid argument", (output if failing == "output" else container).name)

    monkeypatch.setattr(video, "_transcode", fail)
    out = tmp_path / "out.mp4"
    with pytest.raises(DarkIRError) as failure:
        video.restore_video(tiny_restorer, clip, out, progress=False)
    named = out if failing == "output" else clip
    assert str(failure.value) == f"{named}: video processing failed: Invalid argument"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("suffix", "rotation"), [("mp4", (90, False)), ("mov", (270, True)), ("mkv", (180, False))])
def test_rotation_is_kept(tmp_path, tiny_restorer, suffix, rotation):
    from darkir.infer.video import restore_video

    clip = make_timed_video(tmp_path / f"phone.{suffix}", [0, 33, 67], rotation)
    matrix = display_matrix(clip)
    assert matrix is not None and matrix != [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]  # not the identity
    restore_video(tiny_restorer, clip, tmp_path / f"out.{suffix}", progress=False)
    assert display_matrix(tmp_path / f"out.{suffix}") == matrix  # players turn (and flip) it as they do the input


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_the_pixel_aspect_ratio_of_an_anamorphic_video_is_kept(tmp_path, tiny_restorer, suffix):
    """A video of non-square pixels (4:3 pixels, shown 16:9) came out with square ones, which players show
    squeezed (found by an outside test)."""
    from darkir.infer.video import restore_video

    clip = make_timed_video(tmp_path / f"dvd.{suffix}", [0, 40, 80], aspect=Fraction(4, 3))
    restore_video(tiny_restorer, clip, tmp_path / f"out.{suffix}", progress=False)
    for path in (clip, tmp_path / f"out.{suffix}"):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.sample_aspect_ratio, stream.display_aspect_ratio) == (Fraction(4, 3), Fraction(16, 9))


def test_the_demos_limits_hold_for_a_header_that_lies_and_for_the_frames_size(tmp_path, tiny_checkpoint, monkeypatch):
    """An AVI whose header claimed 10 frames (of 400) was restored whole past the 300-frame limit, and frames of any
    size were taken where images over 24 megapixels are refused (found by an outside test of the demo)."""
    import struct

    from darkir import demo

    monkeypatch.setattr("darkir.demo.MAX_VIDEO_FRAMES", 5)
    clip = tmp_path / "lies.avi"
    with av.open(str(clip), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        for index in range(8):
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), index, np.uint8), "rgb24")))
        container.mux(video.encode())
    data = bytearray(clip.read_bytes())
    for chunk, offset in ((b"avih", 24), (b"strh", 40)):  # the total frames, and the stream's length
        at = data.find(chunk) + offset
        data[at : at + 4] = struct.pack("<I", 2)
    clip.write_bytes(bytes(data))
    with av.open(str(clip)) as container:
        assert container.streams.video[0].frames == 2
    engine = demo.DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    try:
        with pytest.raises(DarkIRError, match=r"^That clip has 8 frames; the demo restores up to 5"):
            engine.restore_video(str(clip), "tiny")
        monkeypatch.setattr("darkir.demo.MAX_PIXELS", 1000)
        with pytest.raises(DarkIRError, match=r"^lies\.avi's frame is 32x32; the demo accepts up to 0 megapixels"):
            engine.restore_video(str(clip), "tiny")
        assert not engine._restorers  # refused before the model was even loaded
    finally:
        engine.close()


def test_demo_frame_limit_holds_for_mkv(tmp_path, tiny_checkpoint, monkeypatch):
    from darkir import demo

    monkeypatch.setattr("darkir.demo.MAX_VIDEO_FRAMES", 5)
    long_clip = make_timed_video(tmp_path / "long.mkv", [100 * i for i in range(8)])
    with av.open(str(long_clip)) as container:
        assert container.streams.video[0].frames == 0  # MKV headers give no count
    engine = demo.DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    try:
        with pytest.raises(
            DarkIRError, match=r"^That clip has 8 frames; the demo restores up to 5\. Use `darkir video`"
        ):
            engine.restore_video(str(long_clip), "tiny")
        assert not engine._restorers  # refused before the model was even loaded
        target, timing = engine.restore_video(
            str(make_timed_video(tmp_path / "short.mkv", [0, 40, 80, 120, 160])), "tiny"
        )
        assert len(frame_times(target)) == 5 and "5 frames" in timing and "exposure" not in timing
        short = make_timed_video(tmp_path / "again.mkv", [0, 40])
        assert ", exposure +1 EV," in engine.restore_video(str(short), "tiny", exposure=1.0)[1]  # named, as for images
    finally:
        engine.close()


def test_unsupported_output_format_is_refused_before_the_weights_load(clip, tmp_path, capsys):
    out = tmp_path / "restored.webm"
    assert main(["video", str(clip), "-o", str(out), "--weights", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{out}: cannot write .webm videos; use .mp4, .m4v, .mov, .mkv" in err and "missing.pt" not in err
    assert err.count("\n") == 1 and not out.exists()


class NoWork:
    """A restorer that must never be asked to restore anything."""

    def restore_array(self, rgb: np.ndarray) -> np.ndarray:
        raise AssertionError("the model did work before the settings were checked")


@pytest.mark.parametrize(
    ("codec", "crf", "message"),
    [
        ("libvpx", 18, "unknown video codec 'libvpx'; use libx264 or libx265"),
        ("nonsense", 18, "unknown video codec 'nonsense'; use libx264 or libx265"),
        ("libx264", 999, "crf 999 is out of range for libx264; use 0 (lossless) to 51"),
        ("libx265", -1, "crf -1 is out of range for libx265; use 0 (lossless) to 51"),
    ],
)
def test_unknown_codec_and_bad_crf_are_refused_before_any_work(clip, tmp_path, codec, crf, message):
    from darkir.infer.video import restore_video
    from darkir.infer.video_output import check_video_encoding

    with pytest.raises(DarkIRError, match=f"^{re.escape(message)}$"):
        check_video_encoding(codec, crf)
    with pytest.raises(DarkIRError, match=f"^{re.escape(message)}$"):
        restore_video(NoWork(), clip, tmp_path / "out.mp4", codec=codec, crf=crf, progress=False)
    assert not list(tmp_path.iterdir())


# Issue 27: frames restored in batches, with decoding and encoding in their own threads.


def encoded_frames(monkeypatch) -> list[np.ndarray]:
    """The RGB arrays handed to the encoder from now on (recorded as av.VideoFrame.from_ndarray is called, which
    must be in the encoding thread)."""
    import threading

    seen: list[np.ndarray] = []
    make = av.VideoFrame.from_ndarray

    def record(array, *args, **kwargs):
        assert threading.current_thread().name == "darkir-encode"
        seen.append(array.copy())
        return make(array, *args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", record)
    return seen


def stage_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name in ("darkir-decode", "darkir-encode")]


@pytest.fixture(scope="module")
def exact_restorer(tiny_checkpoint):
    from darkir.infer import Restorer
    from darkir.models.factory import load_model

    return Restorer(load_model(tiny_checkpoint), device="cpu", precision="fp32", tile=0)


def test_video_frames_are_each_restored_as_an_image_is(clip, tmp_path, exact_restorer, monkeypatch):
    from darkir.infer.video import restore_video
    from darkir.infer.video_colour import video_colour

    with av.open(str(clip)) as container:
        inputs = [video_colour(frame, clip).to_rgb(frame) for frame in container.decode(video=0)]  # as darkir reads
    seen = encoded_frames(monkeypatch)
    report = restore_video(exact_restorer, clip, tmp_path / "out.mp4", progress=False, batch=1)
    assert report.frames == len(inputs) == len(seen) and report.audio == "copied"
    for rgb, encoded in zip(inputs, seen, strict=True):
        expected = np.rint(exact_restorer.restore_array(rgb.astype(np.float32) / 255.0) * 255.0).astype(np.uint8)
        assert np.array_equal(encoded, expected)


@pytest.mark.parametrize("batch", [2, 5])
def test_batched_video_matches_frame_by_frame(clip, tmp_path, exact_restorer, monkeypatch, batch):
    from darkir.infer.video import restore_video

    batched = encoded_frames(monkeypatch)
    restore_video(exact_restorer, clip, tmp_path / "one.mp4", progress=False, batch=1)
    one_by_one = batched.copy()
    batched.clear()
    report = restore_video(exact_restorer, clip, tmp_path / "batched.mp4", progress=False, batch=batch)
    assert report.frames == len(batched) == len(one_by_one) == 24  # 24 frames: a last, partial batch with 5
    diff = np.abs(np.stack(batched).astype(int) - np.stack(one_by_one))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999
    assert describe(tmp_path / "batched.mp4") == describe(tmp_path / "one.mp4")


def test_an_encoder_failure_stops_every_stage_and_leaves_nothing(clip, tmp_path, tiny_restorer, monkeypatch):
    from darkir.infer.video import restore_video
    from darkir.outputs import OutputError

    make, calls = av.VideoFrame.from_ndarray, []

    def full_disk(array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return make(array, *args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", full_disk)
    with pytest.raises(OutputError, match=r"out\.mp4: No space left on device; nothing replaced"):
        restore_video(tiny_restorer, clip, tmp_path / "out.mp4", progress=False, batch=2)
    assert len(calls) == 3 and not list(tmp_path.iterdir()) and not stage_threads()


def test_an_interrupt_while_restoring_stops_every_stage_and_leaves_nothing(clip, tmp_path, tiny_restorer, monkeypatch):
    from darkir.infer import video

    restore, batches = video._restore_frames, []

    def interrupted(restorer, frames):
        batches.append(len(frames))
        if len(batches) == 2:
            raise KeyboardInterrupt
        return restore(restorer, frames)

    monkeypatch.setattr(video, "_restore_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        video.restore_video(tiny_restorer, clip, tmp_path / "out.mp4", progress=False, batch=3)
    assert batches == [3, 3] and not list(tmp_path.iterdir()) and not stage_threads()


def test_frames_are_restored_one_at_a_time_by_default_even_on_cuda(clip, tmp_path, tiny_checkpoint, monkeypatch):
    """One frame at a time unless ``batch`` asks for more, whatever memory would hold: on an H200, batches of four
    ran 2.6x slower."""
    import torch

    from darkir.infer import Restorer, video
    from darkir.models.factory import load_model

    tiny_restorer = Restorer(load_model(tiny_checkpoint), device="cpu", max_memory="1000GB")

    restore, batches = video._restore_frames, []

    def counted(restorer, frames):
        batches.append(len(frames))
        return restore(tiny_restorer, frames)

    monkeypatch.setattr(video, "_restore_frames", counted)
    on_cuda = Restorer(tiny_restorer.model, device="cpu", max_memory="1000GB")
    on_cuda.device = torch.device("cuda")
    monkeypatch.setattr(video, "fixed_size_kernels", lambda device: contextlib.nullcontext())
    report = video.restore_video(on_cuda, clip, tmp_path / "out.mp4", progress=False)
    assert report.frames == len(batches) > 1 and set(batches) == {1}


def test_a_bad_batch_is_refused(clip, tmp_path, tiny_restorer, capsys):
    from darkir.infer.video import restore_video

    with pytest.raises(DarkIRError, match="batch must be at least 1 frame, got 0"):
        restore_video(tiny_restorer, clip, tmp_path / "out.mp4", batch=0)
    with pytest.raises(SystemExit) as exit_:
        main(["video", str(clip), "-o", str(tmp_path / "out.mp4"), "--batch", "0"])
    assert exit_.value.code == 2 and "--batch" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# Audio that an output format cannot hold as it is: re-encoded to AAC, not a failure blamed on the input.


def make_clip_with_audio(path: Path, codec: str, rate: int, layout: str, seconds: float = 0.5) -> Path:
    """A 64x48 clip at 24 fps with a 440 Hz tone in ``codec`` (AVI keeps only the channel count, not the order)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream(codec, rate=rate)
        sound.layout = layout
        form, channels = sound.codec_context.format, 1 if layout == "mono" else 2
        step, total = sound.codec_context.frame_size or 1024, int(seconds * rate)
        for start in range(0, total, step):
            tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(start, min(start + step, total)) / rate)
            scale, dtype = {"s16": (32767, np.int16), "s32": (2**31 - 1, np.int32)}.get(form.name[:3], (1, np.float32))
            samples = (np.stack([tone] * channels) * scale).astype(dtype)
            if not form.is_planar:
                samples = samples.T.reshape(1, -1)
            chunk = av.AudioFrame.from_ndarray(samples, format=form.name, layout=layout)
            chunk.sample_rate, chunk.pts = rate, start
            for packet in sound.encode(chunk):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
        for index in range(int(seconds * 24)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 + index, np.uint8), format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


def audio_seconds(path: Path) -> tuple[str, float]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, samples / stream.codec_context.sample_rate


@pytest.mark.parametrize(
    ("source", "codec", "rate", "layout"),
    [
        ("avi", "pcm_mulaw", 8000, "mono"),  # "1 channels": no channel order, which the AAC encoder refused
        ("avi", "pcm_s16le", 22050, "stereo"),
        ("mkv", "flac", 44100, "stereo"),
        ("mkv", "libopus", 48000, "stereo"),
        ("mkv", "aac", 44100, "stereo"),
    ],
)
@pytest.mark.parametrize("output", ["mp4", "mov", "mkv"])
def test_audio_is_copied_where_the_output_holds_it_else_re_encoded(
    tmp_path, tiny_restorer, source, codec, rate, layout, output
):
    from darkir.infer.video import restore_video
    from darkir.infer.video_output import AUDIO_COPIED, VIDEO_FORMATS

    clip = make_clip_with_audio(tmp_path / f"in.{source}", codec, rate, layout)
    before = audio_seconds(clip)
    report = restore_video(tiny_restorer, clip, tmp_path / f"out.{output}", progress=False)
    name, seconds = audio_seconds(tmp_path / f"out.{output}")
    copied = AUDIO_COPIED.get(VIDEO_FORMATS[f".{output}"])
    if copied is not None:
        assert report.audio == ("copied" if before[0] in copied else "re-encoded")
    assert name == (before[0] if report.audio == "copied" else "aac")
    padding = 0 if report.audio == "copied" else 2 * 1024 / rate  # AAC's priming and last frame, at most two frames
    assert before[1] - 0.01 <= seconds <= before[1] + padding + 0.01


def make_opus_clip(path: Path, frames: int, audio_starts: list[int]) -> Path:
    """A Matroska clip: ``frames`` 64x48 H.264 frames at 10 fps and 960-sample Opus frames (48 kHz) starting at
    ``audio_starts`` (in samples; none: an audio stream without packets)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("libopus", rate=48000)
        sound.layout = "stereo"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20, np.uint8), format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        for start in audio_starts:
            chunk = av.AudioFrame.from_ndarray(np.zeros((2, 960), np.float32), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, start
            for packet in sound.encode(chunk):
                container.mux(packet)
        if audio_starts:
            for packet in sound.encode():
                container.mux(packet)
    return path


def test_re_encoded_audio_that_starts_late_or_has_a_gap_stays_in_sync(tmp_path, tiny_restorer):
    """Opus in Matroska becomes AAC in MP4: audio from 1 s on, and a 1 s gap, keep their times (they used to move
    to the start and close up, so that the sound ran ahead of the picture)."""
    from darkir.infer.video import restore_video

    def first_and_last(path: Path) -> tuple[float, float]:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            times = [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None]
        return times[0], times[-1]

    for name, starts in (
        ("late", [48000 + 960 * i for i in range(100)]),
        ("gap", [*range(0, 48000, 960), *range(96000, 144000, 960)]),
    ):
        clip = make_opus_clip(tmp_path / f"{name}.mkv", 30, starts)
        report = restore_video(tiny_restorer, clip, tmp_path / f"{name}.mp4", progress=False)
        (first_in, last_in), (first_out, last_out) = first_and_last(clip), first_and_last(tmp_path / f"{name}.mp4")
        priming = 1024 / 48000  # AAC starts one frame early
        assert report.audio == "re-encoded"
        assert first_in - priming - 0.01 <= first_out <= first_in + 0.01, name
        assert abs(last_out - last_in) < 0.03, name


def test_audio_frames_keep_their_times_unless_they_overlap_the_frame_ahead():
    from types import SimpleNamespace

    from darkir.infer.video_timing import keep_audio_time

    def frame(pts):
        return SimpleNamespace(pts=pts, samples=960, sample_rate=48000)

    base = Fraction(1, 1000)  # Matroska's: a 960-sample frame lasts 20
    first, gap, overlap, untimed = frame(1000), frame(2000), frame(2010), frame(None)
    assert keep_audio_time(frame(None), None, base) is None
    assert keep_audio_time(first, None, base) == 1020 and first.pts == 1000  # a late start is kept
    assert keep_audio_time(gap, 1020, base) == 2020 and gap.pts == 2000  # and a gap
    assert keep_audio_time(overlap, 2020, base) == 2040 and overlap.pts == 2020  # an overlap is moved on
    assert keep_audio_time(untimed, 2040, base) == 2060 and untimed.pts == 2040


def test_an_empty_audio_stream_is_reported_as_no_audio(tmp_path, tiny_restorer):
    """A video whose audio stream holds no packets gets no audio; the report said "audio re-encoded"."""
    from darkir.infer.video import restore_video

    clip = make_opus_clip(tmp_path / "silent.mkv", 5, [])
    report = restore_video(tiny_restorer, clip, tmp_path / "out.mp4", progress=False)
    assert report.frames == 5 and report.audio == "none (the input's audio stream is empty)"
    with av.open(str(tmp_path / "out.mp4")) as output:
        assert not output.streams.audio


def test_a_video_stream_without_frames_is_an_error_not_an_audio_file(tmp_path, tiny_restorer):
    from darkir.infer.video import restore_video

    clip = tmp_path / "empty.mkv"
    with av.open(str(clip), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=44100)
        sound.layout = "stereo"
        chunk = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        chunk.sample_rate, chunk.pts = 44100, 0
        for packet in [*sound.encode(chunk), *sound.encode()]:
            container.mux(packet)
    with pytest.raises(DarkIRError, match="empty.mkv: its video stream has no frames; nothing written"):
        restore_video(tiny_restorer, clip, tmp_path / "out.mp4", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mkv"]


def test_an_output_folder_that_cannot_be_written_is_named_through_the_python_api(clip, tmp_path, tiny_restorer):
    from darkir.infer.video import restore_video
    from darkir.outputs import OutputError

    with pytest.raises(OutputError, match=r"out\.mp4: cannot write in .*missing \(No such file or directory\)"):
        restore_video(tiny_restorer, clip, tmp_path / "missing" / "out.mp4", progress=False)  # was a bare OSError
    assert not list(tmp_path.iterdir())


def _tiny_clip(path: Path) -> Path:
    """Two 9x9 frames (x265 refuses frames this small)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width = stream.height = 9
        stream.pix_fmt = "yuv444p"
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((9, 9, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    return path


def test_frames_too_small_for_the_encoder_are_refused_before_restoring(tmp_path, tiny_restorer):
    """x265 refused 9x9 frames as it opened, after the first frames were restored: "video processing failed: Invalid
    argument"."""
    from darkir.infer.video import restore_video

    clip = _tiny_clip(tmp_path / "tiny.mkv")
    with pytest.raises(DarkIRError) as failure:
        restore_video(tiny_restorer, clip, tmp_path / "out.mkv", codec="libx265", progress=False)
    assert str(failure.value) == (
        f"{clip}: its frames are 9x9; libx265 encodes frames of at least 16 pixels a side: use --codec libx264; "
        "nothing written"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mkv"]


def test_an_encoder_that_refuses_the_frames_names_the_output_and_the_encoder(tmp_path, tiny_restorer, monkeypatch):
    from darkir.infer.video import restore_video

    monkeypatch.setitem(darkir.infer.video_output.MIN_SIDE, "libx265", 1)  # not refused before: x265 refuses them
    clip = _tiny_clip(tmp_path / "tiny.mkv")
    out = tmp_path / "out.mkv"
    with pytest.raises(DarkIRError) as failure:
        restore_video(tiny_restorer, clip, out, codec="libx265", progress=False)
    assert str(failure.value) == f"{out} (libx265): video processing failed: Invalid argument"  # named the input
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mkv"]


def test_sigterm_stops_a_video_as_ctrl_c_does_and_leaves_nothing(tmp_path, tiny_checkpoint):
    """``kill`` (a batch system's time limit, ``docker stop``) removes the part file and the lock, exit status 143."""
    import signal
    import time

    source = make_video(tmp_path / "long.mp4", frames=400, size=(160, 120), audio=False)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "darkir.cli",
        "video",
        str(source),
        "-o",
        str(out),
        "--weights",
        str(tiny_checkpoint),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(out.glob(".*darkir-part*")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the video finished before it could be stopped"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "darkir: terminated" in err
    assert sorted(p.name for p in out.iterdir()) == []  # no output, no part file, no lock


def test_the_video_stage_benchmark_times_each_stage(tmp_path):
    out = tmp_path / "stages.json"
    command = [sys.executable, str(REPO / "benchmarks" / "video_stages.py"), "--size", "96x64", "--frames", "6"]
    done = subprocess.run([*command, "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    stages = report["ms_per_frame"]
    assert {"decode", "to_rgb", "from_rgb", "encode", "pipeline (a model that returns its input)"} <= set(stages)
    assert all(ms > 0 for ms in stages.values()) and report["frames"] == 6
    assert "96x64\tencode\t" in done.stdout


def test_a_video_output_that_is_a_link_to_nothing_is_refused_before_any_work(clip, tmp_path, capsys):
    """os.link refused it only once the whole video was restored, and said the output exists."""
    out = tmp_path / "out.mp4"
    out.symlink_to(tmp_path / "nowhere" / "x.mp4")
    assert main(["video", str(clip), "-o", str(out), "--weights", str(tmp_path / "missing.pt"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: the output is a link to nothing" in err and "missing.pt" not in err  # before the weights load
    assert out.is_symlink() and not out.exists()


def test_darkir_video_removes_what_a_killed_run_left_in_its_output_folder(clip, tmp_path, tiny_checkpoint):
    import socket

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".clip.{socket.gethostname()}-{int(dead.stdout)}.darkir-part.mp4"
    stale.write_bytes(b"half a video")
    assert main(["video", str(clip), "-o", str(out / "clip.mp4"), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["clip.mp4"]


def _mux_grey_frames(out: Any, video: Any, count: int, rising: bool = False) -> None:
    """Encode ``count`` 64x48 frames of level 30 (``rising``: 30, 31, ...), 0.1 s apart, into ``video`` and flush it."""
    for index in range(count):
        rgb = np.full((48, 64, 3), 30 + index * rising, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=video.pix_fmt)
        frame.pts, frame.time_base = index, Fraction(1, 10)
        out.mux(video.encode(frame))
    out.mux(video.encode())


def _avi_with_audio(path: Path, encoder: str) -> Path:
    """A 10-frame MPEG-4 AVI with one second of ``encoder`` audio, which AVI times one tick per audio frame."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream(encoder, rate=44100)
        sound.layout = "stereo"
        _mux_grey_frames(out, video, 10)
        for index in range(39):
            chunk = av.AudioFrame.from_ndarray(np.zeros((2, 1152), np.float32), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 44100, index * 1152
            out.mux(sound.encode(chunk))
        out.mux(sound.encode())
    return path


@pytest.mark.parametrize(
    ("encoder", "audio"), [("mp2", "re-encoded"), ("libmp3lame", "copied"), ("libmp3lame", "re-encoded")]
)
def test_avi_audio_in_coarse_time_is_kept(tmp_path, tiny_checkpoint, capsys, monkeypatch, encoder, audio):
    """AVI's MP3 audio is timed one tick per 1152 samples and starts with the encoder's delay: re-encoded to AAC in
    that time base, the muxer refused its timestamps and the whole video failed. MP3 (read by the "mp3float"
    decoder, which is why it was not copied) is copied into MP4, and re-encoded where it would not be."""
    if audio == "re-encoded" and encoder == "libmp3lame":
        monkeypatch.setitem(darkir.infer.video_output.AUDIO_COPIED, "mp4", {"aac"})
    source = _avi_with_audio(tmp_path / "cam.avi", encoder)
    assert main(["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert f"restored 10 frames, audio {audio}" in capsys.readouterr().out
    with av.open(str(tmp_path / "out.mp4")) as container:
        sound = container.streams.audio[0]
        seconds = sum(frame.samples for frame in container.decode(sound)) / sound.codec_context.sample_rate
    assert seconds == pytest.approx(39 * 1152 / 44100, abs=0.05)


def test_a_damaged_audio_packet_is_skipped_with_a_warning(tmp_path, tiny_checkpoint, capsys):
    """One packet that FLAC's decoder refuses stopped the whole video; it is now skipped and named."""
    clean = tmp_path / "clip.mkv"
    with av.open(str(clean), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("flac", rate=48000)
        sound.layout, sound.format = "stereo", "s16"
        _mux_grey_frames(out, video, 10)
        noise = np.random.default_rng(0)
        for index in range(12):
            samples = (noise.random((1, 2 * 4608)) * 2000 - 1000).astype(np.int16)
            chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, index * 4608
            out.mux(sound.encode(chunk))
        out.mux(sound.encode())
    with av.open(str(clean)) as container:
        start, size = [(p.pos, p.size) for p in container.demux(container.streams.audio[0]) if p.size][3]
    data = bytearray(clean.read_bytes())
    for offset in range(4, size - 2, 7):
        data[start + offset] ^= 0x5A
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    assert main(["video", str(damaged), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    captured = capsys.readouterr()
    assert "restored 10 frames, audio re-encoded" in captured.out
    assert f"{damaged}: skipped 1 audio packet(s) the decoder found damaged, the first at " in captured.err
    assert describe(out)["frames"] == 10


@pytest.mark.parametrize("damaged_frame", [4, 0])
def test_a_damaged_mjpeg_frame_is_skipped_with_a_warning(tmp_path, tiny_checkpoint, capsys, damaged_frame):
    clean = tmp_path / "cam.avi"
    with av.open(str(clean), "w") as out:
        video = out.add_stream("mjpeg", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuvj420p"
        _mux_grey_frames(out, video, 10, rising=True)
    with av.open(str(clean)) as container:
        start, size = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size][damaged_frame]
    data = bytearray(clean.read_bytes())
    data[start : start + size] = bytes(size)  # that frame's JPEG zeroed: no image in it (the first: read to probe)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    assert main(["video", str(damaged), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    captured = capsys.readouterr()
    assert "restored 9 frames" in captured.out and "skipped 1 video packet(s) the decoder found damaged" in captured.err


def test_frames_decoded_out_of_order_after_a_damaged_h264_packet_are_left_out(tmp_path, tiny_checkpoint, capsys):
    """One damaged packet in the middle of an H.264 clip with B-frames: the decoder then gives a frame timed before
    the one ahead of it, and the whole video was refused ("its timing cannot be kept"), nothing written."""
    clean = tmp_path / "clip.mp4"
    with av.open(str(clean), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt, video.options = 128, 96, "yuv420p", {"g": "5"}
        for index in range(30):
            rgb = np.zeros((96, 128, 3), np.uint8)
            rgb[..., 0] = (np.arange(128) * 2)[None, :] // 3
            rgb[..., 1] = (index * 8) % 256 // 3
            rgb[..., 2] = (np.arange(96) * 2)[:, None] // 3
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode())
    data = bytearray(clean.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 60] = bytes(60)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    assert main(["video", str(damaged), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 video packet(s) the decoder found damaged" in err and "it then gave out of order" in err
    assert describe(out)["frames"] >= 25


def _mkv_with_pcm(path: Path, channels: int) -> Path:
    """A 5-frame MKV with PCM audio of ``channels`` channels, which Matroska stores as a count without an order."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=48000)
        sound.layout = "5.1" if channels == 6 else f"{channels}c"
        _mux_grey_frames(out, video, 5)
        for index in range(5):
            samples = np.zeros((1, channels * 4800), np.int16)
            samples[0, index % channels :: channels] = 1000
            chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout=sound.layout.name)
            chunk.sample_rate, chunk.pts = 48000, index * 4800
            out.mux(sound.encode(chunk))
        out.mux(sound.encode())
    return path


@pytest.mark.parametrize(("channels", "layout"), [(6, "5.1"), (10, "stereo")])
def test_pcm_audio_that_states_only_its_channel_count_keeps_its_channels(
    tmp_path, tiny_checkpoint, capsys, channels, layout
):
    """Matroska's 6-channel PCM ("6 channels", no order) was mixed down to stereo AAC without a word; it is now
    encoded as 5.1, and only more channels than AAC holds are mixed down, with a warning."""
    source = _mkv_with_pcm(tmp_path / "six.mkv", channels)
    out = tmp_path / "out.mp4"
    assert main(["video", str(source), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.layout.name == layout
    warned = f"its audio has {channels} channels, more than AAC holds: mixed down to stereo" in capsys.readouterr().err
    assert warned == (channels > 8)


@pytest.mark.parametrize("cover_picture", [False, True], ids=["a-thumbnail-track", "cover-art"])
def test_of_several_video_streams_the_main_one_is_restored_and_named(tmp_path, tiny_checkpoint, capsys, cover_picture):
    """An MKV whose first video stream is a one-frame picture (a cover, a thumbnail track) restored that frame alone
    and said nothing; FFmpeg's best stream (the video) is restored now, and a warning names it."""
    source = tmp_path / ("two.mp4" if cover_picture else "two.mkv")  # Matroska keeps no cover stream
    with av.open(str(source), "w") as out:
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 24, "yuvj420p"
        if cover_picture:  # marked as such: an album or film cover, no video of its own (no warning)
            cover.disposition = av.stream.Disposition.attached_pic
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 200, np.uint8), format="rgb24")
        out.mux(cover.encode(picture.reformat(format="yuvj420p")))
        out.mux(cover.encode())
        _mux_grey_frames(out, video, 10)
    out = tmp_path / "out.mp4"
    assert main(["video", str(source), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    captured = capsys.readouterr()
    assert "restored 10 frames" in captured.out
    if cover_picture:
        assert "video streams" not in captured.err
    else:
        assert f"{source}: has 2 video streams; restored stream 1 (64x48) alone" in captured.err
    assert describe(out)["size"] == (48, 64)


def test_audio_with_a_cover_picture_is_refused_as_having_no_video(tmp_path, tiny_checkpoint, capsys):
    """An audio file with cover art (its one video stream an attached picture) was restored as a one-frame video."""
    source = tmp_path / "song.mp4"
    with av.open(str(source), "w") as out:
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 24, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        sound = out.add_stream("aac", rate=44100)
        picture = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 200, np.uint8), format="rgb24")
        out.mux(cover.encode(picture.reformat(format="yuvj420p")))
        out.mux(cover.encode())
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        samples.sample_rate = 44100
        out.mux(sound.encode(samples))
        out.mux(sound.encode())
    args = ["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_checkpoint), "-q"]
    assert main(args) == 2
    assert f"{source}: has no video stream (only a cover picture, which is not restored)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.mp4"]


def test_a_file_that_is_no_video_is_named_so_not_the_encoder(tmp_path, tiny_checkpoint, capsys):
    """FFmpeg opens a text file named .png as an image stream with no frame to decode; the output's encoder then
    failed at a size of 0 and was blamed: "out.mp4 (libx264): video processing failed: Invalid argument"."""
    source = tmp_path / "text.png"
    source.write_text("hello")
    assert main(["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_checkpoint), "-q"]) == 2
    assert f"{source}: its video stream has no frames; nothing written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.png"]


def test_a_one_frame_video_is_reported_as_one_frame(tmp_path, tiny_checkpoint, capsys):
    source = make_video(tmp_path / "one.mp4", frames=1, audio=False)
    assert main(["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert "restored 1 frame, audio none" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif"])
def test_a_still_image_is_refused_not_written_as_a_one_frame_video(tmp_path, tiny_checkpoint, capsys, suffix):
    """FFmpeg reads a photo as a stream of one picture: `darkir video photo.png -o out.mp4` wrote a one-frame MP4."""
    source = tmp_path / f"photo{suffix}"
    Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(source)
    assert main(["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_checkpoint), "-q"]) == 2
    assert f"{source}: is a still image" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]


def test_an_animated_webp_is_named_as_such(tmp_path, tiny_checkpoint, capsys):
    """FFmpeg decodes no frame of an animated WebP: it was "a video stream without frames"."""
    source = tmp_path / "anim.webp"
    frames = [Image.fromarray(np.full((16, 16, 3), level, np.uint8)) for level in (40, 80, 120)]
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100)
    assert main(["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_checkpoint), "-q"]) == 2
    assert f"{source}: an animated WebP, whose frames FFmpeg cannot decode" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]


def test_subtitle_streams_left_out_are_named(tmp_path, tiny_checkpoint, capsys):
    """A film's subtitle streams were dropped without a word."""
    source = tmp_path / "film.mkv"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        tracks = [out.add_stream("ass"), out.add_stream("ass")]
        tracks[0].metadata["language"] = "spa"
        _mux_grey_frames(out, video, 5)
        for track in tracks:
            packet = av.Packet(b"Dialogue: 0,0:00:00.00,0:00:00.40,Default,,0,0,0,,hola")
            packet.stream, packet.pts, packet.dts, packet.duration = track, 0, 0, 400
            out.mux(packet)
    target = tmp_path / "out.mkv"
    assert main(["video", str(source), "-o", str(target), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert f"{source}: its subtitles are not kept; 2 stream(s) left out (spa, #2)" in capsys.readouterr().err
    with av.open(str(target)) as restored:
        assert [stream.type for stream in restored.streams] == ["video"]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_tags_and_languages_are_kept_and_audio_streams_left_out_are_named(tmp_path, tiny_checkpoint, capsys, suffix):
    """A phone's or a film's tags (title, creation time, place) and its streams' languages were dropped, and of
    several audio streams all but the first went without a word."""
    source = tmp_path / f"tagged{suffix}"
    with av.open(str(source), "w") as out:
        out.metadata.update({"title": "Holiday", "creation_time": "2024-05-01T10:00:00.000000Z"})
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.metadata["language"] = "deu"
        tracks = []
        for language in ("eng", "fra"):
            track = out.add_stream("aac", rate=8000)
            track.layout, track.metadata["language"] = "mono", language
            tracks.append(track)
        _mux_grey_frames(out, video, 10)
        for track in tracks:
            for index in range(8):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 8000, index * 1024
                out.mux(track.encode(frame))
            out.mux(track.encode())
    target = tmp_path / f"out{suffix}"
    assert main(["video", str(source), "-o", str(target), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert f"{source}: only its first audio stream is kept; 1 other(s) left out (fra)" in capsys.readouterr().err
    with av.open(str(target)) as restored:
        assert restored.metadata["title"] == "Holiday"
        assert restored.metadata["creation_time"].startswith("2024-05-01T10:00:00")
        assert [stream.metadata.get("language") for stream in restored.streams] == ["deu", "eng"]


def _mjpeg_with_exif(path: Path, frames: int = 5) -> Path:
    """An AVI of JPEG frames that carry EXIF, as still cameras' movie modes write (FFmpeg gives each frame EXIF side
    data, a kind PyAV 18 cannot name)."""
    import io
    from fractions import Fraction

    from PIL import Image as PILImage

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for index in range(frames):
            image = PILImage.fromarray(np.full((48, 64, 3), 10 + index, np.uint8))
            exif = image.getexif()
            exif[0x010F] = "Cam"
            data = io.BytesIO()
            image.save(data, "JPEG", exif=exif)
            packet = av.Packet(data.getvalue())
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, index, index, Fraction(1, 10)
            out.mux(packet)
    return path


def test_a_cameras_mjpeg_with_exif_in_its_frames_is_restored(tmp_path, tiny_checkpoint, capsys):
    """Listing such a frame's side data raised ``31 is not a valid Type``: the video could not be restored at all."""
    source = _mjpeg_with_exif(tmp_path / "cam.avi")
    assert main(["video", str(source), "-o", str(tmp_path / "out.mp4"), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert "restored 5 frames" in capsys.readouterr().out and describe(tmp_path / "out.mp4")["frames"] == 5


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_rotation_read_without_the_side_data_makes_the_matrix_players_read_as_it(tmp_path, rotation):
    from darkir.infer.video_input import _display_matrix

    class Frame:  # a frame whose side data PyAV cannot list
        @property
        def side_data(self) -> None:
            raise ValueError("31 is not a valid Type")

    frame = Frame()
    frame.rotation = rotation
    clip = tmp_path / "turned.mp4"
    with av.open(str(clip), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.set_display_matrix(_display_matrix(frame))
        _mux_grey_frames(out, video, 2)
    with av.open(str(clip)) as container:
        assert (next(container.decode(video=0)).rotation - rotation) % 360 == 0  # (-180 is 180)


def test_a_video_whose_frames_fit_no_memory_plan_is_refused_before_any_frame_is_restored(
    clip, tmp_path, tiny_checkpoint, monkeypatch
):
    """An image too large for the budget is refused from its header; a video's frames were converted to float and
    restored until memory ran out (a MemoryError, or far past the budget). The first frame's size is planned first."""
    from darkir.infer import Restorer
    from darkir.infer.video import restore_video
    from darkir.models.factory import load_model

    restorer = Restorer(load_model(tiny_checkpoint), device="cpu")

    def no_plan(height, width, batch=1, held=None):
        raise DarkIRError(f"a {width}x{height} image does not fit the default budget")

    restored = []
    monkeypatch.setattr(restorer, "plan_for", no_plan)
    monkeypatch.setattr(restorer, "restore_levels", lambda frames: restored.append(frames) or frames)
    with pytest.raises(DarkIRError, match=r"night\.mp4: its frames: a 66x50 image does not fit .*; nothing written"):
        restore_video(restorer, clip, tmp_path / "out.mp4", progress=False)
    assert not restored and sorted(tmp_path.iterdir()) == []


def test_format_given_for_a_folder_with_videos_says_the_videos_keep_their_container(
    clip, tmp_path, capsys, monkeypatch
):
    """``restore clip.mp4 --format png`` wrote clip.mp4 without a word: --format converts images only."""

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # (the run stops once the notes are out)

    monkeypatch.setattr("darkir.cli.restore.restorer_from_args", stop)
    assert main(["restore", str(clip), "-o", str(tmp_path / "out"), "--format", "png", "-q"]) == 130
    assert "darkir: note: --format applies to images; 1 video(s) keep their container" in capsys.readouterr().err


def test_a_video_restore_without_pyav_names_the_video(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    """Without PyAV, each video of a folder failed as "darkir: failed: video support needs PyAV ...", naming none."""
    import darkir.infer.video

    def no_pyav() -> None:
        raise DarkIRError("video support needs PyAV: pip install 'darkir[video]'")

    (tmp_path / "in").mkdir()
    clip = make_video(tmp_path / "in" / "clip.mp4", frames=2, audio=False)
    monkeypatch.setattr(darkir.infer.video, "pyav", no_pyav)
    out = tmp_path / "out"
    assert main(["restore", str(tmp_path / "in"), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 1
    assert f"darkir: failed: {clip}: video support needs PyAV: pip install 'darkir[video]'" in capsys.readouterr().err
