"""The letter: an A4 PDF (ReportLab) laid out for GOV.UK Notify's precompiled letters, in normal
or large print.

Layout (millimetres from the page's top-left corner), after Notify's precompiled letter
specification as its template-preview service checks it (alphagov/notifications-template-preview,
`app/precompiled.py`): A4 portrait 210 x 297; nothing in the 15 mm side borders or the 5 mm top
and bottom borders; the recipient's address in the window area x 24.6-120, y 40-66.2 (at most 7
lines, postcode last), nothing else there; the sender's block at x 125-195 above y 95; the body
from y 95 on page 1. The top-left corner (the NOTIFY tag area, about 15 x 6 mm) stays empty.
The exact numbers were taken from Notify's public code, not from a signed-off spec: check a
first letter with Notify's "preview" before a mailing.

Type: Bitstream Vera Sans (ships with ReportLab, embedded as a subset; Notify prints only
embedded fonts), never bold. Normal print 12 pt on 15 pt; large print 18 pt on 23 pt, for the
Accessible Information Standard (DCB1605): RNIB's clear-print guidance asks for at least 16 pt,
and 16-20 pt sans serif without bold or italics for large print. The address block stays at
11 pt in both, so up to 6 lines fit the envelope window (it is read by the postal service).

The address is drawn into the PDF only; it is never stored. The letter names no condition,
test, clinician or patient id: people by role only, like the calendar invite.
"""

from __future__ import annotations

import datetime as dt
import io
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, Spacer

from api.calendar import clean_text, wording
from api.messages.compose import FASTING_HOURS, Message

FONT = "OneVisitSans"
NORMAL_PT, LARGE_PT = 12.0, 18.0
ADDRESS_PT = 11.0
ADDRESS_BOX_MM = (24.6, 40.0, 120.0, 66.2)  # left, top, right, bottom
SENDER_BOX_MM = (125.0, 10.0, 195.0, 95.0)
BODY_TOP_MM = 95.0
SIDE_MM, LATER_TOP_MM, BOTTOM_MM = 20.0, 20.0, 15.0
MAX_ADDRESS_LINES = 7

_registered = False


def _font() -> str:
    global _registered
    if not _registered:
        pdfmetrics.registerFont(TTFont(FONT, "Vera.ttf"))  # found on ReportLab's own font path
        _registered = True
    return FONT


def _text(value: object) -> str:
    return escape(clean_text("" if value is None else str(value), single_line=True).strip())


def body_paragraphs(m: Message) -> list[tuple[str, str]]:
    """The letter's text, as (style, text) pairs: 'heading', 'body' or 'bullet'. Plain text (not
    yet escaped for ReportLab)."""
    f, w = m.facts, m.facts.when
    what = "blood test" if f.blood_test_only else "appointment"
    call = f"call {f.phone}" if f.phone else "contact your GP practice"
    reach = call + (f" or go to {f.rebook_url}" if f.rebook_url else "")
    out: list[tuple[str, str]] = []
    if m.action == "cancel":
        out += [
            ("heading", f"Your {what} has been cancelled"),
            ("body", f"Your {what} on {w.day} at {w.time} at {f.place} has been cancelled."),
            ("body", "If we have sent you a new appointment, that one still stands."),
            ("body", f"To book again or to ask about this, please {reach}."),
            ("body", f"Your booking reference was {m.reference}."),
        ]
        return out
    if m.action == "update":
        out.append(("heading", f"Your {what} has changed"))
        b = m.before
        moved, moved_place = m.changes()
        if b is not None and (moved or moved_place):
            was = f"{b.day} at {b.time}" + (f" at {b.site_name}" if moved_place or moved else "")
            out.append(("body", f"We have had to change your {what}. It was on {was}. "
                                f"It is now on {w.day} at {w.time} at {w.site_name}."))
        else:
            out.append(("body", f"We have changed what happens at your {what}. "
                                "The date and start time are the same."))
    else:
        out.append(("heading", f"Your {what}"))
    out += [
        ("body", f"Date: {w.day}"),
        ("body", f"Time: please arrive a few minutes before {w.time}"),
        ("body", f"Place: {f.place}"),
        ("body", f"How long: about {w.length}. You should be finished by {wording.clock(w.end)}."),
        ("heading", "What happens"),
        *[("bullet", step) for step in f.steps],
    ]
    if f.blood_test_only and f.review is not None:
        out.append(("body", f"This blood test is so that your results are ready for your check-up on "
                            f"{f.review.day} at {f.review.time} at {f.review.site_name}."))
    elif not f.blood_test_only and any("blood test" in s for s in f.steps):
        out.append(("body", "Your blood test comes first, so one needle covers everything."))
    if f.fasting_from is not None:
        out += [
            ("heading", "Fasting"),
            ("body", f"Your blood test needs you to fast. Please have nothing to eat or drink except "
                     f"water for {FASTING_HOURS} hours before {wording.clock(f.fasting_test_at)}, that is "
                     f"from {wording.clock(f.fasting_from)} the evening before, unless you have been told "
                     "otherwise. Keep drinking water."),
        ]
    out += [
        ("heading", "Please bring"),
        ("bullet", "your medicines, or an up-to-date list of them"),
        ("bullet", "your glasses and hearing aids, if you use them"),
        ("bullet", "any questions you want to ask"),
        ("heading", "To change or cancel"),
        ("body", f"If you cannot come or need another time, please {reach} as soon as you can, so "
                 "someone else can have this time."),
        ("body", f"Your booking reference is {m.reference}."),
    ]
    return out


