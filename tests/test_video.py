"""`darkir video`: frame count, frame rate, duration, resolution and audio survive restoration."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from darkir.cli import main
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
    ("content", "message"), [(None, "no such video file"), (b"\x00" * 64, "cannot open as a video")]
)
def test_bad_video_inputs(tmp_path, tiny_checkpoint, capsys, content, message):
    source = tmp_path / "in.mp4"
    if content is not None:
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
