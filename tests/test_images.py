"""Image I/O keeps bit depth, gray, alpha and format, honours EXIF orientation, and names bad files."""

from __future__ import annotations

import os
import re
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from darkir.errors import DarkIRError, DarkIRWarning
from darkir.imageio import Image, ImageReadError, image_from_array, read_image, write_image


def _rgb(height: int = 12, width: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".webp"])
def test_lossless_8bit_round_trip(tmp_path, suffix):
    rgb = np.round(_rgb() * 255) / 255
    path = tmp_path / f"a{suffix}"
    write_image(path, Image(rgb=rgb, alpha=None, bit_depth=8, grayscale=False))
    back = read_image(path)
    assert back.bit_depth == 8 and not back.grayscale and back.alpha is None
    np.testing.assert_allclose(back.rgb, rgb, atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_colour_under_transparent_pixels_is_kept(tmp_path, suffix):
    """WebP (libwebp as OpenCV calls it) rewrote the colour under fully transparent pixels, by up to 72 levels, where
    PNG and TIFF keep it: a restored RGBA WebP differed there from what the Python API returns."""
    rgb = np.round(_rgb() * 255) / 255
    alpha = np.ones(rgb.shape[:2], np.float32)
    alpha[:6] = 0.0
    path = tmp_path / f"clear{suffix}"
    write_image(path, Image(rgb=rgb, alpha=alpha, bit_depth=8, grayscale=False))
    back = read_image(path)
    np.testing.assert_array_equal(back.alpha, alpha)
    np.testing.assert_allclose(back.rgb, rgb, atol=1e-6)


@pytest.mark.parametrize("channels", [3, 4])
def test_an_image_too_wide_for_webp_is_one_error_naming_it(tmp_path, channels):
    """RGBA WebP (written by Pillow) over WebP's 16383 px raised Pillow's ValueError, not an error naming the file."""
    path = tmp_path / "wide.webp"
    with pytest.raises(DarkIRError, match=r"wide\.webp: cannot encode a 16400x4 image as \.webp"):
        write_image(path, image_from_array(np.zeros((4, 16400, channels), np.uint8)))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_is_kept(tmp_path, suffix):
    rgb = np.round(_rgb() * 65535) / 65535
    path = tmp_path / f"deep{suffix}"
    write_image(path, Image(rgb=rgb, alpha=None, bit_depth=16, grayscale=False))
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (12, 17, 3)
    back = read_image(path)
    assert back.bit_depth == 16
    np.testing.assert_allclose(back.rgb, rgb, atol=1e-7)


def test_gray_stays_gray_and_alpha_is_kept(tmp_path):
    gray_path, rgba_path = tmp_path / "g.png", tmp_path / "rgba.png"
    cv2.imwrite(str(gray_path), (np.arange(60).reshape(6, 10) * 4).astype(np.uint16) * 257)
    rgba = np.dstack(
        [(np.random.default_rng(1).random((6, 10, 3)) * 255).astype(np.uint8), np.full((6, 10), 77, np.uint8)]
    )
    cv2.imwrite(str(rgba_path), rgba)
    gray = read_image(gray_path)
    assert gray.grayscale and gray.bit_depth == 16 and np.allclose(gray.rgb[..., 0], gray.rgb[..., 2])
    write_image(tmp_path / "g_out.png", gray)
    assert cv2.imread(str(tmp_path / "g_out.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    image = read_image(rgba_path)
    assert image.alpha is not None and np.allclose(image.alpha, 77 / 255)
    write_image(tmp_path / "rgba_out.png", image)
    out = cv2.imread(str(tmp_path / "rgba_out.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (6, 10, 4) and np.array_equal(out, rgba)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_an_rgba_tiff_marks_its_fourth_sample_as_alpha(tmp_path, dtype):
    """An RGBA TIFF says its fourth sample is unassociated alpha (ExtraSamples 2; OpenCV leaves the tag out) and
    reads back as written, colour and alpha."""
    peak = np.iinfo(dtype).max
    pixels = (np.random.default_rng(2).random((6, 10, 4)) * peak).astype(dtype)
    image = Image(
        rgb=pixels[..., :3] / np.float32(peak),
        alpha=pixels[..., 3] / np.float32(peak),
        bit_depth=8 * pixels.itemsize,
        grayscale=False,
    )
    write_image(tmp_path / "a.tif", image)
    with PILImage.open(tmp_path / "a.tif") as written:
        assert written.tag_v2.get(338) == (2,) and written.tag_v2.get(277) == 4
    back = read_image(tmp_path / "a.tif")
    assert np.array_equal(np.rint(back.alpha * peak), pixels[..., 3]) and np.array_equal(
        np.rint(back.rgb * peak), pixels[..., :3]
    )


def test_a_cmyk_tiff_reads_as_rgb_without_an_alpha_it_does_not_have(tmp_path):
    cmyk = (np.random.default_rng(3).random((6, 10, 4)) * 255).astype(np.uint8)
    PILImage.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
    image = read_image(tmp_path / "c.tif")
    assert image.alpha is None and image.rgb.shape == (6, 10, 3)
    expected = np.asarray(PILImage.fromarray(cmyk, "CMYK").convert("RGB"), np.float32) / 255
    assert np.abs(image.rgb - expected).max() <= 1.5 / 255


def test_an_image_without_read_permission_is_named_not_a_crash(tmp_path, monkeypatch, capsys):
    """A PNG without read permission (as a user who is not root meets it) raised a bare PermissionError from the
    signature check: metrics, test and test-unpaired stopped with "error: ...: Permission denied", exit 1, nothing
    scored; it is a problem named with the file before any work, as an unreadable header is."""
    import darkir.imageio
    from darkir.cli import main

    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "a.png"), np.zeros((8, 8, 3)))
    locked = tmp_path / "pred" / "b.png"
    locked.write_bytes(b"\x89PNG")  # no header to read: the signature check opens it

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(darkir.imageio, "has_image_signature", denied)
    with pytest.raises(ImageReadError, match=r"b\.png: cannot read it \(Permission denied\)$"):
        read_image(locked)
    cv2.imwrite(str(tmp_path / "gt" / "b.png"), np.zeros((8, 8, 3)))
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "-q", "--no-lpips"]) == 2
    assert "b.png: cannot read it (Permission denied)" in capsys.readouterr().err


def test_a_cielab_tiff_is_refused_rather_than_restored_as_rgb(tmp_path):
    """A Lab TIFF was read as RGB (L*, a*, b* as red, green, blue) and restored orange, with only a warning about its
    ICC profile."""
    PILImage.new("RGB", (40, 30), (30, 60, 90)).convert("LAB").save(tmp_path / "lab.tif")
    with pytest.raises(ImageReadError, match=r"lab\.tif: a CIELAB TIFF .* convert it to RGB first"):
        read_image(tmp_path / "lab.tif")


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, :5] = 255  # a white band on the left
    exif = PILImage.Exif()
    exif[0x0112] = 6  # the camera was rotated: display rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    PILImage.fromarray(array).save(path, exif=exif, quality=100)
    image = read_image(path)
    assert image.rgb.shape == (20, 10, 3)
    expected = np.asarray(PILImage.open(path).transpose(PILImage.Transpose.ROTATE_270)) / 255
    assert np.abs(image.rgb - expected).max() < 0.05
    assert image.rgb[:5].mean() > 0.9 and image.rgb[-5:].mean() < 0.1  # the band is now on top


