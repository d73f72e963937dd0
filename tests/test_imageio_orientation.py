"""Every format is turned by its orientation tag exactly once, and gray + alpha stays gray + alpha.

OpenCV's TIFF decoder applies the TIFF orientation tag itself (its other decoders ignore EXIF in unchanged
mode); OpenCV widens gray + alpha PNGs to BGRA and cuts gray + alpha TIFFs to gray.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from darkir.data.pairs import Pair, check_pairs
from darkir.image_header import Header, read_header
from darkir.imageio import Image, ImageReadError, image_from_array, image_to_array, read_image, write_image

HEIGHT, WIDTH = 48, 64
#: Where the stored top-left marker is seen, and the displayed (height, width), for each EXIF/TIFF orientation.
SEEN = {
    1: ("TL", (HEIGHT, WIDTH)),
    2: ("TR", (HEIGHT, WIDTH)),
    3: ("BR", (HEIGHT, WIDTH)),
    4: ("BL", (HEIGHT, WIDTH)),
    5: ("TL", (WIDTH, HEIGHT)),
    6: ("TR", (WIDTH, HEIGHT)),
    7: ("BR", (WIDTH, HEIGHT)),
    8: ("BL", (WIDTH, HEIGHT)),
}
TRANSPOSES = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}
#: (suffix, Pillow mode) that Pillow writes with an orientation tag.
PIL_CASES = [
    (".tif", "RGB"),
    (".tif", "RGBA"),
    (".tif", "L"),
    (".tif", "LA"),
    (".tif", "I;16"),
    (".jpg", "RGB"),
    (".png", "RGB"),
    (".png", "RGBA"),
    (".png", "LA"),
    (".webp", "RGB"),
    (".webp", "RGBA"),
]


def _marked(mode: str = "RGB", height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A dark image of Pillow ``mode`` with a bright 6x6 marker in its stored top-left corner (alpha varies)."""
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2, "I;16": 1}[mode]
    peak = 65535 if mode == "I;16" else 255
    array = np.full((height, width, channels), peak // 12, np.uint16 if mode == "I;16" else np.uint8)
    array[:6, :6, : 3 if channels >= 3 else 1] = peak
    if channels in (2, 4):
        array[:, :, -1] = np.linspace(40, 250, width).astype(np.uint8)
    return array[:, :, 0] if channels == 1 else array


def _gray_alpha(array: np.ndarray) -> Image:
    """An :class:`Image` of an (H, W, 2) gray + alpha integer array (image_from_array takes no such shape)."""
    scale = float(np.iinfo(array.dtype).max)
    gray = array[:, :, 0].astype(np.float32) / scale
    alpha = array[:, :, 1].astype(np.float32) / scale
    return Image(rgb=np.repeat(gray[:, :, None], 3, 2), alpha=alpha, bit_depth=8 * array.dtype.itemsize, grayscale=True)


def _samples(image: Image, dtype: type = np.uint8) -> np.ndarray:
    """The samples of ``image``: gray + alpha as (H, W, 2), as Pillow holds LA; others as image_to_array gives them."""
    array = image_to_array(image, dtype)
    if image.grayscale and image.alpha is not None:
        assert np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(array[:, :, 0], array[:, :, 2])
        return array[:, :, [0, 3]]
    return array


def _corner(plane: np.ndarray) -> tuple[str, tuple[int, int]]:
    """Which quadrant the brightest pixel of an (H, W) plane is in, and the plane's shape."""
    row, column = np.unravel_index(np.argmax(plane), plane.shape)
    height, width = plane.shape
    return ("T" if row < height / 2 else "B") + ("L" if column < width / 2 else "R"), (height, width)


def _save_pil(path: Path, array: np.ndarray, orientation: int, **options: object) -> None:
    image = PILImage.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    options.update({"jpg": {"quality": 100}, "webp": {"lossless": True}}.get(path.suffix[1:], {}))
    image.save(path, exif=exif if path.suffix == ".tif" else exif.tobytes(), **options)


def _displayed(stored: np.ndarray, orientation: int) -> np.ndarray:
    """``stored`` as displayed, by the Pillow transpose that ImageOps.exif_transpose uses for ``orientation``
    (not by loading the file: Pillow 12 turns TIFFs as it loads them, wrongly for some modes)."""
    image = PILImage.fromarray(stored)
    return np.asarray(image.transpose(TRANSPOSES[orientation]) if orientation in TRANSPOSES else image)


def _tiff(array: np.ndarray, orientation: int = 1) -> bytes:
    """A little-endian, uncompressed, one-strip TIFF of an (H, W[, C]) uint8/uint16 array (Pillow writes no
    16-bit colour or gray + alpha TIFF); extra samples are unassociated alpha."""
    height, width = array.shape[:2]
    samples = 1 if array.ndim == 2 else array.shape[2]
    pixels = array.astype(array.dtype.newbyteorder("<")).tobytes()
    ifd_offset = 8 + len(pixels) + len(pixels) % 2
    tags = [
        (256, 4, [width]),
        (257, 4, [height]),
        (258, 3, [8 * array.dtype.itemsize] * samples),
        (259, 3, [1]),
        (262, 3, [2 if samples >= 3 else 1]),
        (273, 4, [8]),
        (274, 3, [orientation]),
        (277, 3, [samples]),
        (278, 4, [height]),
        (279, 4, [len(pixels)]),
        (284, 3, [1]),
    ]
    if samples in (2, 4):
        tags.append((338, 3, [2]))
    values_offset = ifd_offset + 2 + 12 * len(tags) + 4
    entries, values = b"", b""
    for tag, kind, items in tags:
        packed = struct.pack(f"<{len(items)}{'H' if kind == 3 else 'I'}", *items)
        if len(packed) <= 4:
            entries += struct.pack("<HHI", tag, kind, len(items)) + packed.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, kind, len(items), values_offset + len(values))
            values += packed
    body = pixels + b"\0" * (len(pixels) % 2)
    return b"II*\0" + struct.pack("<I", ifd_offset) + body + struct.pack("<H", len(tags)) + entries + bytes(4) + values


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("suffix", "mode"), PIL_CASES)
def test_orientation_is_applied_once(tmp_path, suffix, mode, orientation):
    source, stored = tmp_path / f"in{suffix}", _marked(mode)
    _save_pil(source, stored, orientation)
    image = read_image(source)
    assert _corner(image.rgb[:, :, 0]) == SEEN[orientation]
    assert image.grayscale == (mode in ("L", "LA", "I;16"))
    assert (image.alpha is not None) == (mode in ("RGBA", "LA"))
    header = read_header(source)
    assert header is not None and header.orientation == orientation
    expected = _displayed(stored, orientation)
    array = _samples(image, expected.dtype)
    if suffix != ".jpg":
        np.testing.assert_array_equal(array, expected)
    out = tmp_path / f"out{suffix}"
    write_image(out, image)  # written as displayed, without an orientation tag
    with PILImage.open(out) as written:
        assert written.mode == mode and written.getexif().get(0x0112, 1) == 1
        if suffix != ".jpg":
            np.testing.assert_array_equal(np.asarray(written), expected)
    again = read_image(out)
    assert _corner(again.rgb[:, :, 0]) == SEEN[orientation]
    assert again.grayscale == image.grayscale and (again.alpha is None) == (image.alpha is None)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_colour_tiff_orientation(tmp_path, orientation):
    """OpenCV turns 16-bit TIFFs by another code path than 8-bit ones."""
    marked = _marked("RGB")
    (tmp_path / "deep.tif").write_bytes(_tiff(marked.astype(np.uint16) * 257, orientation))
    _save_pil(tmp_path / "flat.tif", marked, orientation)
    deep = read_image(tmp_path / "deep.tif")
    assert deep.bit_depth == 16 and _corner(deep.rgb[:, :, 0]) == SEEN[orientation]
    np.testing.assert_allclose(deep.rgb, read_image(tmp_path / "flat.tif").rgb, atol=1e-6)


