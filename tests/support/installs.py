"""What the suite's own installs (Synapse's virtualenv, the js client's packages) share: the
tail of a log for an error message, and emptying an outdated install directory."""

from __future__ import annotations

import shutil
from pathlib import Path


def tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a text file, or a note saying why there are none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} is not readable)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def clear(directory: Path, *, keep: str, ours: bool, refusal: Exception) -> None:
    """Empty `directory` but for the entry `keep` (the lock file being held). `ours`: whether
    it looks like an install of ours; if it does not and is not empty, raise `refusal`."""
    entries = [p for p in directory.iterdir() if p.name != keep]
    if entries and not ours:
        raise refusal
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
