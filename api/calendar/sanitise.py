"""What the standards forbid in text, taken out before it is written: the calendar and e-mail
writers' second line of defence (the scenario loader refuses such text first).

Sources of the rules:

* RFC 5545 section 3.3.11 (TEXT): a TEXT value is TSAFE-CHARs, ":", DQUOTE and escapes; its
  ABNF excludes every control character but HTAB (`CONTROL = %x00-08 / %x0A-1F / %x7F`). A line
  break is only ever written as the escape `\\n`, which is what the writer's escaping makes of LF.
* RFC 5322 sections 2.2 and 3.2.5: a header field body is printable characters and white space;
  CR and LF appear only together, to fold. An unstructured field (Subject) is one logical line.
* C1 controls (U+0080 to U+009F) are not printable in any of these either, and lone surrogates
  cannot be encoded as UTF-8 at all.

Python's `str.splitlines` (and many readers) also break lines on VT, FF, FS, GS, RS, NEL, U+2028
and U+2029. VT, FF, NEL, U+2028 and U+2029 are how pasted text marks its line and paragraph
breaks, so they are kept as breaks (LF); FS, GS and RS are dropped with the other controls.
"""

from __future__ import annotations

import re

# Line breaks in pasted text: CRLF, lone CR, VT and FF (word processors' line and page breaks),
# NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR. Each becomes one LF (multi-line) or the joiner.
_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# Every other C0 control but HTAB and LF, DEL, and the C1 controls: dropped.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
# A run of line breaks with the blanks on either side: one break of the text's sense.
_AROUND_BREAKS = re.compile("[ \t]*\n[ \t\n]*")


def clean_text(value: str, *, single_line: bool = False, join: str = " ") -> str:
    """`value` with nothing RFC 5545 (3.3.11, TEXT) or RFC 5322 (header fields) forbids.

    * CRLF, lone CR, VT, FF, NEL, U+2028 and U+2029 are line breaks and become LF;
    * other C0 controls except HTAB, DEL and C1 controls are removed; lone surrogates become
      U+FFFD (they have no UTF-8 form);
    * with `single_line` (SUMMARY, LOCATION, NAME, an e-mail Subject, a name inside a sentence),
      there are no line breaks at all: each run of breaks, with the blanks around it, becomes
      `join` (a space by default; ", " suits an address), and breaks at either end go. When
      `join` is punctuation plus space, a line already ending with that punctuation does not get
      it twice. Nothing else changes (blanks at the ends of the text stay).

    Multi-line text keeps LF (the iCalendar writer escapes it as `\\n`); HTAB is kept, both
    standards allow it. Never raises for any `str`; returns `str`.
    """
    text = _SURROGATES.sub("\ufffd", value)
    text = _BREAKS.sub("\n", text)
    text = _CONTROLS.sub("", text)
    if not single_line:
        return text
    text = _AROUND_BREAKS.sub("\n", text).strip("\n")
    mark = join.strip()
    if mark:
        text = re.sub(f"{re.escape(mark)}[ \t]*\n", "\n", text)
    return text.replace("\n", join)
