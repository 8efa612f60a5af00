"""Deterministic demo pages with known text, so a fresh checkout can show OCR working and
check itself (`docmill samples OUT`, then `docmill run OUT ...`, then `docmill report`).

Pages are drawn with Pillow's bundled scalable font (Aileron, `ImageFont.load_default(size=N)`,
Pillow >= 10.1), black on white at A4/150 dpi, so nothing depends on system fonts. No
randomness: the same Pillow build writes the same bytes every run. `truth.json` maps each
file name to its lines in reading order (column by column on the two-column page, upright
order on the turned pages).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from demo.scoring import TRUTH_FILE
from docmill.settings import Settings

PAGE_SIZE = (1240, 1754)  # A4 at 150 dpi, a typical office scan
MARGIN = 110


@dataclass(frozen=True)
class Text:
    """One line of text as drawn: `anchor` "la" = left edge at x, "ra" = right edge at x."""

    x: int
    y: int
    text: str
    size: int = 32
    anchor: str = "la"


@dataclass(frozen=True)
class Page:
    name: str
    items: tuple[Text, ...]  # in reading order
    rotate: float = 0.0  # degrees counter-clockwise, applied to the finished page


def paragraph(x: int, y: int, lines: Iterable[str], size: int = 32, leading: float = 1.55) -> list[Text]:
    """Lines stacked at a fixed pitch; blank strings leave a gap and are not part of the truth."""
    out, pitch = [], round(size * leading)
    for i, line in enumerate(lines):
        if line:
            out.append(Text(x, y + i * pitch, line, size))
    return out


def table(columns: list[tuple[int, str]], y: int, rows: list[list[str]], size: int = 30,
          pitch: int = 58) -> list[Text]:
    """Row-major cells; `columns` gives each column's x and anchor (numbers right-aligned)."""
    return [Text(x, y + r * pitch, cell, size, anchor)
            for r, row in enumerate(rows) for (x, anchor), cell in zip(columns, row, strict=True)]


def _letter() -> Page:
    head = paragraph(MARGIN, 120, ["Northwind Paper Company"], size=40)
    address = paragraph(MARGIN, 190, ["14 Harbour Road, Bristol BS1 5TR", "Phone: 0117 496 0321"], 30)
    body = paragraph(MARGIN, 380, [
        "12 March 2024", "", "Dear Ms. Johnson,", "",
        "Thank you for your order of 5 March. We are pleased to",
        "confirm that all 24 boxes of printer paper were shipped",
        "today by road freight. The total amount of $1,284.50 has",
        "been charged to your account, as agreed.", "",
        "Delivery should take 3 to 5 working days. If anything is",
        "missing or damaged, please call us before 30 April.", "",
        "We look forward to working with you again.", "",
        "Yours sincerely,", "", "", "Peter Walsh", "Sales Manager",
    ])
    return Page("letter.png", tuple(head + address + body))


def _invoice() -> Page:
    right = PAGE_SIZE[0] - MARGIN
    columns = [(MARGIN, "la"), (640, "ra"), (860, "ra"), (right, "ra")]
    items = paragraph(MARGIN, 120, ["INVOICE"], size=40)
    items += paragraph(MARGIN, 210, ["Invoice No: INV-2024-0117", "Date: 18 March 2024",
                                     "Bill to: Green Valley School, 7 Mill Lane, Leeds"], 30)
    items += table(columns, 440, [
        ["Item", "Qty", "Unit price", "Amount"],
        ["Printer paper A4", "24", "12.50", "300.00"],
        ["Blue ink cartridge", "6", "38.90", "233.40"],
        ["Stapler, heavy duty", "3", "21.75", "65.25"],
        ["Archive boxes", "40", "4.20", "168.00"],
        ["Delivery", "1", "45.00", "45.00"],
    ])
    items += table([(860, "ra"), (right, "ra")], 860, [
        ["Subtotal", "811.65"], ["VAT 20%", "162.33"], ["Total due", "973.98"]])
    items += paragraph(MARGIN, 1120, ["Payment within 30 days. Thank you for your business."], 30)
    return Page("invoice.png", tuple(items))


