"""Files written whole or not at all: reports (tasks.py) and status copies (status_files.py).

Kept apart from report.py so the web app's status writes need not import fpdf.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(content: bytes, target: Path) -> None:
    """Write to a temporary file in the target's folder and rename it into place.

    The folder must exist. A reader sees the old file or the new one, never a
    half-written one, and a redelivered job that rewrites the same name never
    leaves two. A temporary file is removed on any failure; one left by a killed
    process (``.<name>.*.tmp``) is swept by retention.py.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        # nginx's workers may run as another user: the file must be readable.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
