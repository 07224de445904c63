"""The contacts file: how to reach each patient, supplied at send time and kept only in memory.

A CSV (UTF-8, header row) keyed by the scenario's pseudonymous patient id:

    patient_id,mobile,email,address_line_1,address_line_2,address_line_3,address_line_4,address_line_5,postcode

Every column but `patient_id` may be empty; a patient absent from the file, or with an empty
column, simply has no such contact (their message on that channel is recorded `no_contact`).
Contacts never enter a scenario, a plan or the database; they are read, validated and used.

Checks (every problem is reported at once, by row and column, without echoing values that could
identify someone): at most MAX_BYTES and MAX_ROWS; UK mobile numbers only (07xxx xxxxxx or
+44 7xxx xxxxxx, spaces, hyphens and brackets allowed); a postcode of UK shape (outward code,
space optional, inward code: "QX1 2AB"); an address needs at least two lines and a postcode
(GOV.UK Notify needs three lines in all, the postcode last); e-mail a bare `local@domain`;
a patient id that holds a valid NHS number (Modulus 11, `scheduler.privacy.nhs_number_in`) is
refused: contacts are keyed by pseudonymous ids only.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from scheduler.privacy import nhs_number_in

MAX_BYTES = 5 * 1024 * 1024  # 5 MiB: 50,000 patients at ~100 bytes a row
MAX_ROWS = 100_000
MAX_FIELD = 200  # characters in any one cell
ADDRESS_COLUMNS = tuple(f"address_line_{i}" for i in range(1, 6))
COLUMNS = ("patient_id", "mobile", "email", *ADDRESS_COLUMNS, "postcode")

_MOBILE = re.compile(r"^(?:\+44|0044|0)7\d{9}$")
_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?) ?(\d[A-Z]{2})$")
_EMAIL = re.compile(r"^[^\s@:;,<>\"\x00-\x1f\x7f-\x9f]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ContactProblem:
    row: int  # 1 is the header row
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class ContactsError(ValueError):
    """The contacts file cannot be used; `problems` lists every one found."""

    def __init__(self, problems: list[ContactProblem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the contacts file: "
                         + "; ".join(str(p) for p in problems[:5]) + ("; ..." if len(problems) > 5 else ""))


@dataclass(frozen=True)
class Contact:
    """How to reach one patient. `mobile` is in E.164 (+447...); `address` lines exclude the
    postcode, which is upper-case with one space."""

    mobile: str | None = None
    email: str | None = None
    address: tuple[str, ...] = ()
    postcode: str | None = None

    @property
    def postal(self) -> tuple[str, ...]:
        """The whole address block, postcode last; empty when there is no full address."""
        return (*self.address, self.postcode) if self.address and self.postcode else ()

    def has(self, channel: str) -> bool:
        if channel == "sms":
            return self.mobile is not None
        if channel == "letter":
            return bool(self.postal)
        return self.email is not None  # calendar: an e-mail, else a downloadable .ics


def normalise_mobile(text: str) -> str | None:
    """A UK mobile number in E.164 (+447xxxxxxxxx), or None if `text` is not one."""
    digits = re.sub(r"[\s\-()]", "", text)
    if not _MOBILE.match(digits):
        return None
    return "+44" + digits[-10:]


def normalise_postcode(text: str) -> str | None:
    match = _POSTCODE.match(re.sub(r"\s+", " ", text.strip().upper()))
    return f"{match[1]} {match[2]}" if match else None


def read_contacts(data: bytes, *, source: str = "contacts") -> dict[str, Contact]:
    """Contacts by patient id; ContactsError listing every problem. `data` is the file's bytes."""
    problems: list[ContactProblem] = []

    def problem(row: int, column: str, message: str) -> None:
        if len(problems) < 200:
            problems.append(ContactProblem(row, column, message))

    if len(data) > MAX_BYTES:
        raise ContactsError([ContactProblem(0, "-", f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ContactsError([ContactProblem(0, "-", "the file is not UTF-8 text")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ContactsError([ContactProblem(1, "-", "the file is empty")]) from None
    except csv.Error as exc:
        raise ContactsError([ContactProblem(1, "-", f"not a CSV file ({exc})")]) from None
    if "patient_id" not in header:
        problem(1, "patient_id", "the header row has no patient_id column")
    for name in header:
        if name not in COLUMNS:
            problem(1, name[:40] or "(blank)", f"unknown column; the columns are {', '.join(COLUMNS)}")
    if len(set(header)) != len(header):
        problem(1, "-", "a column is named twice")
    if problems:
        raise ContactsError(problems)
    contacts: dict[str, Contact] = {}
    rows = 0
    try:
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            rows += 1
            if rows > MAX_ROWS:
                problem(number, "-", f"more than {MAX_ROWS} rows")
                break
            if len(row) != len(header):
                problem(number, "-", f"{len(row)} cells where the header has {len(header)}")
                continue
            cells = {name: cell.strip() for name, cell in zip(header, row)}
            for name, cell in cells.items():
                if len(cell) > MAX_FIELD:
                    problem(number, name, f"longer than {MAX_FIELD} characters")
                if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cell):
                    problem(number, name, "holds a control character")
            pid = cells.get("patient_id", "")
            if nhs_number_in(pid):
                problem(number, "patient_id", "looks like an NHS number; contacts are keyed by the "
                        "scenario's pseudonymous patient ids only")
                continue
            if not _ID.match(pid):
                problem(number, "patient_id", "missing or not a patient id (letters, digits, '.', '_', '-')")
                continue
            if pid in contacts:
                problem(number, "patient_id", "this patient has an earlier row")
                continue
            mobile = None
            if cells.get("mobile"):
                mobile = normalise_mobile(cells["mobile"])
                if mobile is None:
                    problem(number, "mobile", "not a UK mobile number (07xxx xxxxxx or +44 7xxx xxxxxx)")
            email = cells.get("email") or None
            if email is not None and not _EMAIL.match(email):
                problem(number, "email", "not an e-mail address (local@domain)")
                email = None
            lines = tuple(cells[c] for c in ADDRESS_COLUMNS if cells.get(c))
            postcode = None
            if cells.get("postcode"):
                postcode = normalise_postcode(cells["postcode"])
                if postcode is None:
                    problem(number, "postcode", "not the shape of a UK postcode (e.g. QX1 2AB)")
            if (lines or postcode) and (len(lines) < 2 or not cells.get("postcode")):
                problem(number, "address_line_1" if len(lines) < 2 else "postcode",
                        "an address needs at least two lines and a postcode")
            contacts[pid] = Contact(mobile, email, lines, postcode)
    except csv.Error as exc:
        problem(reader.line_num, "-", f"not a CSV file ({exc})")
    if problems:
        raise ContactsError(problems)
    return contacts
