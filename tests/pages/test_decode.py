"""decode_image: every odd input gives the right pixels (in BGR, upright) or a coded error."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from tests import fixtures_images as fx
from pages.decode import ImageDecodeError, decode_image

LIMIT = 100_000_000
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SHARED_DATA = SHARED / "data"
RAPIDOCR_FILES = SHARED_DATA / "rapidocr" / "test_files"


def cv2_decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def decode_error(data: bytes, max_pixels: int = LIMIT) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, max_pixels)
    assert "\n" not in str(info.value)
    return info.value


def assert_marker_upright(image: np.ndarray) -> None:
    """marker_rgb's layout: 60x100, dark square at the top-left only, light elsewhere."""
    assert image.shape == (60, 100, 3) and image.dtype == np.uint8
    m = fx.MARKER
    assert image[:m, :m].mean() < 40
    for corner in (image[:m, -m:], image[-m:, :m], image[-m:, -m:]):
        assert corner.mean() > 215


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [fx.random_bytes(), fx.pdf_named_jpg(), fx.svg_named_jpg(), b"GIF8"],
                         ids=["random", "pdf", "svg", "4-byte-gif-magic"])
def test_unrecognised_bytes_are_decode_errors(data: bytes) -> None:
    err = decode_error(data)
    assert err.code == "decode_error"


@pytest.mark.parametrize(("data", "hint"), [(fx.pdf_named_jpg(), "PDF"), (fx.svg_named_jpg(), "SVG")])
def test_message_says_what_the_bytes_look_like(data: bytes, hint: str) -> None:
    message = str(decode_error(data))
    assert "not recognised" in message and hint in message


def test_zero_bytes() -> None:
    err = decode_error(fx.zero_bytes())
    assert err.code == "decode_error" and "empty" in str(err)


@pytest.mark.parametrize("data", [fx.truncated_jpeg(), fx.jpeg()[:-2], fx.truncated_png()],
                         ids=["jpeg-half", "jpeg-without-eoi", "png-half"])
def test_truncated_files_are_decode_errors(data: bytes) -> None:
    assert decode_error(data).code == "decode_error"


def test_truncated_jpeg_is_refused_even_when_pillow_is_told_to_accept_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CMYK JPEG goes through Pillow, which fills in missing data when this global is set."""
    data = fx.truncated_cmyk_jpeg()
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert decode_error(data).code == "decode_error"


def test_bytes_after_the_end_of_a_jpeg_are_tolerated() -> None:
    data = fx.jpeg() + b"\x00trailing junk" * 10
    np.testing.assert_array_equal(decode_image(data, LIMIT), cv2_decode(fx.jpeg()))


def test_corrupt_compressed_data_is_a_decode_error() -> None:
    """Pillow raises assorted exception classes for corrupt streams; none may escape."""
    data = bytearray(fx.palette_png())
    start = data.index(b"IDAT") + 4
    data[start:start + 8] = b"\xff" * 8
    err = decode_error(bytes(data))
    assert err.code == "decode_error" and err.args[0]


def test_declared_size_over_the_limit_is_refused_before_decoding() -> None:
    """The crafted PNG holds one row of pixel data, so decoding it would be a decode_error:
    too_large proves the check ran on the header alone."""
    err = decode_error(fx.png_huge_header(3000, 3000), max_pixels=1_000_000)
    assert err.code == "too_large" and "3000x3000" in str(err)


def test_pillow_decompression_bomb_guard_is_too_large() -> None:
    assert decode_error(fx.png_huge_header(100_000, 100_000), max_pixels=10**12).code == "too_large"


def tiff_huge_header(width: int, height: int) -> bytes:
    """An uncompressed grey TIFF whose tags declare width x height but whose one strip holds a
    single byte. Pillow checks a TIFF's size when opening it and again when loading it: the two
    places decode_image calls Pillow."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "TIFF")
    data = bytearray(out.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    longs = {256: width, 257: height, 278: height}  # ImageWidth, ImageLength, RowsPerStrip
    for entry in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from("<H", data, ifd)[0], 12):
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in longs:
            assert kind == 4  # LONG, so the value fits in place
            struct.pack_into("<I", data, entry + 8, longs[tag])
    return bytes(data)