def test_multi_strip_tiff_orientation(tmp_path):
    """Pillow writes a larger 8-bit TIFF in several strips, which OpenCV reads and turns strip by strip."""
    path, stored = tmp_path / "big.tif", _marked("RGB", 300, 200)
    _save_pil(path, stored, 7)
    image = read_image(path)
    assert _corner(image.rgb[:, :, 0]) == ("BR", (200, 300))
    np.testing.assert_array_equal(image_to_array(image), _displayed(stored, 7))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_compressed_alpha_tiff_orientation(tmp_path, mode, orientation):
    """Pillow decodes compressed TIFFs through libtiff, another path than uncompressed ones."""
    path, stored = tmp_path / "lzw.tif", _marked(mode)
    _save_pil(path, stored, orientation, compression="tiff_lzw")
    image = read_image(path)
    assert _corner(image.rgb[:, :, 0]) == SEEN[orientation]
    np.testing.assert_array_equal(_samples(image), _displayed(stored, orientation))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_bigtiff_alpha_orientation(tmp_path, mode, orientation):
    """A BigTIFF (8-byte offsets, 20-byte IFD entries) decoded by Pillow is turned once, as a classic TIFF is."""
    path, stored = tmp_path / "big.tif", _marked(mode)
    _save_pil(path, stored, orientation, big_tiff=True)
    assert path.read_bytes()[:4] == b"II+\x00"
    image = read_image(path)
    assert _corner(image.rgb[:, :, 0]) == SEEN[orientation]
    np.testing.assert_array_equal(_samples(image), _displayed(stored, orientation))


