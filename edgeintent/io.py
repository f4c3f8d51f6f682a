"""Small I/O helpers every layer uses: atomic files and canonical JSON.

- **Atomic files.** :func:`atomic_path` yields a temp path next to the target and renames it over the
  target on success (removes it on error), so readers never see half a file and a failed write never
  destroys the previous one. :func:`atomic_write_text` / :func:`atomic_write_bytes` are the one-call
  forms. Files get the mode ``open`` would give (:func:`default_mode`), not ``mkstemp``'s 0600.
  :func:`ensure_parent` creates an output's directory (``mkdir -p``) or says in one line why it cannot.
- **Canonical JSON.** :func:`canonical_json` gives the same bytes for the same object: sorted keys,
  indent 2, a final newline; :func:`json_default` turns numpy scalars / arrays and paths into JSON.

The bottom layer: imports only the standard library, numpy and :mod:`edgeintent.errors`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from edgeintent.errors import BundleError, DataError

# ---------------------------------------------------------------------------------------------
# Atomic files (temp file in the same directory, then rename)
# ---------------------------------------------------------------------------------------------


def default_mode(base: int = 0o666) -> int:
    """``base`` under the process umask: the mode ``open`` would give (``mkstemp`` gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def ensure_parent(path: str | Path) -> Path:
    """Create the directory an output file goes to (and its parents), like ``mkdir -p``; a one-line
    ``DataError`` when that is impossible (a file in the way, no permission)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(f"{path}: {path.parent} is not a directory") from None
    except OSError as e:
        raise DataError(f"{path}: cannot create {path.parent} ({e.strerror})") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it is renamed over ``path``, on error removed.

    Readers never see half a file, and a failed write never destroys the previous one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_mode())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to ``path`` through a temp file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temp file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# ---------------------------------------------------------------------------------------------
# Deterministic JSON
# ---------------------------------------------------------------------------------------------


def json_default(obj: Any) -> Any:
    """``json.dumps`` default: numpy scalars / arrays become numbers / lists, paths strings."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"value of type {type(obj).__name__} is not JSON-serialisable")


def canonical_json(obj: Any, what: str = "JSON") -> bytes:
    """UTF-8 JSON with sorted keys, indent 2 and a final newline (numpy scalars/arrays become numbers/lists).

    NaN and inf are kept as Python's json writes them (``NaN``), so undefined metrics round-trip.
    A value that cannot be written raises :class:`~edgeintent.errors.BundleError` naming ``what``.
    """
    try:
        text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, default=json_default)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{what}: cannot be written as JSON ({exc})") from None
    return (text + "\n").encode("utf-8")