def letter_pdf(m: Message, address: tuple[str, ...], *, large_print: bool | None = None,
               today: dt.date | None = None) -> bytes:
    """The letter as PDF bytes. `address`: the recipient's lines, postcode last (2 to 7 lines).
    `large_print` defaults to the patient's `needs.large_print`."""
    if not 2 <= len(address) <= MAX_ADDRESS_LINES:
        raise ValueError(f"an address has 2 to {MAX_ADDRESS_LINES} lines, postcode last")
    large = m.facts.large_print if large_print is None else large_print
    size = LARGE_PT if large else NORMAL_PT
    leading = round(size * 1.28)
    font = _font()
    styles = {
        "body": ParagraphStyle("body", fontName=font, fontSize=size, leading=leading, spaceAfter=size * 0.5),
        "heading": ParagraphStyle("heading", fontName=font, fontSize=size + 2, leading=leading + 3,
                                  spaceBefore=size * 0.6, spaceAfter=size * 0.4),
        "bullet": ParagraphStyle("bullet", fontName=font, fontSize=size, leading=leading, leftIndent=size * 1.4,
                                 bulletFontName=font, bulletFontSize=size,
                                 bulletIndent=size * 0.3, spaceAfter=size * 0.25),
    }
    page_w, page_h = A4
    sender_pt = min(size, 14.0)
    sender_lines = [m.facts.practice_name, *m.facts.address]
    if m.facts.phone:
        sender_lines.append(f"Phone {m.facts.phone}")
    sender_lines.append(wording.long_date(today or dt.date.today()))

    def first_page(canvas, _doc) -> None:
        canvas.saveState()
        left, top, _right, bottom = ADDRESS_BOX_MM
        canvas.setFont(font, ADDRESS_PT)
        step = ADDRESS_PT * 1.08
        y = page_h - top * mm - ADDRESS_PT
        for line in address:
            canvas.drawString(left * mm, y, clean_text(line, single_line=True).strip())
            y -= step
        assert y + step - ADDRESS_PT * 0.25 >= page_h - bottom * mm, "address block overflows its window"
        sx, stop, sright, sbottom = SENDER_BOX_MM
        style = ParagraphStyle("sender", fontName=font, fontSize=sender_pt, leading=round(sender_pt * 1.25))
        para = Paragraph("<br/>".join(_text(x) for x in sender_lines), style)
        width = (sright - sx) * mm
        _w, height = para.wrap(width, (sbottom - stop) * mm)
        para.drawOn(canvas, sx * mm, page_h - stop * mm - height)
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = BaseDocTemplate(buffer, pagesize=A4, title="Your appointment", author="", subject="", creator="OneVisit",
                          leftMargin=SIDE_MM * mm, rightMargin=SIDE_MM * mm, topMargin=LATER_TOP_MM * mm,
                          bottomMargin=BOTTOM_MM * mm)
    width = page_w - 2 * SIDE_MM * mm
    first = Frame(SIDE_MM * mm, BOTTOM_MM * mm, width, page_h - (BODY_TOP_MM + BOTTOM_MM) * mm, id="first",
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    later = Frame(SIDE_MM * mm, BOTTOM_MM * mm, width, page_h - (LATER_TOP_MM + BOTTOM_MM) * mm, id="later",
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    doc.addPageTemplates([PageTemplate("first", [first], onPage=first_page, autoNextPageTemplate="later"),
                          PageTemplate("later", [later])])
    story = []
    for kind, text in body_paragraphs(m):
        if kind == "bullet":
            story.append(Paragraph(_text(text), styles["bullet"], bulletText="\u2022"))
        else:
            story.append(Paragraph(_text(text), styles[kind]))
    story.append(Spacer(1, size))
    doc.build(story)
    return buffer.getvalue()
