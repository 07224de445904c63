"""GSM 03.38 (GSM-7) text for SMS: what fits, how many fragments it takes, and transliteration.

Units: septets (7-bit characters). A single SMS carries 160 septets; a message longer than that
is sent as concatenated fragments of 153 septets each (7 septets go to the user data header).
Characters of the GSM-7 extension table (`^{}\\[~]|€` and form feed) take two septets (escape +
character), and an escape pair is never split across fragments. A character outside both tables
forces the whole message into UCS-2, with 70 (single) or 67 (concatenated) characters per
fragment, so text is transliterated first (`to_gsm`) and anything still outside GSM-7 is refused
(`NotGsm7`), never sent silently as UCS-2.

Sources: 3GPP TS 23.038 section 6.2.1 (default alphabet and extension table); 3GPP TS 23.040
section 9.2.3.24.1 (concatenation header, 6 octets = 7 septets).
"""

from __future__ import annotations

import unicodedata

# The default alphabet, in code order (0x00-0x7F); \x1b (escape) is left out: it is not text.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ"  # 0x1B, the escape to the extension table, is not text
    "ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = "\f^{}\\[~]|€"
SINGLE_SEPTETS = 160
FRAGMENT_SEPTETS = 153

_BASIC = frozenset(BASIC)
_EXTENSION = frozenset(EXTENSION)

# Common characters from word processors and data, written with GSM-7 ones.
_TRANSLITERATION = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
    "\u2022": "-", "\u00b7": "-", "\u00d7": "x",
    "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0131": "i", "\u0152": "OE", "\u0153": "oe",
}


class NotGsm7(ValueError):
    """Text holding a character that GSM-7 cannot carry even after transliteration."""

    def __init__(self, char: str):
        super().__init__(f"character U+{ord(char):04X} cannot be sent in a GSM-7 text message")
        self.char = char


def septets(char: str) -> int:
    """Septets one character takes: 1 (default alphabet), 2 (extension table); NotGsm7 otherwise."""
    if char in _BASIC:
        return 1
    if char in _EXTENSION:
        return 2
    raise NotGsm7(char)


def is_gsm7(text: str) -> bool:
    return all(c in _BASIC or c in _EXTENSION for c in text)


def to_gsm(text: str) -> str:
    """`text` in GSM-7: typographic quotes, dashes and spaces replaced, accents the default
    alphabet lacks dropped (NFKD: 'ł' stays refused, 'ą' becomes 'a'). Raises NotGsm7 for a
    character with no GSM-7 form, naming it."""
    out = []
    for char in text:
        char = _TRANSLITERATION.get(char, char)
        for c in char:
            if c in _BASIC or c in _EXTENSION:
                out.append(c)
                continue
            plain = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
            if plain and all(d in _BASIC or d in _EXTENSION for d in plain):
                out.append(plain)
            else:
                raise NotGsm7(c)
    return "".join(out)


def septet_count(text: str) -> int:
    """Septets the whole text takes (extension characters count 2). NotGsm7 outside GSM-7."""
    return sum(septets(c) for c in text)


def fragment_count(text: str) -> int:
    """SMS fragments the text is sent in: 1 up to 160 septets, else 153-septet fragments, an
    escape pair never split. 0 for empty text. Raises NotGsm7 for text outside GSM-7 (it would
    become UCS-2)."""
    total = septet_count(text)
    if total == 0:
        return 0
    if total <= SINGLE_SEPTETS:
        return 1
    fragments, used = 1, 0
    for char in text:
        size = septets(char)
        if used + size > FRAGMENT_SEPTETS:
            fragments, used = fragments + 1, 0
        used += size
    return fragments