def test_header_sizes_agree_with_decoded_sizes(tmp_path):
    """The size check of pairs reads headers only; it must see the size that read_image returns."""
    low, low16 = tmp_path / "low.tif", tmp_path / "low16.tif"
    _save_pil(low, _marked("RGB"), 6)
    low16.write_bytes(_tiff(_marked("RGB").astype(np.uint16), 8))
    high = tmp_path / "high.png"
    cv2.imwrite(str(high), np.zeros((WIDTH, HEIGHT, 3), np.uint8))  # the displayed size: 48 wide, 64 high
    for path in (low, low16):
        assert read_image(path).rgb.shape[:2] == (WIDTH, HEIGHT)
        assert read_header(path) == Header(WIDTH, HEIGHT, 1, 6 if path == low else 8)  # as stored
        assert check_pairs([Pair(path, high, path.name)]) == []
    wrong = tmp_path / "wrong.png"
    cv2.imwrite(str(wrong), np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    assert "size 48x64 but reference" in check_pairs([Pair(low, wrong, "low.tif")])[0]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_8bit_gray_alpha_round_trip(tmp_path, suffix):
    source = tmp_path / f"la{suffix}"
    array = _marked("LA")
    PILImage.fromarray(array).save(source)
    image = read_image(source)
    assert image.grayscale and image.bit_depth == 8 and image.alpha is not None
    np.testing.assert_array_equal(np.rint(image.alpha * 255), array[:, :, 1])
    np.testing.assert_array_equal(_samples(image), array)
    out = tmp_path / f"out{suffix}"
    write_image(out, image)
    with PILImage.open(out) as written:
        assert written.mode == "LA"
        np.testing.assert_array_equal(np.asarray(written), array)


def test_16bit_gray_alpha_png_round_trip(tmp_path):
    array = np.dstack([np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) * 21, np.full((HEIGHT, WIDTH), 40000)])
    array = array.astype(np.uint16)
    path = tmp_path / "la16.png"
    write_image(path, _gray_alpha(array))
    data = path.read_bytes()
    assert data[24:26] == bytes([16, 4])  # IHDR: 16 bits, colour type 4 (gray + alpha)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # libpng, widened to BGRA
    np.testing.assert_array_equal(decoded[:, :, [0, 3]], array)
    back = read_image(path)
    assert back.grayscale and back.bit_depth == 16
    np.testing.assert_array_equal(_samples(back, np.uint16), array)
    write_image(tmp_path / "again.png", back)
    assert (tmp_path / "again.png").read_bytes()[24:26] == bytes([16, 4])


def test_16bit_gray_alpha_tiff_is_refused_not_cut(tmp_path):
    """OpenCV reads it as 8-bit gray without alpha and Pillow not at all: say so rather than lose both."""
    path = tmp_path / "la16.tif"
    path.write_bytes(_tiff(_marked("LA").astype(np.uint16) * 257))
    with pytest.raises(ImageReadError, match="gray \\+ alpha TIFF") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_16bit_gray_alpha_to_tiff_keeps_alpha_and_depth(tmp_path):
    array = (_marked("LA").astype(np.uint16) * 257)[:, :, :2]
    write_image(tmp_path / "out.tif", _gray_alpha(array))
    back = read_image(tmp_path / "out.tif")
    assert back.bit_depth == 16 and back.alpha is not None
    np.testing.assert_array_equal(np.rint(back.alpha * 65535), array[:, :, 1])