def test_jpeg_output_is_8bit(tmp_path):
    path = tmp_path / "out.jpg"
    write_image(path, Image(rgb=_rgb(), alpha=None, bit_depth=16, grayscale=False))
    assert read_image(path).bit_depth == 8


@pytest.mark.parametrize(
    ("suffix", "depth", "kept"), [(".jpg", 16, 8), (".webp", 16, 8), (".bmp", 32, 8), (".png", 32, 16)]
)
def test_a_format_that_keeps_fewer_bits_says_so(tmp_path, suffix, depth, kept):
    """16-bit photos converted with --format jpg lost their depth without a word, while their alpha was warned of."""
    with pytest.warns(DarkIRWarning, match=f"keeps at most {kept} bits a sample"):
        write_image(tmp_path / f"out{suffix}", Image(rgb=_rgb(), alpha=None, bit_depth=depth, grayscale=False))
    assert read_image(tmp_path / f"out{suffix}").bit_depth == kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / f"same{suffix}", Image(rgb=_rgb(), alpha=None, bit_depth=kept, grayscale=False))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.png", b"\x89PNG\r\n\x1a\nnot really", "cannot decode image"),
        ("empty.jpg", b"", "cannot decode image"),
        ("notes.txt", b"hello", "unsupported format .txt"),
    ],
)
def test_bad_files_are_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as info:
        read_image(path)
    assert name in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_what_is_not_a_file_is_named_for_what_it_is(tmp_path):
    """The API called a pipe, a folder or a link to nothing "no such file" (the CLI named them)."""
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "link.png").symlink_to(tmp_path / "gone.png")
    for name, reason in [
        ("pipe.png", "not a file or folder (a pipe, socket or device)"),
        ("folder.png", "a folder, not a file"),
        ("link.png", "a symbolic link to nothing"),
    ]:
        with pytest.raises(ImageReadError, match=re.escape(f"{tmp_path / name}: {reason}")):
            read_image(tmp_path / name)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(Exception, match="cannot encode"):
        write_image(tmp_path / "x.unknownext", Image(rgb=_rgb(), alpha=None, bit_depth=8, grayscale=False))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_a_format_without_alpha_warns_that_the_alpha_is_dropped(tmp_path, suffix):
    rgba = Image(
        rgb=np.full((4, 5, 3), 0.5, np.float32), alpha=np.full((4, 5), 0.25, np.float32), bit_depth=8, grayscale=False
    )
    with pytest.warns(DarkIRWarning, match=rf"^{suffix[1:].upper()} keeps no alpha channel: images that have one"):
        write_image(tmp_path / f"a{suffix}", rgba)
    assert cv2.imread(str(tmp_path / f"a{suffix}"), cv2.IMREAD_UNCHANGED).shape == (4, 5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "a.png", rgba)
        write_image(tmp_path / f"b{suffix}", Image(rgb=rgba.rgb, alpha=None, bit_depth=8, grayscale=False))


