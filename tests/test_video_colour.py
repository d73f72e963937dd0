"""`darkir video` keeps a video's colour: the frames go through the input's own YUV matrix and back, the output is
tagged as the input (matrix, primaries, transfer), an untagged HD input is read as players read it (BT.709), and a
10-bit input stays 10-bit. Checked with the restoration itself replaced by the identity, so that what comes out must
look as what went in, to a player that follows the tags."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from darkir.errors import DarkIRWarning

av = pytest.importorskip("av")

#: Flat colours, one per frame: a player's view of the output must keep each within a few 8-bit levels.
COLOURS = [(194, 76, 51), (56, 169, 50), (40, 60, 200)]


def make_tagged_video(
    path: Path, size: tuple[int, int], matrix: str, tags: tuple[int, int, int] | None, ten_bit: bool = False
) -> Path:
    """Flat-colour frames of (height, width) ``size`` coded with the swscale ``matrix``; ``tags`` (AVColorSpace,
    primaries, transfer) written into the stream, or none (an untagged video); ``ten_bit``: 10-bit HEVC."""
    height, width = size
    pix_fmt = "yuv420p10le" if ten_bit else "yuv420p"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265" if ten_bit else "libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if ten_bit:
            stream.options = {"x265-params": "log-level=error"}
        if tags is not None:
            context = stream.codec_context
            context.colorspace, context.color_primaries, context.color_trc = tags
            context.color_range = 1
        for index, colour in enumerate(COLOURS):
            rgb = np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()
            if ten_bit:
                rgb = rgb.astype(np.uint16) * 257
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if ten_bit else "rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range="MPEG")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def as_a_player_shows_it(path: Path) -> tuple[list[np.ndarray], dict[str, object]]:
    """Each frame's mean RGB (8-bit scale) decoded by its tags (untagged: BT.709 for HD, else BT.601), and the tags."""
    means, tags = [], {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            matrix = {1: "ITU709", 9: "BT2020"}.get(int(frame.colorspace))
            matrix = matrix or ("ITU709" if frame.width >= 1280 else "ITU601")
            deep = frame.format.components[0].bits > 8
            rgb = frame.to_ndarray(format="rgb48le" if deep else "rgb24", src_colorspace=matrix)
            means.append(rgb.reshape(-1, 3).mean(axis=0) / (257.0 if deep else 1.0))
            tags = {
                "format": frame.format.name,
                "matrix": int(frame.colorspace),
                "primaries": int(frame.color_primaries),
                "transfer": int(frame.color_trc),
            }
    return means, tags


@pytest.fixture
def identity_restorer(tiny_checkpoint, monkeypatch):
    from darkir.infer import Restorer
    from darkir.models.factory import load_model

    restorer = Restorer(load_model(tiny_checkpoint), device="cpu", precision="fp32", tile=0)
    monkeypatch.setattr(restorer, "_restore_tensor", lambda x: x)  # what every path restores with
    return restorer


@pytest.mark.parametrize(
    ("name", "size", "matrix", "tags", "ten_bit", "expected"),
    [
        ("bt709.mp4", (48, 64), "ITU709", (1, 1, 1), False, {"format": "yuv420p", "matrix": 1, "transfer": 1}),
        ("bt601.mp4", (48, 64), "ITU601", (6, 6, 6), False, {"format": "yuv420p", "matrix": 6, "transfer": 6}),
        ("untagged-hd.mp4", (720, 1280), "ITU709", None, False, {"format": "yuv420p", "matrix": 1, "transfer": 2}),
        ("hlg.mov", (48, 64), "BT2020", (9, 9, 18), True, {"format": "yuv420p10le", "matrix": 9, "transfer": 18}),
    ],
)
def test_a_video_keeps_its_colour(tmp_path, identity_restorer, name, size, matrix, tags, ten_bit, expected):
    from darkir.infer.video import restore_video

    source = make_tagged_video(tmp_path / name, size, matrix, tags, ten_bit)
    target = tmp_path / f"restored-{Path(name).stem}.mkv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restore_video(identity_restorer, source, target, progress=False, codec="libx265" if ten_bit else "libx264")
    before, _ = as_a_player_shows_it(source)
    after, tagged = as_a_player_shows_it(target)
    assert {key: tagged[key] for key in expected} == expected
    assert np.abs(np.array(after) - np.array(before)).max() <= 3.0, (before, after)
    assert np.abs(np.array(before) - np.array(COLOURS)).max() <= 3.0  # the check itself reads the input right
    hdr = [str(w.message) for w in caught if issubclass(w.category, DarkIRWarning)]
    note = "its frames are restored as they are coded, not tone-mapped; the output keeps its HLG tags and 10 bits"
    assert hdr == ([f"{source}: HDR video (HLG): {note}"] if ten_bit else [])


def test_an_odd_sized_video_is_restored_with_a_warning_that_few_players_take_its_output(tmp_path, identity_restorer):
    from darkir.infer.video import restore_video

    source = make_tagged_video(tmp_path / "odd.mkv", (48, 64), "ITU601", None)
    with av.open(str(source)) as container:  # 48x64 -> 47x63: odd sides, which 4:2:0 cannot hold
        frames = [frame.reformat(width=63, height=47) for frame in container.decode(video=0)]
    with av.open(str(tmp_path / "odd.mov"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 63, 47, "yuv444p"
        for index, frame in enumerate(frames):
            frame.pts, frame.time_base = index, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.warns(
        DarkIRWarning, match=r"odd\.mov: 63x47 has an odd side, so the output's colour is not subsampled"
    ):
        report = restore_video(identity_restorer, tmp_path / "odd.mov", tmp_path / "out.mp4", progress=False)
    _, tags = as_a_player_shows_it(tmp_path / "out.mp4")
    assert tags["format"] == report.pixel_format == "yuv444p"


def test_the_demo_says_when_a_clip_comes_back_in_a_colour_format_browsers_cannot_play(tmp_path, tiny_checkpoint):
    """The demo's page shows only its summary, not the server's warnings: an odd-sized clip's 4:4:4 result, which
    the page's player cannot play, is explained there; an even-sized clip's summary has no such note."""
    pytest.importorskip("gradio")
    from darkir.demo import DemoEngine

    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    for name, size in (("even.mp4", (48, 64)), ("odd.mp4", (47, 63))):
        source = tmp_path / name
        with av.open(str(source), "w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.height, stream.width = size
            stream.pix_fmt = "yuv444p"
            for index in range(3):
                frame = av.VideoFrame.from_ndarray(np.full((*size, 3), 40 * index, np.uint8), format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, 10)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DarkIRWarning)
            _, summary = engine.restore_video(str(source), "tiny")
        assert ("browsers cannot play: download it, or crop the clip to even sides" in summary) == (name == "odd.mp4")


@pytest.mark.parametrize(("pix_fmt", "peak"), [("yuv420p", 255), ("yuv420p10le", 1023)])
def test_a_round_trip_through_rgb_neither_darkens_nor_brightens(pix_fmt, peak):
    """Flat YUV frames read into RGB and written back, as darkir video does around the restoration: no bias (swscale's
    default 8-bit rounding took about a level off every frame) and at most 2 levels anywhere."""
    from darkir.infer.video_colour import video_colour

    scale = (peak + 1) // 256
    signed, worst = [], 0.0
    for luma in range(16, 236, 12):
        for chroma in ((128, 128), (100, 160), (160, 90)):
            frame = av.VideoFrame(32, 16, pix_fmt)
            for plane, value in zip(frame.planes, (luma, *chroma), strict=True):
                dtype = np.uint16 if scale > 1 else np.uint8
                plane.update(np.full(plane.buffer_size // dtype().itemsize, value * scale, dtype))
            frame.colorspace, frame.color_range = 1, 1
            colour = video_colour(frame, Path("flat"))
            back = colour.from_rgb(av, colour.to_rgb(frame), pix_fmt)
            back.colorspace, back.color_range = 1, 1
            before, after = (colour.to_rgb(f).astype(np.float64) / (colour.peak / 255) for f in (frame, back))
            signed.append(float((after - before).mean()))
            worst = max(worst, float(np.abs(after - before).max()))
    assert abs(np.mean(signed)) <= 0.25 and worst <= 2.0, (np.mean(signed), worst)
