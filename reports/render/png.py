"""A stacked bar chart of daily spend per team, written as a PNG with the standard library only.

Why not matplotlib: it would be the project's heaviest dependency (numpy, pillow, fonttools, kiwisolver,
contourpy: tens of MB, native wheels) for one bar chart. A PNG is a zlib stream of RGB rows with CRC'd chunk
headers, and a bar chart is rectangles plus a 5x7 bitmap font: about two hundred lines, byte-for-byte
deterministic (golden-testable), no font files, no display backend.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from reports.models import ChargebackReport
from reports.render import money

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (33, 33, 33)
GRID: Color = (225, 225, 225)
AXIS: Color = (120, 120, 120)
# Tableau 10: distinguishable, colour-blind-aware series colours.
PALETTE: tuple[Color, ...] = (
    (78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79),
    (237, 201, 72), (176, 122, 161), (255, 157, 167), (156, 117, 95), (186, 176, 172),
)

# 5x7 glyphs, one int per row, most significant of 5 bits on the left. Lower case prints as upper case.
_FONT_ROWS: dict[str, str] = {
    "0": "0E 11 13 15 19 11 0E", "1": "04 0C 04 04 04 04 0E", "2": "0E 11 01 02 04 08 1F",
    "3": "1F 02 04 02 01 11 0E", "4": "02 06 0A 12 1F 02 02", "5": "1F 10 1E 01 01 11 0E",
    "6": "06 08 10 1E 11 11 0E", "7": "1F 01 02 04 08 08 08", "8": "0E 11 11 0E 11 11 0E",
    "9": "0E 11 11 0F 01 02 0C", "A": "0E 11 11 11 1F 11 11", "B": "1E 11 11 1E 11 11 1E",
    "C": "0E 11 10 10 10 11 0E", "D": "1C 12 11 11 11 12 1C", "E": "1F 10 10 1E 10 10 1F",
    "F": "1F 10 10 1E 10 10 10", "G": "0E 11 10 17 11 11 0F", "H": "11 11 11 1F 11 11 11",
    "I": "0E 04 04 04 04 04 0E", "J": "07 02 02 02 02 12 0C", "K": "11 12 14 18 14 12 11",
    "L": "10 10 10 10 10 10 1F", "M": "11 1B 15 15 11 11 11", "N": "11 11 19 15 13 11 11",
    "O": "0E 11 11 11 11 11 0E", "P": "1E 11 11 1E 10 10 10", "Q": "0E 11 11 11 15 12 0D",
    "R": "1E 11 11 1E 14 12 11", "S": "0F 10 10 0E 01 01 1E", "T": "1F 04 04 04 04 04 04",
    "U": "11 11 11 11 11 11 0E", "V": "11 11 11 11 11 0A 04", "W": "11 11 11 15 15 15 0A",
    "X": "11 11 0A 04 0A 11 11", "Y": "11 11 11 0A 04 04 04", "Z": "1F 01 02 04 08 10 1F",
    " ": "00 00 00 00 00 00 00", "-": "00 00 00 1F 00 00 00", ".": "00 00 00 00 00 0C 0C",
    ",": "00 00 00 00 0C 04 08", ":": "00 0C 0C 00 0C 0C 00", "/": "00 01 02 04 08 10 00",
    "$": "04 0F 14 0E 05 1E 04", "_": "00 00 00 00 00 00 1F", "(": "02 04 08 08 08 04 02",
    ")": "08 04 02 02 02 04 08", "%": "18 19 02 04 08 13 03", "+": "00 04 04 1F 04 04 00",
    "#": "0A 0A 1F 0A 1F 0A 0A", "?": "0E 11 01 02 04 00 04", "=": "00 00 1F 00 1F 00 00",
    "'": "04 04 00 00 00 00 00",
}
FONT: dict[str, tuple[int, ...]] = {ch: tuple(int(r, 16) for r in rows.split()) for ch, rows in _FONT_ROWS.items()}
GLYPH_W, GLYPH_H = 5, 7


def encode_png(width: int, height: int, rgb: bytes | bytearray) -> bytes:
    """8-bit RGB, no interlace, filter 0 on every row: the simplest PNG every decoder reads."""
    if len(rgb) != width * height * 3:
        raise ValueError(f"expected {width * height * 3} bytes of RGB, got {len(rgb)}")
    stride = width * 3
    raw = b"".join(b"\x00" + bytes(rgb[y * stride:(y + 1) * stride]) for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


class Canvas:
    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill [x0, x1) x [y0, y1), clipped to the canvas."""
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        if x0 >= x1:
            return
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            start = (y * self.width + x0) * 3
            self.pixels[start:start + len(row)] = row

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 1) -> None:
        for i, ch in enumerate(text.upper()):
            glyph = FONT.get(ch, FONT["?"])
            left = x + i * (GLYPH_W + 1) * scale
            for r, bits in enumerate(glyph):
                for c in range(GLYPH_W):
                    if bits & (1 << (GLYPH_W - 1 - c)):
                        self.rect(left + c * scale, y + r * scale, left + (c + 1) * scale, y + (r + 1) * scale, color)

    @staticmethod
    def text_width(text: str, scale: int = 1) -> int:
        return max(0, len(text) * (GLYPH_W + 1) * scale - scale)

    def png(self) -> bytes:
        return encode_png(self.width, self.height, self.pixels)


