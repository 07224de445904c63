"""Keeping patients pseudonymous: spotting an NHS number where a pseudonymous id belongs.

An NHS number is 10 digits whose last digit is a Modulus 11 check digit over the first nine
(NHS Data Dictionary, "NHS NUMBER": weights 10 down to 2, check digit 11 minus the remainder,
11 becomes 0, 10 means the number is not valid). Written 3-3-4 with spaces or hyphens, or bare.
"""

from __future__ import annotations

import re

# Ten digits standing alone in the text, bare or grouped 3-3-4 by one space, hyphen, dot or
# underscore each; digits on either side make it part of a longer number, not an NHS number.
_CANDIDATE = re.compile(r"(?<!\d)(\d{3})([ \-._]?)(\d{3})\2(\d{4})(?!\d)")


def nhs_check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None when no check digit exists (the
    remainder gives 10, so no NHS number starts with those nine digits).

    Raises ValueError unless `first_nine` is exactly nine ASCII digits.
    """
    if len(first_nine) != 9 or not first_nine.isascii() or not first_nine.isdigit():
        raise ValueError(f"{first_nine!r} is not nine digits")
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_nhs_number(digits: str) -> bool:
    """True when `digits` is exactly ten ASCII digits with a valid Modulus 11 check digit."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def nhs_number_in(text: str) -> str | None:
    """The first NHS number written inside `text` ('9434765919', 'p-943-476-5919',
    '943 476 5919'), as its ten digits; None when there is none. Ten digits that fail the
    check, and longer runs of digits, are not NHS numbers."""
    for match in _CANDIDATE.finditer(text):
        digits = match[1] + match[3] + match[4]
        if is_nhs_number(digits):
            return digits
    return None