def _two_columns() -> Page:
    title = paragraph(MARGIN, 120, ["Annual Report 2023"], size=40)
    left = paragraph(MARGIN, 240, [
        "Sales grew by 12% in 2023,", "reaching 4.7 million pounds.", "Most of the growth came",
        "from the new office range,", "launched in May.", "",
        "Costs rose by only 3%, as", "energy prices fell in the", "second half of the year.",
    ], size=28)
    right = paragraph(660, 240, [
        "We opened two new shops,", "in York and in Cardiff, and", "hired 35 new staff.", "",
        "Next year we plan to invest", "1.2 million pounds in a new", "warehouse near Leeds.",
    ], size=28)
    return Page("two_columns.png", tuple(title + left + right))


def _rotated() -> Page:
    lines = paragraph(MARGIN, 160, [
        "Meeting notes, 2 February 2024", "",
        "Present: Anna, Tom, Li and Sarah.", "",
        "1. The budget for April is 8,400 euros.",
        "2. Tom will send the new price list by Friday.",
        "3. The next meeting is on 16 February at 10:30.",
    ], size=34)
    return Page("rotated.jpg", tuple(lines), rotate=3.0)


def _upside_down() -> Page:
    lines = paragraph(MARGIN, 160, [
        "SHIPPING LABEL", "",
        "From: Northwind Paper Company", "14 Harbour Road, Bristol", "",
        "To: Green Valley School", "7 Mill Lane, Leeds", "",
        "Parcel 2 of 3, weight 12.5 kg",
    ], size=36)
    return Page("upside_down.png", tuple(lines), rotate=180.0)


PAGES = (_letter, _invoice, _two_columns, _rotated, _upside_down)


def render(page: Page) -> Image.Image:
    """Draw a page; refuse text that runs off it, so a content edit cannot silently clip."""
    img = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(img)
    for item in page.items:
        font = ImageFont.load_default(size=item.size)
        left, _, right, bottom = draw.textbbox((item.x, item.y), item.text, font=font,
                                                 anchor=item.anchor)
        if left < MARGIN // 2 or right > PAGE_SIZE[0] - MARGIN // 2 or bottom > PAGE_SIZE[1] - MARGIN:
            raise ValueError(f"{page.name}: {item.text!r} does not fit on the page")
        draw.text((item.x, item.y), item.text, fill=0, font=font, anchor=item.anchor)
    if page.rotate:
        img = img.rotate(page.rotate, resample=Image.Resampling.BICUBIC, fillcolor=255)
    return img


def _save(img: Image.Image, path: Path) -> None:
    """PNG losslessly; JPEG in colour at a scanner's usual quality (an RGB/lossy input)."""
    if path.suffix == ".jpg":
        img.convert("RGB").save(path, quality=90, subsampling=0)
    else:
        img.save(path, optimize=False, compress_level=6)


def truth() -> dict[str, list[str]]:
    """File name -> expected lines in reading order."""
    return {page.name: [item.text for item in page.items] for page in (make() for make in PAGES)}


def write_samples(out_dir: Path) -> list[Path]:
    """Write every page and truth.json into `out_dir`; return the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for make in PAGES:
        page = make()
        path = out_dir / page.name
        _save(render(page), path)
        written.append(path)
    truth_path = out_dir / TRUTH_FILE
    truth_path.write_text(json.dumps(truth(), indent=1, ensure_ascii=False) + "\n", "utf-8")
    return written + [truth_path]


def cmd_samples(args: argparse.Namespace, settings: Settings) -> int:
    """`docmill samples OUT`."""
    for path in write_samples(Path(args.out)):
        print(path)
    return 0
