"""A photo's ICC profile, EXIF block and resolution survive restoration into JPEG and PNG outputs (the EXIF
orientation set to 1, as the pixels are turned upright); TIFF and WebP outputs, which drop them, say so."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms

from darkir.cli import main
from darkir.errors import DarkIRWarning
from darkir.image_metadata import Metadata, _for_restored
from darkir.imageio import Image, read_image, write_image

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MAKE, DATE, ORIENTATION = 0x010F, 0x0132, 0x0112


def make_photo(path, orientation: int = 6, dpi: int = 300) -> np.ndarray:
    """A camera-like photo at ``path``: an ICC profile, EXIF (camera, date, ``orientation``) and ``dpi``."""
    exif = PILImage.Exif()
    exif[ORIENTATION], exif[MAKE], exif[DATE] = orientation, "NightCam", "2026:01:02 03:04:05"
    pixels = (np.random.default_rng(0).random((30, 40, 3)) * 60).astype(np.uint8)
    PILImage.fromarray(pixels).save(path, icc_profile=ICC, dpi=(dpi, dpi), exif=exif.tobytes())
    return pixels


def metadata_of(path) -> tuple[bytes | None, dict[int, object], tuple[float, float] | None]:
    with PILImage.open(path) as image:
        exif = image.getexif()
        return (
            image.info.get("icc_profile"),
            {tag: exif.get(tag) for tag in (MAKE, DATE, ORIENTATION)},
            image.info.get("dpi"),
        )


@pytest.mark.parametrize(
    ("source", "target"), [("a.jpg", "a.jpg"), ("a.png", "a.png"), ("a.jpg", "a.png"), ("a.png", "a.jpg")]
)
def test_profile_exif_and_resolution_are_kept(tmp_path, source, target):
    make_photo(tmp_path / source)
    image = read_image(tmp_path / source)
    assert image.rgb.shape[:2] == (40, 30)  # turned upright
    write_image(tmp_path / f"out-{target}", image)
    icc, exif, dpi = metadata_of(tmp_path / f"out-{target}")
    assert icc == ICC
    assert exif == {MAKE: "NightCam", DATE: "2026:01:02 03:04:05", ORIENTATION: 1}
    assert dpi is not None and np.allclose(dpi, (300, 300), atol=0.05)
    assert read_image(tmp_path / f"out-{target}").rgb.shape[:2] == (40, 30)  # not turned a second time


def test_darkir_restore_keeps_them(tmp_path, tiny_checkpoint):
    make_photo(tmp_path / "in.jpg")
    assert (
        main(
            ["restore", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "-q"]
        )
        == 0
    )
    icc, exif, _ = metadata_of(tmp_path / "out" / "in.jpg")
    assert icc == ICC and exif[MAKE] == "NightCam" and exif[ORIENTATION] == 1


@pytest.mark.parametrize("order", ["<", ">"])
def test_only_the_orientation_and_the_thumbnail_link_change_in_either_byte_order(order):
    """A TIFF-structured EXIF block of either byte order: the orientation entry becomes 1 and the link to the second
    IFD (the input's thumbnail) 0; every other byte stays."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    entries = [(MAKE, 2, 4, b"Cam\x00"), (ORIENTATION, 3, 1, struct.pack(order + "HH", 8, 0))]
    block = magic + struct.pack(order + "IH", 8, len(entries))
    block += b"".join(struct.pack(order + "HHI", tag, kind, count) + value for tag, kind, count, value in entries)
    block += struct.pack(order + "IH", len(block) + 4, 0)  # a (here empty) second IFD right after the first
    restored = _for_restored(block)
    assert restored is not None and len(restored) == len(block)
    orientation, link = 10 + 12 + 8, 10 + 2 * 12
    assert struct.unpack_from(order + "H", restored, orientation)[0] == 1
    assert struct.unpack_from(order + "I", restored, link)[0] == 0
    changed = {i for i, (a, b) in enumerate(zip(block, restored, strict=True)) if a != b}
    assert changed and changed <= {orientation, orientation + 1, *range(link, link + 4)}
    assert _for_restored(b"not a tiff block") is None


@pytest.mark.parametrize("suffix", [".tif", ".webp"])
def test_formats_that_drop_them_say_so(tmp_path, suffix):
    make_photo(tmp_path / "a.jpg")
    with pytest.warns(DarkIRWarning, match="outputs keep no ICC profile or EXIF"):
        write_image(tmp_path / f"a{suffix}", read_image(tmp_path / "a.jpg"))


@pytest.mark.parametrize("suffix", [".tif", ".webp", ".bmp"])
def test_formats_that_drop_a_resolution_say_so(tmp_path, suffix):
    """A 300 dpi image written as TIFF, WebP or BMP lost its resolution without the warning the docs promise (only
    an ICC profile or EXIF was warned of)."""
    pixels = (np.random.default_rng(1).random((8, 9, 3)) * 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "print.png", dpi=(300, 300))
    with pytest.warns(DarkIRWarning, match=r"outputs keep no resolution \(dpi\)"):
        write_image(tmp_path / f"print{suffix}", read_image(tmp_path / "print.png"))


def test_an_image_without_them_is_written_as_before(tmp_path):
    pixels = (np.random.default_rng(1).random((8, 9, 3)) * 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "plain.png")
    image = read_image(tmp_path / "plain.png")
    assert image.metadata is None
    write_image(tmp_path / "out.png", image)
    icc, exif, dpi = metadata_of(tmp_path / "out.png")
    assert icc is None and exif == {MAKE: None, DATE: None, ORIENTATION: None} and dpi is None


def test_a_pil_image_restored_through_the_api_keeps_its_info(tmp_path, tiny_checkpoint):
    """A PIL image comes back of the same size, unturned (Pillow applies no orientation), with its profile, EXIF and
    dpi, so that saving it as Pillow users do (``exif=image.info["exif"]``, ...) keeps them."""
    from darkir.infer import Restorer
    from darkir.models.factory import load_model

    make_photo(tmp_path / "a.jpg")
    with PILImage.open(tmp_path / "a.jpg") as photo:
        restored = Restorer(load_model(tiny_checkpoint), device="cpu", tile=0)(photo)
        assert restored.size == photo.size and restored.info["exif"] == photo.info["exif"]
    restored.save(tmp_path / "b.jpg", **{key: restored.info[key] for key in ("icc_profile", "exif", "dpi")})
    icc, exif, dpi = metadata_of(tmp_path / "b.jpg")
    assert icc == ICC and exif[MAKE] == "NightCam" and exif[ORIENTATION] == 6
    assert dpi is not None and np.allclose(dpi, (300, 300), atol=0.05)


def test_an_orientation_of_any_type_becomes_one_short_1(tmp_path):
    """An orientation stored as a LONG (Pillow turns the pixels by it all the same) must not be left at 6: viewers
    would turn the upright output a second time."""
    long_six = b"Exif\x00\x00II*\x00" + struct.pack("<IHHHII", 8, 1, ORIENTATION, 4, 1, 6) + struct.pack("<I", 0)
    PILImage.fromarray(np.zeros((8, 12, 3), np.uint8)).save(tmp_path / "a.jpg", exif=long_six)
    image = read_image(tmp_path / "a.jpg")
    assert image.rgb.shape[:2] == (12, 8)
    write_image(tmp_path / "b.jpg", image)
    assert metadata_of(tmp_path / "b.jpg")[1][ORIENTATION] == 1


def test_a_resolution_the_file_does_not_state_is_not_written(tmp_path):
    """Pillow makes up 1 dpi for a TIFF and 72 for a JPEG that state none: the outputs state none either."""
    pixels = np.zeros((8, 12, 3), np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "a.tif")
    PILImage.fromarray(pixels).save(tmp_path / "b.jpg", exif=PILImage.Exif().tobytes())
    for name in ("a.tif", "b.jpg"):
        write_image(tmp_path / f"out-{name}.png", read_image(tmp_path / name))
        assert metadata_of(tmp_path / f"out-{name}.png")[2] is None


def test_a_cmyk_profile_is_not_put_on_the_rgb_image_read_from_it(tmp_path):
    cmyk_icc = (struct.pack(">I", 256) + b"none\x02\x10\x00\x00mntrCMYKXYZ " + bytes(12) + b"acsp").ljust(256, b"\x00")
    PILImage.fromarray(np.zeros((8, 12, 4), np.uint8), "CMYK").save(tmp_path / "c.jpg", icc_profile=cmyk_icc)
    with pytest.warns(DarkIRWarning, match=r"c\.jpg: its ICC profile is for CMYK, the image darkir reads is RGB"):
        image = read_image(tmp_path / "c.jpg")
    write_image(tmp_path / "c.png", image)
    assert metadata_of(tmp_path / "c.png")[0] is None


def test_the_api_drops_a_profile_for_another_colour_space_as_the_command_line_does(tmp_path, tiny_checkpoint):
    """A gray PIL image made from an RGB photo keeps the photo's RGB profile in ``info``: the API restored it with
    that profile, which viewers misread, where ``darkir restore`` of the same image saved drops it and warns."""
    from darkir.infer import Restorer
    from darkir.models.factory import load_model

    make_photo(tmp_path / "a.jpg")
    with PILImage.open(tmp_path / "a.jpg") as photo:
        gray = photo.convert("L")
    assert gray.info["icc_profile"] == ICC
    restorer = Restorer(load_model(tiny_checkpoint), device="cpu", tile=0)
    with pytest.warns(DarkIRWarning, match="its ICC profile is for RGB, the image darkir reads is gray"):
        restored = restorer(gray)
    assert "icc_profile" not in restored.info and restored.mode == "L"
    with PILImage.open(tmp_path / "a.jpg") as photo:
        assert restorer(photo).info["icc_profile"] == ICC  # a profile that fits is kept


def test_bytes_that_are_no_icc_profile_are_named_so(tmp_path):
    PILImage.fromarray(np.zeros((8, 12, 3), np.uint8)).save(tmp_path / "a.png", icc_profile=b"not a profile" * 10)
    with pytest.warns(DarkIRWarning, match="its ICC profile is for an unknown colour space"):
        read_image(tmp_path / "a.png")


def test_metadata_a_jpeg_cannot_hold_is_dropped_with_a_warning(tmp_path):
    exif = b"II*\x00" + struct.pack("<IH", 8, 0) + bytes(4) + b"x" * 70000
    pixels = np.zeros((8, 12, 3), np.float32)
    image = Image(rgb=pixels, alpha=None, bit_depth=8, grayscale=False, metadata=Metadata(exif=exif))
    with pytest.warns(DarkIRWarning, match=r"JPEG cannot hold an EXIF block of 70014 bytes"):
        write_image(tmp_path / "a.jpg", image)
    write_image(tmp_path / "a.png", image)
    with PILImage.open(tmp_path / "a.png") as written:
        assert len(written.getexif()) == 0 and written.info.get("exif", b"").endswith(b"x" * 100)


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'xmp:Rating="4" tiff:Orientation="6"><tiff:Orientation rdf:parseType="Literal"> 8 </tiff:Orientation>'
    b"</rdf:Description></rdf:RDF>"
    b"</x:xmpmeta>"
)


