"""The outbox: without a GOV.UK Notify key, every message is written to a folder, one file each,
for a practice to send by hand (or to check before going live).

Names: `<reference>.<publication>.<action>.<channel>.<ext>`, e.g. `OV-7K3P9Q.2.update.sms.txt`;
`.txt` for SMS, `.pdf` for letters, `.eml` for a calendar invite e-mail (when the patient has an
e-mail address), `.ics` for the bare invite otherwise. Nothing in a name or a file is a patient
id. Each file is written atomically (a temporary file in the same folder, then `os.replace`), so
a reader never sees half a file and a crash leaves no partial message behind.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

EXTENSIONS = {"sms": "txt", "letter": "pdf", "eml": "eml", "ics": "ics"}
_PART = re.compile(r"^[A-Za-z0-9-]+$")


def outbox_name(reference: str, publish_number: int, action: str, channel: str, kind: str | None = None) -> str:
    for part in (reference, action, channel):
        if not _PART.match(part):
            raise ValueError(f"{part!r} cannot be part of an outbox file name")
    return f"{reference}.{int(publish_number)}.{action}.{channel}.{EXTENSIONS[kind or channel]}"


def write_atomic(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` to folder/name atomically; returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
