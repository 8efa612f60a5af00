"""The one font of every text layer: a glyph-less TrueType font, so that any Unicode text,
CJK included, is drawn invisibly and extracted exactly, with no font per script.

This is the approach of Tesseract's PDF renderer and OCRmyPDF, with a font program written
here. The font has two glyphs 500 units wide (half an em): an empty .notdef and a plain box,
both never seen, as the text is drawn in render mode 3 (invisible). In the PDF it is
a Type0 font with Identity-H encoding, so every character is one 2-byte code, its CID:
- a character of the Basic Multilingual Plane is its own code point as CID;
- a character beyond it gets a CID of the surrogate range (D800 to DFFF), which no BMP
  character has, assigned per document in order of first use.
The CIDToGIDMap sends every CID to the box glyph, and a ToUnicode CMap gives each CID its
character back: identity over the BMP and one entry per assigned surrogate CID.
"""

from __future__ import annotations

import struct

import pikepdf

FONT_NAME = "GlyphLessFont"
UNITS_PER_EM = 1000
ADVANCE = 500  # each glyph's width, in font units
ASCENT, DESCENT = 800, -200  # a word's box spans this, from its baseline, in font units
_SURROGATES = range(0xD800, 0xE000)
_REPLACEMENT = 0xFFFD
_BFRANGES_PER_BLOCK = 100  # the most a CMap's beginbfrange block may hold


def _checksum(data: bytes) -> int:
    padded = data + b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f">{len(padded) // 4}I", padded)) & 0xFFFFFFFF


def _name_table() -> bytes:
    """Family (1), full (4) and PostScript (6) names, Windows Unicode."""
    text = FONT_NAME.encode("utf-16-be")
    records = b"".join(struct.pack(">6H", 3, 1, 0x409, name_id, len(text), 0) for name_id in (1, 4, 6))
    return struct.pack(">3H", 0, 3, 6 + len(records)) + records + text


def _box_glyph() -> bytes:
    """Glyph 1: one rectangle over the glyph's whole cell, advance by descent to ascent. It is
    never seen (text render mode 3 neither fills nor strokes), but gives each character a
    box, which viewers that select by glyph outlines (pdfium) need to highlight a word."""
    points = [(0, DESCENT), (ADVANCE, DESCENT), (ADVANCE, ASCENT), (0, ASCENT)]
    deltas = [(x1 - x0, y1 - y0) for (x0, y0), (x1, y1) in zip([(0, 0), *points], points)]
    glyph = struct.pack(">hhhhhHH", 1, 0, DESCENT, ADVANCE, ASCENT, len(points) - 1, 0)
    glyph += bytes([0x01] * len(points))  # on-curve points, coordinates as 16-bit deltas
    glyph += struct.pack(f">{len(points)}h", *[dx for dx, _ in deltas])
    glyph += struct.pack(f">{len(points)}h", *[dy for _, dy in deltas])
    return glyph + b"\0" * (-len(glyph) % 4)