@pytest.mark.parametrize(("suffix", "shape"), [(".webp", (HEIGHT, WIDTH, 4)), (".jpg", (HEIGHT, WIDTH))])
def test_gray_alpha_to_formats_without_it(tmp_path, suffix, shape):
    path = tmp_path / f"out{suffix}"
    write_image(path, _gray_alpha(_marked("LA")))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == shape


def test_gray_png_transparency_is_kept(tmp_path):
    array = np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH).astype(np.uint8)
    path = tmp_path / "trns.png"
    PILImage.fromarray(array).save(path, transparency=7)
    image = read_image(path)
    assert image.grayscale and image.alpha is not None
    np.testing.assert_array_equal(image.alpha == 0, array == 7)
    write_image(tmp_path / "out.png", image)
    with PILImage.open(tmp_path / "out.png") as written:
        assert written.mode == "LA"
        np.testing.assert_array_equal(np.asarray(written)[:, :, 1], np.where(array == 7, 0, 255))


def test_big_endian_arrays():
    big = (np.arange(12).reshape(3, 4) * 5000).astype(">u2")
    image = image_from_array(big)
    assert image.bit_depth == 16
    back = image_to_array(image, big.dtype)
    assert back.dtype == big.dtype
    np.testing.assert_array_equal(back, big)


def test_corrupt_png_is_reported_once(tmp_path, capfd):
    path = tmp_path / "bad.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the image data
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="CRC error in its IDAT chunk") as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert "libpng" not in capfd.readouterr().err


@pytest.mark.parametrize(("cut", "named"), [(-12, "before its IEND chunk"), (-200, "inside its IDAT chunk")])
def test_truncated_png_is_reported_once(tmp_path, capfd, cut, named):
    """libpng printed "libpng error: PNG input buffer is incomplete" beside darkir's own message."""
    path = tmp_path / "cut.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ImageReadError, match=f"{path}: cannot decode image \\(truncated PNG: the file ends {named}\\)"):
        read_image(path)
    assert "libpng" not in capfd.readouterr().err


def test_restore_keeps_orientation_and_gray_alpha(tmp_path, tiny_checkpoint):
    from darkir.cli import main

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    marked = _marked("RGB")
    _save_pil(folder / "turned.tif", marked, 6)
    cv2.imwrite(str(folder / "upright.png"), np.rot90(marked, -1)[:, :, ::-1])  # as displayed, no tag
    la = _marked("LA")
    PILImage.fromarray(la).save(folder / "la.png")
    PILImage.fromarray(la).save(folder / "la.tif")
    assert main(["restore", str(folder), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    turned = cv2.imread(str(out / "turned.tif"), cv2.IMREAD_UNCHANGED)
    upright = cv2.imread(str(out / "upright.png"), cv2.IMREAD_UNCHANGED)
    assert turned.shape == upright.shape == (WIDTH, HEIGHT, 3)
    assert np.abs(turned.astype(int) - upright).max() <= 2
    for name in ("la.png", "la.tif"):
        with PILImage.open(out / name) as written:
            assert written.mode == "LA" and written.size == (WIDTH, HEIGHT)
            np.testing.assert_array_equal(np.asarray(written)[:, :, 1], la[:, :, 1])  # alpha passed through


def test_image_dataclass_gray_alpha_write(tmp_path):
    """An Image built by hand (gray + alpha) is written as gray + alpha too."""
    rgb = np.repeat(np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None], HEIGHT, 0).repeat(3, 2)
    alpha = np.full((HEIGHT, WIDTH), 0.5, np.float32)
    write_image(tmp_path / "hand.png", Image(rgb=rgb, alpha=alpha, bit_depth=8, grayscale=True))
    with PILImage.open(tmp_path / "hand.png") as written:
        assert written.mode == "LA"
