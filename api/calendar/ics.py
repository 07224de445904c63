"""RFC 5545 details the icalendar library gets slightly wrong, fixed in one place.

* TEXT escaping: icalendar 6 turns a literal backslash followed by "N" into a line break before
  escaping (so an address like "Unit 4\\North" would gain a newline). `Text` escapes backslash,
  semicolon, comma and line breaks exactly as RFC 5545 3.3.11 says.
* Folding: the output is unfolded and folded again here so every physical line is at most 75
  octets and no UTF-8 character is ever split, whatever the library version does.
"""

from __future__ import annotations

from icalendar import Calendar, vText

CRLF = b"\r\n"
LIMIT = 75


class Text(vText):
    """A TEXT value with exact RFC 5545 escaping."""

    def to_ical(self) -> bytes:
        value = str(self).replace("\r\n", "\n").replace("\r", "\n")
        escaped = (
            value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
        )
        return escaped.encode("utf-8")


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
    """The calendar as bytes: CRLF line ends, octet-correct folding, UTF-8."""
    raw = calendar.to_ical()
    return b"".join(fold(line) + CRLF for line in unfold(raw))