def _tables() -> dict[bytes, bytes]:
    """The font's tables: header, metrics, an empty .notdef and the box glyph, a cmap mapping
    nothing (the PDF maps CIDs to glyphs itself), names and PostScript data."""
    glyphs = 2
    box = _box_glyph()
    return {
        b"cmap": struct.pack(">4HI", 0, 1, 3, 1, 12) + struct.pack(">11H", 4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1)
        + struct.pack(">H", 0),
        b"glyf": box,
        b"head": struct.pack(">IIIIHHqqhhhhHHhhh", 0x00010000, 0x00010000, 0, 0x5F0F3CF5, 0x000B, UNITS_PER_EM,
                             0, 0, 0, DESCENT, ADVANCE, ASCENT, 0, 3, 2, 0, 0),
        b"hhea": struct.pack(">I3hH11hH", 0x00010000, ASCENT, DESCENT, 0, ADVANCE,
                             0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1),
        b"hmtx": struct.pack(">Hh", ADVANCE, 0) + struct.pack(">h", 0) * (glyphs - 1),
        b"loca": struct.pack(">3H", 0, 0, len(box) // 2),  # short offsets, halved
        b"maxp": struct.pack(">IH13H", 0x00010000, glyphs, 4, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0),
        b"name": _name_table(),
        b"post": struct.pack(">IIhhIIIII", 0x00030000, 0, -100, 50, 1, 0, 0, 0, 0),
    }


def font_program() -> bytes:
    """The TrueType file: an offset table, one record per table (sorted by tag), the tables
    each padded to 4 bytes, and head's checkSumAdjustment set over the whole file."""
    tables = _tables()
    count = len(tables)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1, (count - power) * 16)
    offset = len(header) + 16 * count
    records, body = b"", b""
    for tag in sorted(tables):
        data = tables[tag]
        records += struct.pack(">4sIII", tag, _checksum(data), offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    font = bytearray(header + records + body)
    head_at = offset + sum(len(tables[t]) + (-len(tables[t]) % 4) for t in sorted(tables) if t < b"head")
    struct.pack_into(">I", font, head_at + 8, (0xB1B0AFBA - _checksum(bytes(font))) & 0xFFFFFFFF)
    return bytes(font)


class TextFont:
    """The glyph-less font of one PDF: `encode` gives a string's codes (assigning surrogate
    CIDs as characters beyond the BMP first appear), and `finish` writes the ToUnicode CMap
    once every page's text has been encoded."""

    def __init__(self, pdf: pikepdf.Pdf) -> None:
        self.beyond_bmp: dict[str, int] = {}
        self.to_unicode = pdf.make_stream(b"")
        self.font = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type0, BaseFont=pikepdf.Name("/" + FONT_NAME),
            Encoding=pikepdf.Name("/Identity-H"), DescendantFonts=[self._cid_font(pdf)], ToUnicode=self.to_unicode))

    @staticmethod
    def _cid_font(pdf: pikepdf.Pdf) -> pikepdf.Object:
        data = font_program()
        program = pdf.make_stream(data, Length1=len(data))  # streams are compressed when the PDF is saved
        descriptor = pikepdf.Dictionary(
            Type=pikepdf.Name.FontDescriptor, FontName=pikepdf.Name("/" + FONT_NAME), Flags=5,
            FontBBox=[0, DESCENT, ADVANCE, ASCENT], ItalicAngle=0, Ascent=ASCENT, Descent=DESCENT,
            CapHeight=ASCENT, StemV=80, FontFile2=program)
        every_cid_to_glyph_1 = pdf.make_stream(b"\x00\x01" * 0x10000)
        return pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.CIDFontType2, BaseFont=pikepdf.Name("/" + FONT_NAME),
            CIDSystemInfo=pikepdf.Dictionary(Registry="Adobe", Ordering="Identity", Supplement=0),
            FontDescriptor=pdf.make_indirect(descriptor), DW=ADVANCE, CIDToGIDMap=every_cid_to_glyph_1))

    def encode(self, text: str) -> bytes:
        """The codes of `text`, two bytes per character."""
        return b"".join(struct.pack(">H", self._cid(char)) for char in text)

    def _cid(self, char: str) -> int:
        point = ord(char)
        if point in _SURROGATES:
            return _REPLACEMENT  # a lone surrogate is no character
        if point < 0x10000:
            return point
        if char not in self.beyond_bmp and len(self.beyond_bmp) < len(_SURROGATES):
            self.beyond_bmp[char] = _SURROGATES[len(self.beyond_bmp)]
        return self.beyond_bmp.get(char, _REPLACEMENT)

    def finish(self) -> None:
        """Write the ToUnicode CMap for every CID used."""
        self.to_unicode.write(to_unicode_cmap(self.beyond_bmp))


def to_unicode_cmap(beyond_bmp: dict[str, int]) -> bytes:
    """The CMap: each BMP code to itself (in ranges that differ only in their last byte, as
    CMaps require, skipping the surrogates), each surrogate CID to its character."""
    ranges = [f"<{high:02X}00> <{high:02X}FF> <{high:02X}00>" for high in range(0x100)
              if high << 8 not in _SURROGATES]
    blocks = [ranges[i:i + _BFRANGES_PER_BLOCK] for i in range(0, len(ranges), _BFRANGES_PER_BLOCK)]
    lines = ["/CIDInit /ProcSet findresource begin", "12 dict begin", "begincmap",
             "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
             "/CMapName /Adobe-Identity-UCS def", "/CMapType 2 def",
             "1 begincodespacerange", "<0000> <FFFF>", "endcodespacerange"]
    for block in blocks:
        lines += [f"{len(block)} beginbfrange", *block, "endbfrange"]
    chars = [f"<{cid:04X}> <{char.encode('utf-16-be').hex().upper()}>" for char, cid in beyond_bmp.items()]
    for i in range(0, len(chars), _BFRANGES_PER_BLOCK):
        block = chars[i:i + _BFRANGES_PER_BLOCK]
        lines += [f"{len(block)} beginbfchar", *block, "endbfchar"]
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return ("\n".join(lines) + "\n").encode("ascii")
