"""`make bench` (TIFF part): how big the searchable PDF of a multi-page TIFF (and of lossy
WebP images) is, and how close its page images are to the frames the engine read. A benchmark, not a test: it prints a
table, writes bench/results/tiff_pdf.json, and fails only when a run fails.

    .venv/bin/python -m bench.tiff_pdf [--models SET] [--images FOLDER]

One multi-page TIFF per storage, built in a scratch folder from ../shared's 20 SROIE receipts
(or any folder of images), each read by `docmill run --format pdf`:
- g4: every page thresholded to black and white, CCITT Group 4 (archives' bilevel masters);
- jpeg ycbcr: every page a one-strip 4:2:0 YCbCr JPEG at quality 85 (colour TIFFs as
  libtiff and scanners write them);
- jpeg rgb strips: Pillow's JPEG in TIFF at quality 85 (RGB, strips sharing their tables);
- webp lossy: not a TIFF but one lossy WebP file a page at quality 80, all read by one run
  (web archives and access copies; each page goes in as a JPEG at quality 90, or as PNG where
  that is smaller).

For each it reports the PDF's size and its page images' size against the source's, beside what
the same frames take as PNG files, which is how the writer held every TIFF frame before
2026-12-01's ninth session and every lossy WebP before its tenth; and the page images' PSNR
against the frames as decoded.
"""

from __future__ import annotations

import argparse
import io
import math
import struct
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pikepdf
from PIL import Image

from bench.paths import SROIE_IMAGES
from bench.results import save_result
from bench.run_bench import DOCMILL_BIN, REPO, _checked, measure
from docmill.settings import DEFAULT_MODEL_SET
from pages.decode import decode_frame, decode_image

QUALITY = 85
WEBP_QUALITY = 80


def tiff(frames: list[Image.Image], **params: object) -> bytes:
    """A multi-page TIFF of the frames, as Pillow writes it."""
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], **params)
    return buffer.getvalue()


def ycbcr_jpeg_tiff(images: Sequence[Image.Image], dpi: int, quality: int = 75) -> bytes:
    """A TIFF of one-strip frames, each a whole 4:2:0 YCbCr JPEG, as scanners and libtiff write
    colour scans (Pillow writes JPEG in TIFF only as RGB, in strips sharing JPEGTables). The
    tests build theirs with it too."""
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    for index, image in enumerate(images):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=quality, subsampling=2)
        jpeg = buffer.getvalue()
        ifd = len(out)
        rational = ifd + 2 + 11 * 12 + 4  # the resolution's value, then the bit depths, then the JPEG
        entries = [(256, 4, 1, image.width), (257, 4, 1, image.height), (258, 3, 3, rational + 8),
                   (259, 3, 1, 7), (262, 3, 1, 6), (273, 4, 1, rational + 14), (277, 3, 1, 3),
                   (278, 4, 1, image.height), (279, 4, 1, len(jpeg)), (282, 5, 1, rational),
                   (530, 3, 2, 2 | 2 << 16)]
        following = 0 if index == len(images) - 1 else rational + 14 + len(jpeg)
        out += struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *entry) for entry in entries)
        out += struct.pack("<I", following) + struct.pack("<II", dpi, 1) + struct.pack("<HHH", 8, 8, 8) + jpeg
    return bytes(out)


def _bilevel(page: Image.Image) -> Image.Image:
    return page.convert("L").point(lambda v: 255 * (v > 128)).convert("1")


STORAGES: dict[str, Callable[[list[Image.Image]], bytes]] = {
    "g4": lambda pages: tiff([_bilevel(p) for p in pages], dpi=(300, 300), compression="group4"),
    "jpeg ycbcr": lambda pages: ycbcr_jpeg_tiff(pages, dpi=300, quality=QUALITY),
    "jpeg rgb strips": lambda pages: tiff(pages, dpi=(300, 300), compression="jpeg", quality=QUALITY),
}


def _frames(data: bytes) -> list[np.ndarray]:
    with Image.open(io.BytesIO(data)) as im:
        frames = []
        for index in range(im.n_frames):
            im.seek(index)
            frames.append(decode_frame(im, 10**9))
        return frames