def test_header_reads_in_two_threads_leave_the_warning_filters_as_they_were(tmp_path, monkeypatch):
    """Pillow's warnings are silenced around a header read; two threads' reads whose windows would overlap (the
    second starting before the first ends, ending after it) must not leave every warning of the process silenced."""
    import threading

    import darkir.image_header as image_header

    path = tmp_path / "a.png"
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()
    read_metadata = image_header.read_metadata

    def paced(handle):  # called inside the window, after the warnings were silenced
        if threading.current_thread().name == "first":
            first_in.set()
            second_in.wait(1)  # where the windows may overlap, the second read is inside the first's
        else:
            second_in.set()
            first_done.wait(1)  # and leaves it after the first has left
        return read_metadata(handle)

    monkeypatch.setattr(image_header, "read_metadata", paced)
    saved = list(warnings.filters)

    def first() -> None:
        image_header.read_header(path)
        first_done.set()

    def second() -> None:
        first_in.wait(1)
        image_header.read_header(path)

    try:
        threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert warnings.filters == saved
    finally:
        warnings.filters[:] = saved


def test_a_float_tiff_with_values_outside_0_1_is_read_clipped_with_a_warning(tmp_path):
    """An HDR or linear float TIFF (values above 1) is clipped to what the model takes, with a warning naming the
    range (it was clipped silently); one within [0, 1] reads as it is, without a word."""
    array = np.zeros((16, 16, 3), np.float32)
    array[:, :8], array[:, 8:] = 0.05, 4.0
    cv2.imwrite(str(tmp_path / "hdr.tif"), array)
    with pytest.warns(DarkIRWarning, match=r"hdr\.tif: its float samples span \[0\.05, 4\]; darkir reads \[0, 1\]"):
        image = read_image(tmp_path / "hdr.tif")
    assert image.rgb.max() == 1.0 and image.bit_depth == 32
    plain = array / 4
    plain[0, 0] = 1.0001  # rounding noise
    cv2.imwrite(str(tmp_path / "plain.tif"), plain)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "plain.tif").rgb.max() == 1.0


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_a_deep_tiff_with_separate_planes_reads_as_its_pixels(tmp_path, dtype):
    """16-bit and float TIFFs with one plane per sample (PlanarConfiguration 2), which OpenCV read as interleaved
    (scrambled pixels, no error); 16-bit RGBA too."""
    import tifffile

    rng = np.random.default_rng(0)
    rgba = rng.random((24, 32, 4)) * 0.5
    stored = (rgba * 65535).astype(dtype) if dtype == np.uint16 else rgba.astype(dtype)
    scale = 65535 if dtype == np.uint16 else 1
    tifffile.imwrite(
        tmp_path / "rgb.tif", np.moveaxis(stored[..., :3], 2, 0), photometric="rgb", planarconfig="separate"
    )
    image = read_image(tmp_path / "rgb.tif")
    assert image.bit_depth == (16 if dtype == np.uint16 else 32)
    np.testing.assert_allclose(image.rgb, stored[..., :3] / scale, atol=1e-6)
    if dtype == np.uint16:
        tifffile.imwrite(
            tmp_path / "rgba.tif", np.moveaxis(stored, 2, 0), photometric="rgb", planarconfig="separate",
            extrasamples=["unassalpha"],
        )  # fmt: skip
        image = read_image(tmp_path / "rgba.tif")
        np.testing.assert_allclose(image.rgb, stored[..., :3] / scale, atol=1e-6)
        np.testing.assert_allclose(image.alpha, stored[..., 3] / scale, atol=1e-6)


