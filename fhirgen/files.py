"""fhirgen's data folder is private: it holds drafts, chart facts, password hashes and keys.

Folders fhirgen makes there are 0700 and files 0600, whatever the umask of whoever started it.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def keep_private() -> None:
    """From now on this process and its children create files 0600 and folders 0700."""
    os.umask(PRIVATE_UMASK)


def private_folder(path: str | Path) -> Path:
    """``path`` as a folder only its owner can enter (made with its parents if missing)."""
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def private_file(path: str | Path) -> Path:
    """``path`` as a file only its owner can read (created empty if missing). SQLite gives
    the ``-wal`` and ``-shm`` files beside a database the database file's permissions."""
    file = Path(path)
    descriptor = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(descriptor)
    file.chmod(0o600)
    return file
