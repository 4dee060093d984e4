"""Invoice documents for the "Invoices (hosted QA bot)" demo project, drawn with
Pillow so that the QA bot's story reads true: each page carries the IBAN and
the currency its task's labels transcribe, and the labels' boxes sit on that
text.

Deterministic: the same samples give the same pixels and boxes on every call
(Pillow's bundled font, no randomness), so re-seeding rewrites identical files.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from plugins_app.demo.images import DemoImage, write_png
from plugins_app.hosted.invoices import invoice_answer

__all__ = ["INVOICE_SAMPLES", "Invoice", "generate_invoices"]

# (IBAN, currency) per invoice. The bot's rules (examples/hosted_qa/main.py):
# an IBAN starts with FR, the currency is EUR or USD. The first breaks the IBAN
# rule, the second passes (tests/test_production_mode.py submits those two),
# the third breaks the currency rule and the last both.
INVOICE_SAMPLES: tuple[tuple[str, str], ...] = (
    ("DE89370400440532013000", "EUR"),
    ("FR7630006000011234567890189", "USD"),
    ("FR7630006000011234567890189", "GBP"),
    ("GB29NWBK60161331926819", "JPY"),
)
_SELLERS = (
    "Nordlicht Optics GmbH",
    "Atelier Lumiere SARL",
    "Thames Lens Works Ltd",
    "Cote Vision SAS",
)
_LINES = (
    ("Annotation hours, bounding boxes", 120, 18.5),
    ("Review hours", 32, 24.0),
    ("Model pre-labeling (GPU hours)", 12, 3.2),
)
_SIZE = (640, 820)
# Pillow's bundled font has Latin letters only: the names stay ASCII.
_MARGIN = 40


@dataclass(frozen=True)
class Invoice:
    """One drawn invoice: its image and the labels a labeler would give it."""

    image: DemoImage
    answer: dict[str, Any]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw(
    number: int, seller: str, iban: str, currency: str
) -> tuple[Image.Image, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """The page, and the boxes (x, y, width, height) of the IBAN and of the
    currency code printed next to the total."""
    page = Image.new("RGB", _SIZE, "white")
    pen = ImageDraw.Draw(page)
    big, body, small = _font(30), _font(16), _font(13)
    width = _SIZE[0]
    pen.rectangle((0, 0, width, 8), fill="#1971c2")
    pen.text((_MARGIN, 36), "INVOICE", font=big, fill="#1b1b1b")
    pen.text((_MARGIN, 80), seller, font=body, fill="#1b1b1b")
    pen.text(
        (_MARGIN, 102), "12 Harbour Street, 1000 Demo City", font=small, fill="#555"
    )
    pen.text((width - 230, 42), f"No. INV-2026-{number:04d}", font=body, fill="#1b1b1b")
    pen.text(
        (width - 230, 66), f"Date: 2026-0{number % 10}-15", font=small, fill="#555"
    )
    pen.text(
        (_MARGIN, 150), "Bill to: Demo Labs, Labeling team", font=body, fill="#1b1b1b"
    )

    top = 200
    pen.line((_MARGIN, top, width - _MARGIN, top), fill="#888", width=1)
    pen.text((_MARGIN, top + 8), "Description", font=small, fill="#555")
    pen.text((width - 250, top + 8), "Qty", font=small, fill="#555")
    pen.text((width - 170, top + 8), "Amount", font=small, fill="#555")
    total = 0.0
    y = top + 36
    for description, quantity, price in _LINES:
        amount = quantity * price * (1 + (number % 10) / 10)
        total += amount
        pen.text((_MARGIN, y), description, font=body, fill="#1b1b1b")
        pen.text((width - 250, y), str(quantity), font=body, fill="#1b1b1b")
        pen.text((width - 170, y), f"{amount:,.2f}", font=body, fill="#1b1b1b")
        y += 30
    pen.line((_MARGIN, y + 4, width - _MARGIN, y + 4), fill="#888", width=1)
    y += 20
    pen.text((width - 250, y), "Total", font=body, fill="#1b1b1b")
    pen.text((width - 170, y), f"{total:,.2f}", font=body, fill="#1b1b1b")
    currency_at = (width - 170, y + 26)
    pen.text(currency_at, currency, font=big, fill="#1b1b1b")
    currency_box = pen.textbbox(currency_at, currency, font=big)

    y = currency_at[1] + 90
    pen.text((_MARGIN, y), "Payment details", font=body, fill="#1b1b1b")
    pen.text(
        (_MARGIN, y + 30), "Bank transfer within 30 days to", font=small, fill="#555"
    )
    iban_at = (_MARGIN, y + 56)
    pen.text(iban_at, iban, font=_font(22), fill="#1b1b1b")
    iban_box = pen.textbbox(iban_at, iban, font=_font(22))
    pen.text(
        (_MARGIN, _SIZE[1] - 50),
        "Thank you for your business.",
        font=small,
        fill="#555",
    )
    return page, _padded(iban_box), _padded(currency_box)


def _padded(bbox: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) → (x, y, width, height) in whole pixels, 4 px
    around the text, as a labeler draws it."""
    left, top, right, bottom = (round(v) for v in bbox)
    return (left - 4, top - 4, right - left + 8, bottom - top + 8)


def generate_invoices(dest_dir: pathlib.Path) -> list[Invoice]:
    """Write one PNG per sample into `dest_dir` (overwritten if present) and
    return them with their labels."""
    dest_dir = pathlib.Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    invoices = []
    for index, (iban, currency) in enumerate(INVOICE_SAMPLES):
        number = 1001 + index
        page, iban_box, currency_box = _draw(
            number, _SELLERS[index % len(_SELLERS)], iban, currency
        )
        filename = f"invoice-{number}.png"
        write_png(page, dest_dir / filename)
        answer = invoice_answer(iban, currency)
        for tool, (x, y, w, h) in zip(
            answer["tools"], (iban_box, currency_box), strict=True
        ):
            tool["bounding-box"] = {"x": x, "y": y, "width": w, "height": h}
        invoices.append(
            Invoice(
                image=DemoImage(
                    external_id=f"invoice-{number}",
                    filename=filename,
                    width=page.width,
                    height=page.height,
                    batch="Batch A",
                ),
                answer=answer,
            )
        )
    return invoices