def test_a_16_bit_min_is_white_tiff_reads_as_shown(tmp_path):
    """A 16-bit gray TIFF whose zero is white (photometric MinIsWhite) reads inverted, as viewers show it (OpenCV
    gave the stored values: a negative); 8-bit ones already did."""
    import tifffile

    stored = (np.random.default_rng(1).random((24, 32)) * 0.3 * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "white.tif", stored, photometric="miniswhite")
    image = read_image(tmp_path / "white.tif")
    assert image.grayscale and image.bit_depth == 16
    np.testing.assert_allclose(image.rgb[..., 0], 1 - stored / 65535, atol=1e-6)


def test_a_multi_page_float_tiff_is_refused_not_cut_to_its_first_page(tmp_path):
    """Pillow cannot open a float RGB TIFF, so its pages went uncounted and the first alone was restored; tifffile
    reads its header."""
    import tifffile

    pages = np.random.default_rng(2).random((3, 16, 16, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "pages.tif", pages, photometric="rgb")
    with pytest.raises(ImageReadError, match=r"pages\.tif: an animated or multi-page image \(more than one frame\)"):
        read_image(tmp_path / "pages.tif")
    tifffile.imwrite(tmp_path / "one.tif", pages[0], photometric="rgb")
    assert read_image(tmp_path / "one.tif").rgb.shape == (16, 16, 3)


@pytest.mark.parametrize("float_rgb", [False, True], ids=["pillow", "tifffile"])
def test_a_tiff_of_many_pages_is_refused_after_reading_two(tmp_path, monkeypatch, float_rgb):
    """Counting a TIFF's pages walks every one of them (minutes for 100000 tiny pages, quadratic in Pillow): the
    header reads the second page only, and the refusal comes before any more are read."""
    import tifffile
    from PIL import TiffImagePlugin

    dtype = np.float32 if float_rgb else np.uint8
    tifffile.imwrite(tmp_path / "many.tif", np.zeros((50, 4, 4, 3), dtype), photometric="rgb")
    seen: list[int] = []
    seek = TiffImagePlugin.TiffImageFile._seek
    monkeypatch.setattr(
        TiffImagePlugin.TiffImageFile, "_seek", lambda self, frame: seen.append(frame) or seek(self, frame)
    )
    parsed = tifffile.TiffPages.__getitem__
    monkeypatch.setattr(tifffile.TiffPages, "__getitem__", lambda self, key: seen.append(key) or parsed(self, key))
    with pytest.raises(ImageReadError, match=r"many\.tif: an animated or multi-page image \(more than one frame\)"):
        read_image(tmp_path / "many.tif")
    assert seen and max(key for key in seen if isinstance(key, int)) <= 1


def test_a_jpeg_with_a_corrupt_exif_block_reads_without_pillows_warning(tmp_path):
    """Pillow warns of a corrupt EXIF block as it opens the file, before darkir had silenced it: a bare two-line
    Python warning naming no file. darkir drops what it cannot read."""
    import struct

    _, jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), 40, np.uint8))
    exif = b"Exif\x00\x00MM\x00*" + struct.pack(">IH", 8, 65535) + bytes(20)  # IFD0 claims 65535 entries
    segment = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    (tmp_path / "a.jpg").write_bytes(jpeg[:2].tobytes() + segment + jpeg[2:].tobytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(tmp_path / "a.jpg").rgb.shape == (16, 16, 3)
    assert [str(warning.message) for warning in caught] == []


def test_a_compressed_16_bit_min_is_white_tiff_reads_as_shown(tmp_path):
    """OpenCV reads any compression (tifffile needs imagecodecs for LZW): it decodes, darkir inverts."""
    import tifffile

    stored = (np.arange(24 * 32).reshape(24, 32) * 80).astype(np.uint16)
    tifffile.imwrite(tmp_path / "white.tif", stored, photometric="miniswhite", compression="zlib")
    np.testing.assert_allclose(read_image(tmp_path / "white.tif").rgb[..., 0], 1 - stored / 65535, atol=1e-6)


def test_a_tiff_with_a_damaged_tag_reads_without_a_word_from_pillow_or_tifffile(tmp_path, caplog):
    """A private tag pointing past the end of the file: Pillow warned ("Truncated File Read") and tifffile logged
    its TiffFileError on the terminal, unasked; the image itself reads."""
    import struct

    import tifffile

    path = tmp_path / "float.tif"
    pixels = np.random.default_rng(3).random((16, 20, 3), dtype=np.float32)
    tifffile.imwrite(path, pixels, photometric="rgb", extratags=[(65000, "s", 0, "x" * 100, True)])
    data = bytearray(path.read_bytes())
    offset = struct.unpack_from("<I", data, 4)[0]
    for index in range(struct.unpack_from("<H", data, offset)[0]):
        entry = offset + 2 + 12 * index
        if struct.unpack_from("<H", data, entry)[0] == 65000:
            struct.pack_into("<I", data, entry + 8, 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_allclose(read_image(path).rgb, pixels, atol=1e-6)
    assert [str(warning.message) for warning in caught] == [] and caplog.records == []


def test_a_float_image_with_a_nan_sample_is_refused_as_it_is_read(tmp_path):
    """test and compare blamed the model's weights for the NaN output, metrics dropped the image unexplained."""
    array = np.full((8, 8, 3), 0.5, np.float32)
    array[2, 3, 1] = np.nan
    cv2.imwrite(str(tmp_path / "nan.tif"), array)
    with pytest.raises(ImageReadError, match=r"nan\.tif: its float samples include NaN"):
        read_image(tmp_path / "nan.tif")


def test_infinite_and_float64_overflowing_samples_are_named_as_they_are_clipped(tmp_path):
    """A float TIFF of +inf samples (or a float64 one past float32's range) was clipped to white without a word,
    where finite values past 1 were warned of (and float64's overflow leaked NumPy's own RuntimeWarning)."""
    import tifffile

    infinite = np.full((8, 8, 3), 0.5, np.float32)
    infinite[0, 0], infinite[1, 1, 2] = np.inf, -np.inf
    tifffile.imwrite(tmp_path / "inf.tif", infinite, photometric="rgb")
    huge = np.full((8, 8, 3), 0.5, np.float64)
    huge[3, 3, 0] = 1e39
    tifffile.imwrite(tmp_path / "huge.tif", huge, photometric="rgb")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = read_image(tmp_path / "inf.tif").rgb
        big = read_image(tmp_path / "huge.tif").rgb
    messages = [str(warning.message) for warning in caught]
    assert messages == [
        f"{tmp_path / 'inf.tif'}: 4 of its float samples are infinite; darkir reads [0, 1], so they are clipped to 0 "
        "(-inf) and 1 (+inf)",
        f"{tmp_path / 'huge.tif'}: its float samples span [0.5, 1e+39]; darkir reads [0, 1], so the values outside "
        "are clipped (scale the image into [0, 1] first to keep them)",
    ]
    assert rgb[0, 0].tolist() == [1, 1, 1] and rgb[1, 1, 2] == 0 and big[3, 3, 0] == 1 and big[0, 0, 0] == 0.5


def test_a_file_no_decoder_recognises_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A large file of no image format under an image's name (a disk image renamed .png) was read whole into memory
    before OpenCV gave up on it; its first bytes now refuse it."""
    import darkir.imageio

    junk = tmp_path / "junk.png"
    with open(junk, "wb") as handle:
        handle.truncate(64 << 20)
    monkeypatch.setattr(darkir.imageio.np, "fromfile", lambda *_, **__: pytest.fail("the whole file was read"))
    with pytest.raises(ImageReadError, match="junk.png: cannot decode image"):
        read_image(junk)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_tiled_tiff_that_opencv_cannot_decode_reads(tmp_path, channels):
    """OpenCV's in-memory decoder fails on uncompressed 8-bit TIFFs in tiles of 16, 48 or 80 pixels, which Pillow and
    tifffile read: they read, turned by their orientation as other TIFFs are."""
    import tifffile

    stored = np.random.default_rng(2).integers(0, 256, (48, 64, 3)).astype(np.uint8)[..., :channels].squeeze()
    photometric = "rgb" if channels == 3 else "minisblack"
    tiles = {"photometric": photometric, "tile": (16, 16)}
    tifffile.imwrite(tmp_path / "tiled.tif", stored, **tiles)
    tifffile.imwrite(tmp_path / "turned.tif", stored, **tiles, extratags=[(274, 3, 1, 6, True)])  # orientation 6
    image = read_image(tmp_path / "tiled.tif")
    assert image.bit_depth == 8 and image.grayscale == (channels == 1)
    read = image.rgb[..., 0] if channels == 1 else image.rgb
    np.testing.assert_array_equal(np.rint(read * 255).astype(np.uint8), stored)
    turned = read_image(tmp_path / "turned.tif")
    np.testing.assert_array_equal(turned.rgb, np.rot90(image.rgb, -1))


@pytest.mark.parametrize(
    ("dtype", "planar"), [(np.uint8, False), (np.uint16, False), (np.float32, False), (np.uint16, True)]
)
def test_a_tiff_with_associated_alpha_reads_as_unpremultiplied_colour(tmp_path, dtype, planar):
    """A TIFF whose colour is stored premultiplied by its alpha (ExtraSamples 1) read as if it were straight colour,
    so its translucent parts came out darker; darkir writes unassociated alpha, so it reads the colour divided by it."""
    import tifffile

    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    colour = np.full((16, 32, 3), 0.4)
    alpha = np.ones((16, 32, 1))
    alpha[:, 16:] = 0.25
    alpha[:2, :2] = 0.0
    stored = np.concatenate([colour * alpha, alpha], axis=2) * top
    stored = stored.astype(dtype) if dtype == np.float32 else np.rint(stored).astype(dtype)
    layout = {"planarconfig": "separate"} if planar else {}  # deep planes: read by tifffile, not OpenCV
    stored = np.moveaxis(stored, 2, 0) if planar else stored
    tifffile.imwrite(tmp_path / "premultiplied.tif", stored, photometric="rgb", extrasamples=["assocalpha"], **layout)
    image = read_image(tmp_path / "premultiplied.tif")
    np.testing.assert_allclose(image.alpha, alpha[..., 0], atol=1 / 255)
    tolerance = 2 / 255 if dtype == np.uint8 else 1e-4  # 8 bits of 0.4 x 0.25 hold 0.4 to within 2 levels
    np.testing.assert_allclose(image.rgb[2:], colour[2:], atol=tolerance)
    assert (image.rgb[:2, :2] == 0).all()


@pytest.mark.parametrize(
    ("photometric", "extra", "alpha_at"),
    [
        ("rgb", ["unassalpha", "unspecified"], 3),  # the alpha was dropped without a word
        ("rgb", ["unspecified"], None),  # the infrared or depth plane was taken for alpha
        ("minisblack", ["unassalpha", "unspecified"], 1),
        ("minisblack", ["unspecified"], None),
    ],
)
def test_a_tiffs_extra_samples_beyond_colour_and_alpha_are_left_out_with_a_warning(
    tmp_path, photometric, extra, alpha_at
):
    import tifffile

    colours = 3 if photometric == "rgb" else 1
    stored = np.random.default_rng(0).integers(1, 255, (16, 24, colours + len(extra)), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "extra.tif", stored, photometric=photometric, extrasamples=extra)
    with pytest.warns(DarkIRWarning, match=r"extra.tif: left out 1 extra sample of this TIFF"):
        image = read_image(tmp_path / "extra.tif")
    np.testing.assert_array_equal(np.rint(image.rgb * 255), np.broadcast_to(stored[:, :, :colours], (16, 24, 3)))
    if alpha_at is None:
        assert image.alpha is None
    else:
        np.testing.assert_array_equal(np.rint(image.alpha * 255), stored[:, :, alpha_at])


@pytest.mark.parametrize("depth", [np.uint8, np.uint16])
def test_an_rgba_tiff_opencv_writes_without_an_extra_samples_tag_keeps_its_alpha(tmp_path, depth):
    """OpenCV writes RGBA TIFFs (LZW) without the ExtraSamples tag; the extra-samples rule took the alpha for a
    sample to leave out, and tifffile could not decode the LZW data without imagecodecs."""
    top = np.iinfo(depth).max
    bgra = np.random.default_rng(1).integers(0, top, (12, 20, 4), dtype=depth)
    cv2.imwrite(str(tmp_path / "a.tif"), bgra)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_image(tmp_path / "a.tif")
    np.testing.assert_array_equal(np.rint(image.alpha * top), bgra[:, :, 3])
    np.testing.assert_array_equal(np.rint(image.rgb * top), bgra[:, :, [2, 1, 0]])


def test_an_image_without_pixels_is_refused_in_one_line(tmp_path):
    """A TIFF of 0 rows came out as ``IndexError: tuple index out of range``."""
    import tifffile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile's own: a zero-size array makes a nonconformant TIFF
        tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 50, 3), np.uint8))
    with pytest.raises(ImageReadError, match=r"empty.tif: .*without pixels"):
        read_image(tmp_path / "empty.tif")


def test_a_half_float_tiff_reads_as_its_values(tmp_path):
    """OpenCV cannot decode float16 samples (they were "corrupt"); tifffile reads them, exactly, as float."""
    import tifffile

    stored = np.random.default_rng(6).random((24, 32, 3)).astype(np.float16)
    tifffile.imwrite(tmp_path / "half.tif", stored, photometric="rgb")
    image = read_image(tmp_path / "half.tif")
    assert image.bit_depth == 32
    np.testing.assert_array_equal(image.rgb, stored.astype(np.float32))


def test_an_image_that_needs_more_memory_than_is_free_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """metrics, test and test-unpaired read images without a model's memory plan: a small file whose header claims
    30000x30000 pixels was decoded into tens of GB. The header's size is checked against the free memory first, and
    running out of memory while decoding is an unreadable image, not an unexpected error."""
    import darkir.image_header
    import darkir.imageio

    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((100, 200, 3), np.uint8))
    monkeypatch.setattr(darkir.image_header, "cpu_available_memory", lambda: 100 * 200 * 24 - 1)
    decoded = []
    monkeypatch.setattr(
        darkir.imageio, "_decode", lambda *args: decoded.append(args) or (_ for _ in ()).throw(MemoryError)
    )
    with pytest.raises(ImageReadError, match=r"big\.png: its 200x100 pixels need about 0\.0 GB to decode, more than"):
        read_image(path)
    assert not decoded
    monkeypatch.setattr(darkir.image_header, "cpu_available_memory", lambda: 100 * 200 * 24)
    with pytest.raises(ImageReadError, match=r"big\.png: not enough memory to decode it; free memory or downscale it"):
        read_image(path)
    assert decoded


def test_pillows_pixel_limit_is_lifted_only_for_an_image_over_it(tmp_path, monkeypatch):
    """Pillow's decompression-bomb limit is a global: darkir lifted it around every open, so another thread's
    ``Image.open`` of an untrusted file ran unchecked meanwhile. Ordinary images open under it; only one Pillow
    refuses (a photo of over ~360 megapixels, here over a lowered limit) is opened again without it."""
    from PIL import Image as PILImage

    cv2.imwrite(str(tmp_path / "small.png"), np.full((8, 8, 3), 40, np.uint8))
    cv2.imwrite(str(tmp_path / "large.png"), np.full((64, 64, 3), 40, np.uint8))
    limits, opened = [], PILImage.open
    monkeypatch.setattr(
        PILImage, "open", lambda *args, **kwargs: limits.append(PILImage.MAX_IMAGE_PIXELS) or opened(*args, **kwargs)
    )
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning (over 1000, under 2000 pixels) is quieted
        assert read_image(tmp_path / "small.png").rgb.shape == (8, 8, 3)
        assert limits and set(limits) == {1000}
        limits.clear()
        assert read_image(tmp_path / "large.png").rgb.shape == (64, 64, 3)
    assert limits == [1000, None] and PILImage.MAX_IMAGE_PIXELS == 1000


def test_quieting_pillow_leaves_the_filters_other_threads_set_meanwhile():
    """darkir quieted Pillow with ``catch_warnings``, which puts back the list it found: a filter another thread
    added meanwhile was lost, and, with two overlapping windows, an ignore-all stayed for good. One filter, for
    Pillow's warnings only, is added and removed."""
    import darkir.image_header

    before = list(warnings.filters)
    try:
        with darkir.image_header.quiet_pillow():
            warnings.filterwarnings("error", message="the host's own")  # another thread, meanwhile
            with warnings.catch_warnings(record=True) as caught:  # the filters as they are: only Pillow's ignored
                warnings.warn("not Pillow's", UserWarning, stacklevel=1)
            assert [str(w.message) for w in caught] == ["not Pillow's"]
        assert warnings.filters[1:] == before and warnings.filters[0][1].pattern == "the host's own"
    finally:
        warnings.filters[:] = before


def test_opencvs_settings_are_the_callers_again_after_a_read_and_a_write(tmp_path, monkeypatch):
    """darkir runs OpenCV single-threaded and silent while it decodes and encodes, and left it so for the whole
    process after its first read: a host's own OpenCV work ran on one thread, its log muted."""
    log = cv2.utils.logging
    threads, level = cv2.getNumThreads(), log.getLogLevel()
    try:
        cv2.setNumThreads(2)
        log.setLogLevel(log.LOG_LEVEL_WARNING)
        inside, decode = [], cv2.imdecode
        monkeypatch.setattr(
            cv2, "imdecode", lambda *a: inside.append((cv2.getNumThreads(), log.getLogLevel())) or decode(*a)
        )
        write_image(
            tmp_path / "a.png", Image(rgb=np.zeros((4, 4, 3), np.float32), alpha=None, bit_depth=8, grayscale=False)
        )
        read_image(tmp_path / "a.png")
        assert inside and set(inside) == {(1, log.LOG_LEVEL_SILENT)}
        assert (cv2.getNumThreads(), log.getLogLevel()) == (2, log.LOG_LEVEL_WARNING)
    finally:
        cv2.setNumThreads(threads)
        log.setLogLevel(level)


def test_overlapping_tiff_reads_leave_tifffiles_logger_as_it_was():
    """Threads restoring TIFFs through one Restorer overlap: a plain save and restore of the logger's switch left it
    off for the rest of the process when the first reader left before the second."""
    import logging

    from darkir.image_header import quiet_tifffile

    logger = logging.getLogger("tifffile")
    assert not logger.disabled
    first, second = quiet_tifffile(), quiet_tifffile()
    first.__enter__()
    second.__enter__()
    assert logger.disabled
    first.__exit__(None, None, None)
    assert logger.disabled  # the second reader is still inside
    second.__exit__(None, None, None)
    assert not logger.disabled


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_a_float_tiff_of_any_width_is_read_as_float32(tmp_path, dtype):
    """A float64 RGB TIFF was refused ("unsupported sample type float64"): OpenCV decodes it before tifffile, whose
    reader was the one that converted float64 to float32."""
    import tifffile

    from darkir.imageio import read_image

    samples = np.random.default_rng(0).random((24, 40, 3)).astype(dtype)
    tifffile.imwrite(tmp_path / "f.tif", samples)
    image = read_image(tmp_path / "f.tif")
    assert image.rgb.dtype == np.float32 and image.bit_depth == 32
    assert np.allclose(image.rgb, samples.astype(np.float32), atol=1e-6)


def test_a_file_larger_than_opencv_decodes_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A 64x48 PNG followed by 3 GB (of anything) was read whole (39 s, 3.5 GB of memory) and then failed in an
    OpenCV assertion (``buf.checkVector(1, CV_8U) > 0``): OpenCV decodes buffers of at most 2 GiB. (Found by an
    outside test.) The file here is sparse: its size costs no disk and, refused unread, no time."""
    path = tmp_path / "padded.png"
    cv2.imwrite(str(path), _rgb(48, 64))
    with open(path, "r+b") as file:
        file.truncate(2**31)
    read = []
    monkeypatch.setattr(np, "fromfile", lambda *args, **kwargs: read.append(args))
    with pytest.raises(
        ImageReadError, match=r"padded\.png: its file holds 2\.0 GiB, more than the 2 GiB darkir decodes"
    ):
        read_image(path)
    assert read == []


def test_tiffs_past_what_opencv_decodes_go_to_tifffile_where_it_reads_them(tmp_path, monkeypatch):
    """Past OpenCV's limit (lowered here), a gray or RGB TIFF is read by tifffile, the same pixels; a CMYK one, which
    only OpenCV reads, was "corrupt or not a TIF file": its size is named (found in review)."""
    import darkir.imageio

    rgb, cmyk = tmp_path / "rgb.tif", tmp_path / "cmyk.tif"
    samples = (np.dstack([_rgb(40, 48), _rgb(40, 48, seed=1)]) * 255).astype(np.uint8)
    PILImage.fromarray(samples[:, :, :3]).save(rgb)
    PILImage.fromarray(samples[:, :, :4], "CMYK").save(cmyk)
    whole = read_image(rgb).rgb
    monkeypatch.setattr(darkir.imageio, "OPENCV_MAX_BYTES", 1000)
    assert np.array_equal(read_image(rgb).rgb, whole)
    with pytest.raises(ImageReadError, match=r"cmyk\.tif: its file holds 0\.0 GiB, more than the 2 GiB darkir decodes"):
        read_image(cmyk)