def _with_xmp(path, packet: bytes = XMP) -> None:
    """A photo at ``path`` whose XMP packet (a rating, an orientation) is stored as its format stores one."""
    from PIL import PngImagePlugin, TiffImagePlugin

    pixels = PILImage.fromarray((np.random.default_rng(0).random((30, 40, 3)) * 60).astype(np.uint8))
    if path.suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode())
        pixels.save(path, pnginfo=info)
    elif path.suffix == ".tif":
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[700], tags.tagtype[700] = packet, 1
        pixels.save(path, tiffinfo=tags)
    else:
        pixels.save(path, xmp=packet)


@pytest.mark.parametrize("source", ["a.jpg", "a.png", "a.webp", "a.tif"])
@pytest.mark.parametrize("target", ["b.jpg", "b.png"])
def test_the_xmp_packet_is_kept_with_its_orientation_set_upright(tmp_path, source, target):
    """Ratings, keywords and captions (XMP) were dropped without a word; its orientation must not turn the upright
    pixels a second time."""
    _with_xmp(tmp_path / source)
    write_image(tmp_path / target, read_image(tmp_path / source))
    with PILImage.open(tmp_path / target) as image:
        kept = image.info["xmp"]
    assert b'xmp:Rating="4"' in kept and b'tiff:Orientation="1"' in kept and b'parseType="Literal"> 1 <' in kept
    assert kept == XMP.replace(b'Orientation="6"', b'Orientation="1"').replace(b"> 8 <", b"> 1 <")


def test_outputs_that_drop_the_xmp_packet_say_so(tmp_path):
    _with_xmp(tmp_path / "a.png")
    with pytest.warns(DarkIRWarning, match=r"TIF outputs keep no XMP"):
        write_image(tmp_path / "b.tif", read_image(tmp_path / "a.png"))
    _with_xmp(tmp_path / "big.png", XMP.replace(b'xmp:Rating="4"', b'xmp:Label="' + b"x" * 70000 + b'"'))
    with pytest.warns(DarkIRWarning, match=r"JPEG cannot hold an XMP packet of \d+ bytes \(at most 65504\)"):
        write_image(tmp_path / "big.jpg", read_image(tmp_path / "big.png"))
    with PILImage.open(tmp_path / "big.jpg") as image:
        assert "xmp" not in image.info