@pytest.mark.parametrize(("data", "max_pixels", "code"), [
    (fx.png_huge_header(10_000, 9_500), LIMIT, "decode_error"),
    (fx.png_huge_header(10_000, 9_500), 1_000_000, "too_large"),
    (tiff_huge_header(10_000, 9_500), LIMIT, "decode_error"),
], ids=["png-within-limit", "png-over-limit", "tiff-within-limit"])
def test_pillows_bomb_warning_does_not_leak(data: bytes, max_pixels: int, code: str) -> None:
    """95 MP is above Image.MAX_IMAGE_PIXELS (~89 MP: Pillow warns, on stderr) and below twice
    it (Pillow's error). Our own limit decides, within it or over it, and nothing is warned.
    The accepted images still fail, on their missing pixel data, after Pillow saw their size."""
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(io.BytesIO(data))  # the input does make Pillow warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert decode_error(data, max_pixels).code == code
    assert [str(w.message) for w in caught] == []


def test_limit_is_inclusive() -> None:
    data = fx.encode(fx.marker_rgb(), "PNG")
    assert decode_image(data, 6000).shape == (60, 100, 3)
    assert decode_error(data, max_pixels=5999).code == "too_large"


# --- formats and modes ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF", "JPEG2000"])
def test_lossless_formats_give_exact_pixels_in_bgr_order(fmt: str) -> None:
    rgb = fx.noise_rgb()
    params = {"lossless": True} if fmt == "WEBP" else {}
    np.testing.assert_array_equal(decode_image(fx.encode(rgb, fmt, **params), LIMIT), rgb[..., ::-1])


@pytest.mark.parametrize("params", [{}, {"no_jp2": True}], ids=["jp2 file", "bare codestream"])
def test_jpeg2000_grey_and_colour_decode_exactly(params: dict) -> None:
    """JPEG 2000, the master format of many digitisation archives, in its JP2 file and as a
    bare codestream (.j2k), losslessly coded: the exact pixels."""
    rgb = fx.noise_rgb()
    np.testing.assert_array_equal(decode_image(fx.encode(rgb, "JPEG2000", **params), LIMIT), rgb[..., ::-1])
    grey = rgb[..., 0]
    np.testing.assert_array_equal(decode_image(fx.encode(grey, "JPEG2000", **params), LIMIT)[..., 1], grey)


