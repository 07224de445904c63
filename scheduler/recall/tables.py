"""Reading a recall export as a table: CSV text or an .xlsx workbook, bounded before parsing.

Both give the same thing: the header row's cells and numbered data rows of cells, where a cell
is text, or a `datetime.date` for an Excel date cell. Row numbers are the spreadsheet's (the
first row is 1), so a message can name the row a person sees in Excel.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field

from scheduler.problems import Problem
from scheduler.scenario_io.reading import decode_text

MAX_EXPORT_BYTES = 20 * 1024 * 1024
"""Largest export file accepted (bytes): a practice's whole recall list is well under 1 MB."""
MAX_ROWS = 100_000
"""Most data rows in an export: ten times the rows of a large practice's yearly recall list."""
MAX_COLUMNS = 200
"""Most columns in an export; a recall search has about 10."""
MAX_XLSX_UNPACKED_BYTES = 200 * 1024 * 1024
"""Most bytes an .xlsx may unpack to (a workbook is a zip file: this refuses a zip bomb)."""

Cell = str | dt.date


@dataclass
class Table:
    """An export's header (cells of the header row) and its data rows (row number, cells)."""

    source: str
    header: list[str]
    header_row: int
    rows: list[tuple[int, list[Cell]]] = field(default_factory=list)
    kind: str = "CSV"


class TableError(ValueError):
    """The export cannot be read; `problems` says why, naming the file."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _refuse(source: str, message: str, location: str = "") -> TableError:
    return TableError([Problem(source, location, message)])


def is_workbook(raw: bytes) -> bool:
    """An .xlsx (or any zip) file, by its first bytes."""
    return raw[:4] == b"PK\x03\x04"


def is_old_excel(raw: bytes) -> bool:
    """A pre-2007 .xls (OLE2 compound file), by its first bytes."""
    return raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read_table(raw: bytes, source: str, *, sheet: str | None = None, header_row: int = 1) -> Table:
    """The export's table. Raises TableError for a file too large, with too many rows or
    columns, an .xls, a sheet that is not there, or text that cannot be read."""
    if len(raw) > MAX_EXPORT_BYTES:
        raise _refuse(source, f"the export is {len(raw) / 1024 / 1024:.1f} MB; the largest accepted is "
                              f"{MAX_EXPORT_BYTES // 1024 // 1024} MB (split it by register)")
    if not raw.strip():
        raise _refuse(source, "the export is empty")
    if is_old_excel(raw):
        raise _refuse(source, "the export is an old Excel .xls workbook: save it as .xlsx or CSV")
    if is_workbook(raw):
        return _read_xlsx(raw, source, sheet, header_row)
    text, problems = decode_text(raw, source, spreadsheet=True)
    if text is None:
        raise TableError(problems)
    return _read_csv(text, source, header_row)


def _check_width(source: str, number: int, width: int) -> None:
    if width > MAX_COLUMNS:
        raise _refuse(source, f"row {number} has {width} columns; an export may have at most {MAX_COLUMNS}")


def _blank(cells: list[Cell]) -> bool:
    return not any(cell.strip() if isinstance(cell, str) else True for cell in cells)


def _read_csv(text: str, source: str, header_row: int) -> Table:
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True, delimiter=delimiter)
    table: Table | None = None
    number = 0
    try:
        for record in reader:
            number += 1
            _check_width(source, number, len(record))
            if number < header_row:
                continue
            if number == header_row:
                table = Table(source, [cell.strip() for cell in record], header_row)
                continue
            if _blank(list(record)):
                continue
            assert table is not None
            if len(table.rows) >= MAX_ROWS:
                raise _refuse(source, f"the export has more than {MAX_ROWS:,} rows; split it")
            table.rows.append((number, list(record)))
    except csv.Error as error:
        reason = str(error)
        if "unexpected end of data" in reason:
            reason = 'a quote (") is opened and never closed'
        raise _refuse(source, f"CSV could not be read: {reason}", f"row {reader.line_num}") from None
    if table is None or not any(table.header):
        raise _refuse(source, f"no header row: row {header_row} should hold the column names "
                              "(file.header_row in the profile)")
    return table


def _xlsx_cell(value: object) -> Cell:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_xlsx(raw: bytes, source: str, sheet: str | None, header_row: int) -> Table:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError):
        raise _refuse(source, "the export looks like a zip file but cannot be opened as one") from None
    if "xl/workbook.xml" not in names:
        raise _refuse(source, "the export is a zip file, not an Excel .xlsx workbook or CSV text")
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise _refuse(source, f"the workbook unpacks to {unpacked / 1024 / 1024:.0f} MB; the largest accepted is "
                              f"{MAX_XLSX_UNPACKED_BYTES // 1024 // 1024} MB")
    import openpyxl  # only when a workbook comes in

    try:
        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged workbook
        raise _refuse(source, f"the Excel workbook cannot be read: {type(error).__name__}") from None
    try:
        if sheet is not None:
            if sheet not in book.sheetnames:
                raise _refuse(source, f"the workbook has no sheet '{sheet}' (file.sheet in the profile); "
                                      f"its sheets are: {', '.join(book.sheetnames)}")
            worksheet = book[sheet]
        else:
            worksheet = book.worksheets[0]
        if worksheet.max_column is not None and worksheet.max_column > MAX_COLUMNS:
            raise _refuse(source, f"the sheet has {worksheet.max_column} columns; an export may have at most "
                                  f"{MAX_COLUMNS}")
        table: Table | None = None
        try:
            for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                cells = [_xlsx_cell(value) for value in values]
                while cells and cells[-1] == "":
                    cells.pop()
                _check_width(source, number, len(cells))
                if number < header_row:
                    continue
                if number == header_row:
                    table = Table(source, [str(c).strip() for c in cells], header_row, kind="xlsx")
                    continue
                if _blank(cells):
                    continue
                assert table is not None
                if len(table.rows) >= MAX_ROWS:
                    raise _refuse(source, f"the export has more than {MAX_ROWS:,} rows; split it")
                table.rows.append((number, cells))
        except TableError:
            raise
        except Exception as error:
            raise _refuse(source, f"the Excel workbook cannot be read: {type(error).__name__}") from None
    finally:
        book.close()
    if table is None or not any(table.header):
        raise _refuse(source, f"no header row: row {header_row} should hold the column names "
                              "(file.header_row in the profile)")
    return table