def _png_bytes(frames: list[np.ndarray]) -> int:
    """What the frames take as PNG files: grey, or one bit deep when black and white."""
    total = 0
    for frame in frames:
        grey = (frame[:, :, 0] == frame[:, :, 1]).all() and (frame[:, :, 1] == frame[:, :, 2]).all()
        image = Image.fromarray(frame[:, :, 0] if grey else np.ascontiguousarray(frame[:, :, ::-1]))
        if grey and np.isin(frame, (0, 255)).all():
            image = image.convert("1", dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        total += buffer.tell()
    return total


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(float) - b.astype(float)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _page_images(pdf: Path) -> list[tuple[int, np.ndarray]]:
    """Each page's image: its stored bytes and its pixels as RGB."""
    with pikepdf.open(pdf) as opened:
        images = [next(iter(page.get_images().values())) for page in opened.pages]
        return [(len(image.read_raw_bytes()), np.asarray(pikepdf.PdfImage(image).as_pil_image().convert("RGB")))
                for image in images]


def _webp_pages(pages: list[Image.Image], folder: Path) -> list[bytes]:
    """One lossy WebP file a page, named in page order."""
    files = []
    for number, page in enumerate(pages):
        buffer = io.BytesIO()
        page.save(buffer, "WEBP", quality=WEBP_QUALITY)
        (folder / f"{number:03d}.webp").write_bytes(buffer.getvalue())
        files.append(buffer.getvalue())
    return files


def _run(source: Path, out: Path, models: str) -> None:
    _checked(f"docmill run {source.name}", measure([str(DOCMILL_BIN), "run", str(source), "--out", str(out),
                                                   "--models", models, "--format", "pdf", "--quiet"], REPO))


def measure_storage(name: str, pages: list[Image.Image], models: str, scratch: Path) -> dict:
    out = scratch / f"out-{name.replace(' ', '-')}"
    if name == "webp lossy":
        folder = scratch / "webp"
        folder.mkdir()
        files = _webp_pages(pages, folder)
        _run(folder, out, models)
        pdfs = sorted(out.glob("*.webp.pdf"))
        frames = [decode_image(data, 10**9) for data in files]
    else:
        data = STORAGES[name](pages)
        source = scratch / f"{name.replace(' ', '-')}.tif"
        source.write_bytes(data)
        _run(source, out, models)
        files, pdfs, frames = [data], [out / f"{source.name}.pdf"], _frames(data)
    held = [image for pdf in pdfs for image in _page_images(pdf)]
    psnr = [_psnr(pixels, frame[:, :, ::-1]) for (_, pixels), frame in zip(held, frames)]
    source_bytes, pdf_bytes = sum(map(len, files)), sum(pdf.stat().st_size for pdf in pdfs)
    images, png = sum(size for size, _ in held), _png_bytes(frames)
    return {"storage": name, "pages": len(frames), "source_bytes": source_bytes, "pdf_bytes": pdf_bytes,
            "page_image_bytes": images, "png_frames_bytes": png,
            "pdf_to_source": round(pdf_bytes / source_bytes, 3), "images_to_source": round(images / source_bytes, 3),
            "png_to_source": round(png / source_bytes, 3), "min_psnr_db": round(min(psnr), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODEL_SET)
    parser.add_argument("--images", type=Path, default=SROIE_IMAGES)
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        raise SystemExit(f"no images at {args.images}: give --images a folder")
    pages = [Image.open(path).convert("RGB") for path in sorted(args.images.iterdir()) if path.is_file()]
    rows = []
    print(f"{'storage':16s} pages  source MB  PDF/source  images/source  PNG frames/source  min PSNR dB")
    with tempfile.TemporaryDirectory(prefix="docmill-tiffpdf-") as scratch:
        for name in [*STORAGES, "webp lossy"]:
            row = measure_storage(name, pages, args.models, Path(scratch))
            rows.append(row)
            print(f"{name:16s} {row['pages']:5d}  {row['source_bytes'] / 1e6:9.2f}  {row['pdf_to_source']:10.3f}  "
                  f"{row['images_to_source']:13.3f}  {row['png_to_source']:17.3f}  {row['min_psnr_db']:11}", flush=True)
    print(f"wrote {save_result('tiff_pdf', {'images': str(args.images), 'models': args.models, 'rows': rows})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
