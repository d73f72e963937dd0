"""`darkir video` on inputs off the beaten track: raw H.264/HEVC streams without timestamps, a resolution that changes
midway, truncated files, an output path that is a folder, and x265's own log under ``-q``."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from darkir.cli import main
from darkir.errors import DarkIRWarning

av = pytest.importorskip("av")


def encode(
    path: Path,
    frames: int = 10,
    size: tuple[int, int] = (48, 64),
    rate: int = 10,
    form: str | None = None,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> Path:
    """Write ``frames`` dark (height, width) ``size`` frames at ``rate`` fps; ``form`` 'h264' or 'hevc': a raw
    elementary stream, as dashcams and cameras write (no container, no timestamps)."""
    with av.open(str(path), "w", format=form, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error"}
        for index in range(frames):
            rgb = (np.random.default_rng(index).random((*size, 3)) * 60).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def timing(path: Path) -> dict[str, object]:
    """The decoded frames' times (s) and sizes, the stream's average rate and duration (s)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return {
            "times": [frame.pts * frame.time_base for frame in frames],
            "sizes": {(frame.width, frame.height) for frame in frames},
            "rate": stream.average_rate,
            "duration": float(stream.duration * stream.time_base) if stream.duration else None,
        }


def video(source: Path, target: Path, weights: Path, *extra: str) -> int:
    return main(["video", str(source), "-o", str(target), "--weights", str(weights), "-q", *extra])


@pytest.mark.parametrize(
    ("form", "codec", "rate", "output"),
    [("h264", "libx264", 10, "mp4"), ("h264", "libx264", 30, "mkv"), ("hevc", "libx265", 10, "mov")],
)
def test_a_raw_stream_is_timed_at_the_rate_it_states(tmp_path, tiny_checkpoint, capsys, form, codec, rate, output):
    raw = encode(tmp_path / f"cam.{form}", rate=rate, form=form, codec=codec)
    with av.open(str(raw)) as container:  # no timestamps; FFmpeg's raw demuxer says 25 fps whatever the stream says
        assert all(frame.pts is None for frame in container.decode(video=0))
    out = tmp_path / f"cam.{output}"
    assert video(raw, out, tiny_checkpoint) == 0
    captured = capsys.readouterr()
    assert "restored 10 frames" in captured.out and captured.err == ""
    after = timing(out)
    times = [float(time) for time in after["times"]]  # Matroska keeps milliseconds
    assert times == pytest.approx([index / rate for index in range(10)], abs=1e-3)  # was 0, 1, 2, ... at 1/1200000
    assert after["rate"] == rate and after["sizes"] == {(64, 48)}
    if after["duration"] is not None:
        assert after["duration"] == pytest.approx(10 / rate, abs=1e-3)  # was 0.04 s