def test_a_cut_jpeg2000_is_a_decode_error() -> None:
    data = fx.encode(fx.noise_rgb(), "JPEG2000")
    for cut in (len(data) // 2, len(data) - 16, 60):
        assert decode_error(data[:cut]).code == "decode_error"


def test_a_jpeg2000_over_the_size_limit_is_refused_from_its_header() -> None:
    assert decode_error(fx.encode(fx.noise_rgb(), "JPEG2000"), max_pixels=10).code == "too_large"


@pytest.mark.parametrize("data", [fx.jpeg(fx.noise_rgb()), fx.grey_jpeg(), fx.encode(fx.noise_rgb(), "PNG"),
                                  fx.grey_png(), fx.rgb16_png()],
                         ids=["jpeg", "grey-jpeg", "png", "grey-png", "rgb16-png"])
def test_plain_jpeg_and_png_are_bit_exact_with_cv2(data: bytes) -> None:
    np.testing.assert_array_equal(decode_image(data, LIMIT), cv2_decode(data))


def test_png_1x1() -> None:
    np.testing.assert_array_equal(decode_image(fx.png_1x1(), LIMIT), [[[30, 20, 10]]])


@pytest.mark.parametrize("data", [fx.jpeg(), fx.grey_jpeg(), fx.grey_png(), fx.one_bit_png(), fx.palette_png(),
                                  fx.webp(), fx.webp(lossless=False), fx.bmp(), fx.multipage_tiff(),
                                  fx.animated_gif(), fx.transparent_gif(), fx.palette_png(transparent=True)],
                         ids=["jpeg", "grey-jpeg", "grey-png", "1-bit", "palette", "webp", "webp-lossy", "bmp",
                              "tiff-first-page", "gif-first-frame", "gif-transparent", "palette-transparent"])
def test_marker_image_in_every_format(data: bytes) -> None:
    assert_marker_upright(decode_image(data, LIMIT))


@pytest.mark.parametrize("orientation", [3, 6])
@pytest.mark.parametrize(("fmt", "params"), [("JPEG", {"quality": 95}), ("WEBP", {"lossless": True})])
def test_exif_orientation_is_applied(orientation: int, fmt: str, params: dict) -> None:
    """JPEG goes through cv2, WebP through Pillow: both must turn the marker upright."""
    assert_marker_upright(decode_image(fx.exif_image(orientation, fmt, **params), LIMIT))


def test_exif_orientation_matches_cv2() -> None:
    data = fx.exif_jpeg(6)
    np.testing.assert_array_equal(decode_image(data, LIMIT), cv2_decode(data))


def test_grey16_is_scaled_not_clipped() -> None:
    image = decode_image(fx.grey16_png((0, 257 * 128, 65535, 1000)), LIMIT)
    assert image.shape == (4, 4, 3)
    np.testing.assert_array_equal(image[0, :, 0], [0, 128, 255, 4])
    assert (image == image[..., :1]).all()


def test_rgb16_png_is_scaled() -> None:
    image = decode_image(fx.rgb16_png(), LIMIT).astype(int)
    expected = np.round(np.array([1000, 30000, 65535]) * 255 / 65535)
    assert np.abs(image - expected).max() <= 1


@pytest.mark.parametrize(("values", "expected"), [
    ((0, 128, 255), [0, 128, 255]),  # 8-bit samples in a 16-bit file
    ((0, 2048, 4095), [0, 128, 255]),  # 12-bit
    ((0, 1000, 4096), [0, 16, 64]),  # past 12 bits: on the 14-bit scale
    ((0, 30000, 40000), [0, 117, 156]),  # 16-bit
])
def test_16bit_grey_is_scaled_by_the_depth_its_samples_use(values: tuple[int, ...], expected: list[int]) -> None:
    image = decode_image(fx.grey16_png(values), LIMIT)
    np.testing.assert_array_equal(image[0, :, 0], expected)


@pytest.mark.parametrize(("values", "mode", "expected"), [
    (np.array([[0, 32896, 65535]], np.uint16), "I;16", [0, 128, 255]),
    (np.array([[0.0, 0.5, 1.0]], np.float32), "F", [0, 128, 255]),
    (np.array([[-50.0, 25.0, 100.0]], np.float32), "F", [0, 128, 255]),
    (np.array([[-1000, 0, 1000]], np.int32), "I", [0, 128, 255]),
], ids=["tiff-16bit", "tiff-float-0-1", "tiff-float-any-range", "tiff-int32-signed"])
def test_high_depth_tiffs_are_scaled_by_their_range(values: np.ndarray, mode: str, expected: list[int]) -> None:
    data = fx.tiff(values)
    assert Image.open(io.BytesIO(data)).mode == mode
    image = decode_image(data, LIMIT)
    np.testing.assert_array_equal(image[0, :, 0], expected)


def test_cmyk_jpeg_converts_to_the_right_colours() -> None:
    data = fx.cmyk_jpeg()
    image = decode_image(data, LIMIT).astype(int)
    columns = [image[:, x:x + 8].reshape(-1, 3).mean(axis=0) for x in (0, 8, 16, 24)]
    expected_bgr = [(255, 255, 0), (0, 0, 0), (255, 255, 255), (127, 127, 64)]
    for got, want in zip(columns, expected_bgr, strict=True):
        assert np.abs(got - want).max() <= 4, (got, want)
    assert np.abs(image - cv2_decode(data)).max() <= 2


def test_dark_content_on_transparency_goes_on_white() -> None:
    image = decode_image(fx.rgba_png(text_rgb=(0, 0, 0)), LIMIT)
    assert_marker_upright(image)


def test_light_content_on_transparency_goes_on_black() -> None:
    image = decode_image(fx.rgba_png(text_rgb=(255, 255, 255), hidden_rgb=(255, 255, 255)), LIMIT)
    m = fx.MARKER
    assert image[:m, :m].min() == 255
    assert image[m:, m:].max() == 0


def test_colour_key_transparency_is_honoured() -> None:
    """cv2 would ignore the tRNS chunk and keep the grey canvas."""
    image = decode_image(fx.rgb_trns_png(), LIMIT)
    m = fx.MARKER
    assert image[:m, :m].min() == 255
    assert image[m:, m:].max() == 0


def test_half_transparent_grey_alpha_is_blended() -> None:
    image = decode_image(fx.la_png(), LIMIT)
    m = fx.MARKER
    assert abs(int(image[0, 0, 0]) - 127) <= 1
    assert image[m:, m:].min() == 255


def test_opaque_rgba_keeps_its_pixels() -> None:
    rgba = np.dstack([fx.noise_rgb(), np.full((48, 64), 255, np.uint8)])
    image = decode_image(fx.encode(Image.fromarray(rgba, "RGBA"), "PNG"), LIMIT)
    np.testing.assert_array_equal(image, rgba[..., 2::-1])


# --- shared real images -----------------------------------------------------------------------


def _shared_images() -> list[Path]:
    if not SHARED_DATA.is_dir():
        return []
    return sorted(p for p in SHARED_DATA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.mark.shared
def test_shared_jpegs_equal_cv2_imread(shared_data: Path) -> None:
    images = _shared_images()
    assert images, f"no JPEGs under {shared_data}"
    differing = [path.name for path in images
                 if not np.array_equal(decode_image(path.read_bytes(), LIMIT), cv2.imread(str(path)))]
    assert differing == []


@pytest.mark.shared
def test_shared_exif_orientation_3_is_rotated_180(shared_data: Path) -> None:
    path = RAPIDOCR_FILES / "img_exif_orientation.jpg"
    stored = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(decode_image(path.read_bytes(), LIMIT), stored[::-1, ::-1])


@pytest.mark.shared
@pytest.mark.parametrize(("name", "text_light"), [("white_font_color_transparent.png", True),
                                                  ("black_font_color_transparent.png", False)])
def test_shared_transparent_text_stays_visible(shared_data: Path, name: str, text_light: bool) -> None:
    path = RAPIDOCR_FILES / name
    alpha = np.asarray(Image.open(path).getchannel("A"))
    image = decode_image(path.read_bytes(), LIMIT)
    text, background = image[alpha == 255].mean(), image[alpha == 0].mean()
    assert abs(text - background) > 200
    assert (text > background) == text_light


def test_a_jpeg_over_the_long_side_limit_is_decoded_at_half_size_only_when_asked():
    """600 dpi scans are read at half size (libjpeg's DCT scaling); nothing else is."""
    import cv2

    from pages.decode import REDUCE_ABOVE_LONG_SIDE, image_size, image_sizes

    wide = np.full((300, REDUCE_ABOVE_LONG_SIDE + 2, 3), 255, np.uint8)
    cv2.putText(wide, "SCAN", (100, 200), cv2.FONT_HERSHEY_SIMPLEX, 5, (0, 0, 0), 10)
    jpeg = cv2.imencode(".jpg", wide)[1].tobytes()
    assert image_size(jpeg, 10**9) == (REDUCE_ABOVE_LONG_SIDE + 2, 300)
    assert image_sizes(jpeg, 10**9) == ((REDUCE_ABOVE_LONG_SIDE + 2, 300), (REDUCE_ABOVE_LONG_SIDE // 2 + 1, 150))
    assert decode_image(jpeg, 10**9, engine_size=True).shape == (150, REDUCE_ABOVE_LONG_SIDE // 2 + 1, 3)
    assert decode_image(jpeg, 10**9).shape == wide.shape
    png = cv2.imencode(".png", wide)[1].tobytes()
    assert decode_image(png, 10**9, engine_size=True).shape == wide.shape
    narrow = cv2.imencode(".jpg", wide[:, :REDUCE_ABOVE_LONG_SIDE])[1].tobytes()
    assert decode_image(narrow, 10**9, engine_size=True).shape == (300, REDUCE_ABOVE_LONG_SIDE, 3)


def test_a_long_jpeg2000_is_decoded_at_half_size_only_when_asked():
    """A JPEG 2000 over the limit leaves out its finest wavelet level: the half-size image,
    the size image_sizes promised, the text still there."""
    import cv2

    from pages.decode import REDUCE_ABOVE_LONG_SIDE, image_sizes

    wide = np.full((301, REDUCE_ABOVE_LONG_SIDE + 3, 3), 255, np.uint8)
    cv2.putText(wide, "SCAN", (100, 200), cv2.FONT_HERSHEY_SIMPLEX, 5, (0, 0, 0), 10)
    jp2 = fx.encode(wide, "JPEG2000")
    half = (REDUCE_ABOVE_LONG_SIDE // 2 + 2, 151)
    assert image_sizes(jp2, 10**9) == ((REDUCE_ABOVE_LONG_SIDE + 3, 301), half)
    reduced = decode_image(jp2, 10**9, engine_size=True)
    assert reduced.shape == (half[1], half[0], 3)
    assert np.abs(reduced.astype(int) - cv2.resize(wide, half, interpolation=cv2.INTER_AREA)).mean() < 8
    assert decode_image(jp2, 10**9).shape == wide.shape


def test_a_progressive_jpeg_cut_after_any_of_its_scans_is_refused() -> None:
    """A progressive JPEG has a scan per pass: cut just after the start of any of them (a
    copy that stopped part-way), it is refused; whole, it decodes."""
    data = fx.jpeg(fx.noise_rgb(120, 160), progressive=True)
    scans = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    assert len(scans) > 2
    for start in scans:
        assert decode_error(data[: min(start + 64, len(data) - 2)]).code == "decode_error"
    assert decode_image(data, LIMIT).shape == (120, 160, 3)


def test_an_image_stated_at_two_resolutions_is_read_with_square_pixels():
    """A fax at 204 x 98 dpi holds every other row: the engine reads it stretched to square
    pixels, the size image_sizes promises; without engine_size it is the file's own pixels."""
    from pages.decode import image_sizes

    page = np.full((100, 408, 3), 255, np.uint8)
    cv2.putText(page, "FAX", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
    fax = _bilevel_tiff(page, (204, 98))
    assert image_sizes(fax, 10**9) == ((408, 100), (408, 208))
    assert decode_image(fax, 10**9, engine_size=True).shape == (208, 408, 3)
    assert decode_image(fax, 10**9).shape == (100, 408, 3)
    sideways = _bilevel_tiff(page, (98, 204))  # the lower resolution along x: x is stretched
    assert image_sizes(sideways, 10**9)[1] == (849, 100)


@pytest.mark.parametrize("dpi", [(300, 300), (300, 296), (600, 100), None])
def test_one_stated_resolution_or_an_implausible_pair_reads_as_it_is(dpi: tuple[int, int] | None) -> None:
    page = np.full((100, 200, 3), 255, np.uint8)
    data = _bilevel_tiff(page, dpi)
    assert decode_image(data, 10**9, engine_size=True).shape == (100, 200, 3)


def test_a_jpeg_stated_at_two_resolutions_and_turned_by_exif_is_stretched_along_its_stored_axes():
    """EXIF orientation 6 shows the stored rows as columns: the stored y (150 dpi) is stretched,
    which is the shown x."""
    from pages.decode import EXIF_ORIENTATION, image_sizes

    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored = Image.fromarray(np.full((100, 300, 3), 200, np.uint8))
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", dpi=(300, 150), exif=exif.tobytes())
    data = buffer.getvalue()
    assert image_sizes(data, 10**9) == ((300, 100), (300, 200))
    assert decode_image(data, 10**9, engine_size=True).shape == (300, 200, 3)  # shown: 200 wide, 300 tall


def _bilevel_tiff(page: np.ndarray, dpi: tuple[int, int] | None) -> bytes:
    image = Image.fromarray(page[:, :, 0]).convert("1", dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, "TIFF", compression="group3", **({"dpi": dpi} if dpi else {}))
    return buffer.getvalue()


def test_a_turned_fax_that_reads_square_maps_back_to_its_shown_size():
    """Stretched, a 200 x 100 page at 200 x 100 dpi reads 200 x 200 whether EXIF turns it or
    not; its size as shown comes from its EXIF orientation then."""
    from pages.decode import EXIF_ORIENTATION, file_pixels, image_sizes

    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    for tags, shown in (({}, (200, 100)), ({"exif": exif.tobytes()}, (100, 200))):
        buffer = io.BytesIO()
        Image.fromarray(np.full((100, 200, 3), 200, np.uint8)).save(buffer, "JPEG", dpi=(200, 100), **tags)
        data = buffer.getvalue()
        full, read = image_sizes(data, 10**9)
        image = decode_image(data, 10**9, engine_size=True)
        assert (full, read, image.shape[:2]) == ((200, 100), (200, 200), (200, 200))
        size, scale = file_pixels(data, full, read, image)
        assert size == shown and scale == (shown[0] / 200, shown[1] / 200)