def nice_step(maximum: float, ticks: int = 5) -> float:
    """A 1/2/2.5/5 x 10^k step giving about `ticks` gridlines up to `maximum`."""
    if maximum <= 0:
        return 1.0
    raw = maximum / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(f * magnitude for f in (1, 2, 2.5, 5, 10) if raw <= f * magnitude + 1e-12)


@dataclass(frozen=True)
class Series:
    team: str
    values: Sequence[Decimal]


def daily_spend_png(report: ChargebackReport) -> bytes:
    """Stacked bars: one per day of the month, one colour per team, with a legend of monthly totals."""
    teams = [inv.team for inv in report.invoices]
    days = sorted({d.day for d in report.daily})
    by_key = {(d.team, d.day): d.cost for d in report.daily}
    series = [Series(team, [by_key.get((team, day), Decimal(0)) for day in days]) for team in teams]
    totals = [sum((s.values[i] for s in series), Decimal(0)) for i in range(len(days))]
    peak = float(max(totals, default=Decimal(0)))
    step = nice_step(peak)
    top = step * max(1, math.ceil(peak / step - 1e-9)) if peak > 0 else step * 5

    slot, left, right, top_margin, bottom = 24, 90, 240, 60, 50
    plot_w, plot_h = max(1, len(days)) * slot, 360
    canvas = Canvas(left + plot_w + right, top_margin + plot_h + bottom)
    canvas.text(left, 18, f"Daily GPU spend per team, {report.month}", scale=2)

    base = top_margin + plot_h
    tick = 0.0
    while tick <= top + 1e-9:
        y = base - round(tick / top * plot_h)
        canvas.rect(left, y, left + plot_w, y + 1, GRID)
        label = f"${tick:,.2f}"
        canvas.text(left - 8 - Canvas.text_width(label), y - 3, label, AXIS)
        tick += step
    for i, day in enumerate(days):
        x = left + i * slot
        y = base
        for color_index, s in enumerate(series):
            h = round(float(s.values[i]) / top * plot_h)
            if h > 0:
                canvas.rect(x + 3, y - h, x + slot - 3, y, PALETTE[color_index % len(PALETTE)])
                y -= h
        label = f"{day.day}"
        if len(days) <= 16 or day.day % 2 == 1:
            canvas.text(x + (slot - Canvas.text_width(label)) // 2, base + 8, label, AXIS)
    canvas.rect(left, top_margin, left + 1, base + 1, AXIS)
    canvas.rect(left, base, left + plot_w, base + 1, AXIS)
    canvas.text(left + plot_w // 2 - 40, base + 26, "day of month (UTC)", AXIS)

    legend_x = left + plot_w + 20
    for i, inv in enumerate(report.invoices):
        y = top_margin + i * 22
        canvas.rect(legend_x, y, legend_x + 12, y + 12, PALETTE[i % len(PALETTE)])
        canvas.text(legend_x + 18, y + 3, f"{inv.team} {money(inv.total)}")
    return canvas.png()
