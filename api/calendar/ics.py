"""RFC 5545 details the icalendar library gets slightly wrong, fixed in one place.

* TEXT values: icalendar (6.3 and 7.3 alike) writes a literal backslash followed by "N" as the
  escape for a line break (an address like "Unit 4\\North" comes out as "Unit 4\\north", which
  every reader turns into "Unit 4", a new line, "orth"), and writes control characters as they
  come. `Text` (multi-line: DESCRIPTION) and `Line` (single-line: SUMMARY, LOCATION, NAME) first
  take out what RFC 5545 3.3.11 forbids (`clean_text`), then escape backslash, semicolon, comma
  and line breaks exactly as that section says.
* Folding: the output is unfolded and folded again here so every physical line is at most 75
  octets and no UTF-8 character is ever split, whatever the library version does.
* A last check: `serialise` refuses to return a content line holding a control character (other
  than HTAB), so a property that bypassed `Text` fails loudly instead of reaching a client.
"""

from __future__ import annotations

import re

from icalendar import Calendar, vText

from api.calendar.sanitise import clean_text

CRLF = b"\r\n"
LIMIT = 75
# RFC 5545 3.3.11's CONTROL (all C0 but HTAB, and DEL) plus the C1 controls, in a decoded line.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


class Text(vText):
    """A multi-line TEXT value: forbidden characters out (`clean_text`), exact RFC 5545 escaping.

    Cleaning happens here, at serialisation, so no TEXT property written through `Text` or
    `Line` can carry a control character, whatever string it was built from.
    """

    single_line = False

    def to_ical(self) -> bytes:
        value = clean_text(str(self), single_line=self.single_line)
        escaped = (
            value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
        )
        return escaped.encode("utf-8")


class Line(Text):
    """A TEXT value shown on one line (SUMMARY, LOCATION, NAME, X-WR-CALNAME, an alarm's text):
    line breaks become spaces, so no `\\n` is ever written. Data that reads better another way
    (an address: ", ") is joined before it gets here."""

    single_line = True


def fold(line: bytes) -> bytes:
    """Fold one logical content line at 75 octets, never inside a UTF-8 character."""
    if len(line) <= LIMIT:
        return line
    text = line.decode("utf-8")
    out: list[bytes] = []
    current = bytearray()
    room = LIMIT
    for char in text:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > room:
            out.append(bytes(current))
            current = bytearray()
            room = LIMIT - 1  # continuation lines start with one space
        current += encoded
    out.append(bytes(current))
    return (CRLF + b" ").join(out)


def unfold(data: bytes) -> list[bytes]:
    """Logical content lines of an iCalendar stream (CRLF followed by a space or tab joins)."""
    logical: list[bytearray] = []
    for physical in data.split(CRLF):
        if physical[:1] in (b" ", b"\t") and logical:
            logical[-1] += physical[1:]
        elif physical:
            logical.append(bytearray(physical))
    return [bytes(line) for line in logical]


def serialise(calendar: Calendar) -> bytes:
    """The calendar as bytes: CRLF line ends, octet-correct folding, UTF-8.

    Raises ValueError naming the property if a content line would hold a control character
    other than HTAB (RFC 5545 3.3.11; C1 too): only a value that bypassed `Text`/`Line` can.
    """
    raw = calendar.to_ical()
    logical = unfold(raw)
    for line in logical:
        bad = _FORBIDDEN.search(line.decode("utf-8"))
        if bad:
            name = line.split(b":", 1)[0].split(b";", 1)[0].decode("ascii", "replace")
            raise ValueError(f"{name} would carry control character U+{ord(bad.group()):04X}")
    return b"".join(fold(line) + CRLF for line in logical)