def test_restore_takes_raw_streams_in_folders(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "camera"
    folder.mkdir()
    encode(folder / "clip.h264", form="h264")
    out = tmp_path / "out"
    assert main(["restore", str(folder), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert [float(time) for time in timing(out / "clip.mp4")["times"]] == pytest.approx([i / 10 for i in range(10)])


def test_restore_counts_a_video_s_frames_in_a_bar_of_its_own(tmp_path, tiny_checkpoint, capsys):
    """A folder's video showed only the bar of files (0/2 for as long as the video took), never its frames."""
    folder = tmp_path / "camera"
    folder.mkdir()
    encode(folder / "clip.mp4", frames=7)
    encode(folder / "other.mp4", frames=3)
    assert main(["restore", str(folder), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)]) == 0
    err = capsys.readouterr().err
    assert "restoring video:" in err and "0/7 [" in err and "0/3 [" in err and "2/2 [" in err
    assert main(["restore", str(folder), "-o", str(tmp_path / "q"), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert "restoring video" not in capsys.readouterr().err


def test_a_stream_without_a_stated_rate_is_timed_at_the_default_with_a_warning():
    from darkir.infer.video_timing import DEFAULT_RATE, stated_rate

    unstated = SimpleNamespace(codec_context=SimpleNamespace(framerate=None), guessed_rate=None)
    with pytest.warns(DarkIRWarning, match=r"^clips/cam\.h264: has no timestamps and states no frame rate; restored"):
        assert stated_rate(Path("clips/cam.h264"), unstated) == DEFAULT_RATE == 25
    absurd = SimpleNamespace(codec_context=SimpleNamespace(framerate=Fraction(90000)), guessed_rate=Fraction(24))
    with pytest.warns(DarkIRWarning, match="restored at 24 fps"):
        assert stated_rate(Path("cam.h264"), absurd) == 24
    stated = SimpleNamespace(codec_context=SimpleNamespace(framerate=Fraction(30000, 1001)), guessed_rate=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stated_rate(Path("cam.h264"), stated) == Fraction(30000, 1001)


def test_a_resolution_change_midway_is_an_error_and_leaves_nothing(tmp_path, tiny_checkpoint, capsys):
    first = encode(tmp_path / "a.h264", form="h264")
    second = encode(tmp_path / "b.h264", frames=3, size=(32, 96), form="h264")
    joined = tmp_path / "in" / "joined.h264"
    joined.parent.mkdir()
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    assert video(joined, out / "joined.mp4", tiny_checkpoint) == 2  # was 13 frames, all squeezed to 64x48
    err = capsys.readouterr().err
    said = f"darkir: error: {joined}: frame 11 (at 1.000 s) is 96x32, but the frames before it are 64x48"
    assert err.startswith(said)
    assert err.count("\n") == 1
    assert not list(out.iterdir())  # no output, no part file, no lock


def test_an_output_that_is_a_folder_is_refused_before_the_weights_load(tmp_path, capsys):
    clip = encode(tmp_path / "clip.mp4")
    (tmp_path / "vd" / "clip.mp4").mkdir(parents=True)
    missing = tmp_path / "missing.pt"
    assert main(["video", str(clip), "-o", str(tmp_path / "vd"), "--weights", str(missing), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'vd' / 'clip.mp4'}: the output is a folder" in err and "missing.pt" not in err
    assert (tmp_path / "vd" / "clip.mp4").is_dir()


def test_quiet_silences_x265s_own_log(tmp_path, tiny_checkpoint, capfd):
    clip = encode(tmp_path / "clip.mp4", frames=3)
    capfd.readouterr()
    assert video(clip, tmp_path / "out.mkv", tiny_checkpoint, "--codec", "libx265") == 0
    captured = capfd.readouterr()
    assert "restored 3 frames" in captured.out
    assert "x265 [info]" not in captured.err and "encoded 3 frames" not in captured.err and captured.err == ""


def cut_after(source: Path, target: Path, packets: int) -> Path:
    """``source`` cut where its video packet ``packets + 1`` starts, as a download or copy that stopped there."""
    with av.open(str(source)) as container:
        cut = [packet.pos for packet in container.demux(video=0) if packet.size][packets]
    target.write_bytes(source.read_bytes()[:cut])
    return target


@pytest.mark.parametrize(
    ("suffix", "options", "states"),
    [("mkv", None, "about 20"), ("mp4", {"movflags": "faststart"}, "20")],  # MKV: by duration; MP4: frame count
)
def test_a_truncated_video_is_restored_with_a_warning(tmp_path, tiny_checkpoint, capsys, suffix, options, states):
    whole = encode(tmp_path / f"whole.{suffix}", frames=20, options=options)
    cut = cut_after(whole, tmp_path / f"cut.{suffix}", 12)
    assert video(whole, tmp_path / "whole_out.mp4", tiny_checkpoint) == 0
    assert capsys.readouterr().err == ""  # the whole video: no warning
    assert video(cut, tmp_path / "cut_out.mp4", tiny_checkpoint) == 0
    restored = len(timing(tmp_path / "cut_out.mp4")["times"])
    assert 0 < restored < 20
    err = capsys.readouterr().err
    assert err == (
        f"darkir: warning: {cut}: restored {restored} frames, but its header states {states}; "
        "the file may be truncated or damaged\n"
    )


def test_a_matroska_video_cut_by_a_third_of_a_second_is_restored_with_a_warning(tmp_path, tiny_checkpoint, capsys):
    """Only half a second or more missing by the header's duration was said: a 25 fps MKV that lost its last 8 of 30
    frames (0.32 s) was restored without a word."""
    whole = encode(tmp_path / "whole.mkv", frames=30, rate=25)
    cut = cut_after(whole, tmp_path / "cut.mkv", 22)
    assert video(whole, tmp_path / "whole_out.mp4", tiny_checkpoint) == 0
    assert capsys.readouterr().err == ""
    assert video(cut, tmp_path / "cut_out.mp4", tiny_checkpoint) == 0
    restored = len(timing(tmp_path / "cut_out.mp4")["times"])
    assert 0 < restored < 30
    assert f"restored {restored} frames, but its header states about 30" in capsys.readouterr().err


def test_variable_frame_rates_and_long_last_frames_are_not_taken_for_truncation(tmp_path, tiny_checkpoint, capsys):
    ms = Fraction(1, 1000)
    clip = tmp_path / "vfr.mkv"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = ms
        for index, pts in enumerate([0, 100, 150, 250, 1000]):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 + index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, ms
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert video(clip, tmp_path / "out.mkv", tiny_checkpoint) == 0
    assert capsys.readouterr().err == ""
    assert timing(tmp_path / "out.mkv")["times"] == [t * ms for t in [0, 100, 150, 250, 1000]]


def test_the_python_api_warns_too(tmp_path, tiny_checkpoint):
    from darkir.infer import Restorer
    from darkir.infer.video import restore_video
    from darkir.models.factory import load_model

    whole = encode(tmp_path / "whole.mkv", frames=20)
    cut = cut_after(whole, tmp_path / "cut.mkv", 8)
    restorer = Restorer(load_model(tiny_checkpoint), device="cpu", tile=0)
    with pytest.warns(DarkIRWarning) as caught:
        report = restore_video(restorer, cut, tmp_path / "out.mp4", progress=False)
    assert len(caught) == 1
    said = f"{cut}: restored {report.frames} frames, but its header states about 20; the file may be truncated"
    assert str(caught[0].message).startswith(said)


def _timed_clip(path: Path, first_pts: int, time_base: Fraction, step: int, **options: str) -> Path:
    """20 frames of 64x48, the first at ``first_pts`` (in ``time_base``), one every ``step``."""
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = time_base
        for index in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 + 5 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = first_pts + index * step, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_video_whose_clock_wrapped_keeps_every_frame_in_an_mp4(tmp_path, tiny_checkpoint, capsys):
    """An MPEG-TS whose 33-bit clock wrapped after frame 10: FFmpeg unwraps it, so its first frames are timed before
    0, and the MP4's edit list hid them (9 of 20 frames played), while a "truncated or damaged" warning blamed the
    input. Every frame is kept, moved to start at 0 with its streams, and nothing is warned."""
    tick = Fraction(1, 90000)
    wrapped = _timed_clip(tmp_path / "wrap.ts", 2**33 - 10 * 9000, tick, 9000, mpegts_copyts="1")
    assert min(timing(wrapped)["times"]) < 0
    assert video(wrapped, tmp_path / "out.mp4", tiny_checkpoint) == 0
    assert capsys.readouterr().err == ""
    times = timing(tmp_path / "out.mp4")["times"]
    assert len(times) == 20 and min(times) >= 0 and max(times) - min(times) == pytest.approx(1.9)


def test_an_mp4_cut_without_reencoding_is_not_taken_for_a_truncated_one(tmp_path, tiny_checkpoint, capsys):
    """An MP4 cut as `ffmpeg -ss 1 -c copy` or a phone's trim writes it keeps the frames before the cut, hidden by
    an edit list: its header counts 20 frames, players show 10, and the warning said "truncated or damaged"."""
    trimmed = _timed_clip(tmp_path / "trimmed.mp4", -10, Fraction(1, 10), 1)
    assert len(timing(trimmed)["times"]) == 10
    assert video(trimmed, tmp_path / "out.mp4", tiny_checkpoint) == 0
    assert capsys.readouterr().err == "" and len(timing(tmp_path / "out.mp4")["times"]) == 10


def test_x265_at_crf_0_is_lossless_and_tagged_for_apples_players_in_mp4(tmp_path, tiny_checkpoint):
    """``--codec libx265 --crf 0`` (documented as lossless) differed from the restored frames by up to 6 levels: x265
    needs its own lossless switch. Its MP4 was tagged hev1, which Apple's players do not play (hvc1 they do)."""
    source = encode(tmp_path / "in.mkv", frames=4)
    assert video(source, tmp_path / "x264.mkv", tiny_checkpoint, "--codec", "libx264", "--crf", "0") == 0
    assert video(source, tmp_path / "x265.mp4", tiny_checkpoint, "--codec", "libx265", "--crf", "0") == 0

    def planes(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.stack([frame.to_ndarray() for frame in container.decode(video=0)])

    assert np.array_equal(planes(tmp_path / "x265.mp4"), planes(tmp_path / "x264.mkv"))  # (x264's is lossless)
    with av.open(str(tmp_path / "x265.mp4")) as container:
        assert container.streams.video[0].codec_tag == "hvc1"
