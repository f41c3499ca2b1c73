"""Atomic writes: a reader sees the whole file (or folder) or nothing, never half of it.

Every file a worker, an export or a job folder hands to another process goes through
here, so "write to a temporary name, then rename" is defined once.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> write_json_atomic(d / "progress.json", {"n_done": 3})
>>> (d / "progress.json").read_text()
'{"n_done": 3}'
>>> with atomic_path(d / "out.txt") as tmp:
...     _ = tmp.write_text("hello")
>>> sorted(p.name for p in d.iterdir())
['out.txt', 'progress.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temp_name(path: Path) -> Path:
    """A hidden temporary sibling of ``path``, unique per process (never globbed as a result)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write a file or folder to; rename it to ``path`` on success.

    On an exception the temporary file or folder is removed and ``path`` is untouched.
    ``overwrite=False`` refuses to replace an existing ``path`` (checked before and at
    the rename, so a result that appeared meanwhile is not clobbered).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; not overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    _remove(tmp)
    try:
        yield tmp
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} appeared while it was being written; not overwritten")
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` by temporary file + rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as JSON by temporary file + rename (non-JSON values as ``str``)."""
    write_text_atomic(path, json.dumps(data, default=str, indent=indent))
