"""The letter PDF: A4, GOV.UK Notify's precompiled layout (address in the window, nothing in the
borders), fonts embedded, and what a reader sees: the page rendered (pypdfium2) and read back
with OCR (the `tesseract` binary, Debian package tesseract-ocr) shows the visit's date and time,
in normal and in large print, where large print is measurably bigger."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from statistics import median

import pypdfium2 as pdfium
import pytest

from api.calendar import wording
from api.messages.compose import Message, visit_facts
from api.messages.letter import ADDRESS_BOX_MM, LARGE_PT, NORMAL_PT, letter_pdf
from tests.apt_support import ensure_debian_package
from tests.builders import solve_checked
from tests.test_calendar_render import rich_scenario

MM = 72 / 25.4
A4_PT = (210 * MM, 297 * MM)
ADDRESS = ("Flat 2", "14 Quay Street", "Sandmere", "QX1 2AB")
DPI = 200


@pytest.fixture(scope="module")
def letters():
    s = rich_scenario()
    plan = solve_checked(s)
    [visit] = [v for v in plan.visits if v.patient_id == "P1"]
    message = Message("new", "OV-7K3P9Q", visit_facts(s, plan, visit.id))
    return message, {large: letter_pdf(message, ADDRESS, large_print=large) for large in (False, True)}


def _tesseract() -> str:
    """Debian's tesseract, installed with apt on first use when missing (tests/apt_support.py)."""
    return shutil.which("tesseract") or ensure_debian_package(
        "/usr/bin/tesseract", "tesseract-ocr", "the letter tests read the rendered page back with it")


def _ocr(pdf: bytes, tmp_path, name: str) -> list[dict]:
    """Words tesseract reads on page 1: text, height in pixels, confidence."""
    doc = pdfium.PdfDocument(pdf)
    try:
        image = doc[0].render(scale=DPI / 72, grayscale=True).to_pil()
    finally:
        doc.close()
    path = tmp_path / f"{name}.png"
    image.save(path)
    tsv = subprocess.run([_tesseract(), str(path), "stdout", "--psm", "3", "tsv"], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    rows = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    return [{"text": r["text"], "height": int(r["height"]), "top": int(r["top"]), "conf": float(r["conf"])}
            for r in rows if r.get("text", "").strip()]


def test_letter_is_a4_with_the_address_in_notifys_window_and_fonts_embedded(letters):
    _, pdfs = letters
    for pdf in pdfs.values():
        assert b"/FontFile2" in pdf  # TrueType embedded (Notify prints only embedded fonts)
        doc = pdfium.PdfDocument(pdf)
        try:
            page = doc[0]
            width, height = page.get_size()
            assert abs(width - A4_PT[0]) < 1 and abs(height - A4_PT[1]) < 1
            text = page.get_textpage()
            left, top, right, bottom = ADDRESS_BOX_MM
            window = text.get_text_bounded(left * MM, height - bottom * MM, right * MM, height - top * MM)
            assert [line.strip() for line in window.splitlines() if line.strip()] == list(ADDRESS)
            # Nothing in the side borders, the top border or the NOTIFY tag's corner.
            for box in ((0, 0, 15, 297), (195, 0, 210, 297), (0, 0, 210, 5), (0, 292, 210, 297)):
                x0, y0, x1, y1 = box
                assert not text.get_text_bounded(x0 * MM, height - y1 * MM, x1 * MM, height - y0 * MM).strip(), box
            # Between the window and the body (66.2 to 95 mm, left of the sender's block) is empty.
            assert not text.get_text_bounded(15 * MM, height - 95 * MM, 120 * MM, height - 66.5 * MM).strip()
        finally:
            doc.close()


def test_ocr_reads_the_date_and_time_in_normal_and_large_print(letters, tmp_path):
    message, pdfs = letters
    when = message.facts.when
    date_words = wording.long_date(when.start.date()).split()  # Tuesday 30 March 2027
    time_word = wording.clock(when.start)  # 8:30am
    heights = {}
    for large, pdf in pdfs.items():
        words = _ocr(pdf, tmp_path, "large" if large else "normal")
        text = " ".join(w["text"] for w in words)
        assert " ".join(date_words) in text, text
        assert time_word in text, text
        # The height of the date line's words (x-height and ascenders of "Tuesday 30 March 2027").
        date_at = next(i for i, w in enumerate(words) if w["text"] == date_words[0] and words[i + 1]["text"] == date_words[1])
        heights[large] = median(w["height"] for w in words[date_at:date_at + 4])
    ratio = heights[True] / heights[False]
    assert ratio > 0.85 * LARGE_PT / NORMAL_PT, heights  # 18 pt against 12 pt: about 1.5 times
    # At 18 pt a capital is about 18 * 0.73 / 72 inches tall: well over 30 px at 200 dpi.
    assert heights[True] >= 30, heights


def test_large_print_follows_the_patients_needs_unless_told(letters):
    import dataclasses
    import datetime as dt

    message, _ = letters
    day = dt.date(2027, 3, 1)
    needs_large = dataclasses.replace(message, facts=dataclasses.replace(message.facts, large_print=True))

    def first_page(pdf: bytes) -> str:
        doc = pdfium.PdfDocument(pdf)
        try:
            return doc[0].get_textpage().get_text_range()
        finally:
            doc.close()

    assert first_page(letter_pdf(needs_large, ADDRESS, today=day)) == first_page(
        letter_pdf(message, ADDRESS, large_print=True, today=day))
    assert first_page(letter_pdf(message, ADDRESS, today=day)) != first_page(
        letter_pdf(message, ADDRESS, large_print=True, today=day))
    with pytest.raises(ValueError):
        letter_pdf(message, ("QX1 2AB",))
