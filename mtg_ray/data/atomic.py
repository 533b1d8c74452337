"""Atomic file writes: a temp file beside the target, fsynced, then renamed over the target.

A crash or exception mid-write leaves the target as it was (or absent) and no temp file behind:
readers (a trainer picking up shards, a resumed run) never see a half-written file.
"""

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Temp files are hidden and end in .tmp, so globs for *.parquet / *.jsonl never pick them up.
TEMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: some filesystems refuse a directory fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _temp_beside(target: Path) -> Iterator[Path]:
    """A fresh temp file in the target's folder, removed on exit unless it was renamed away."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        # mkstemp makes 0600 files; keep the target's mode, or give a new file the usual 0644.
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _commit(tmp: Path, target: Path) -> None:
    os.replace(tmp, target)
    _fsync_dir(target.parent)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path for writers that need a path (`pq.write_table`); on clean exit it is
    fsynced and atomically replaces `path`. On an exception `path` is untouched."""
    target = Path(path)
    with _temp_beside(target) as tmp:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _commit(tmp, target)


@contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Yield an open file ("w" text or "wb" binary); on clean exit it is flushed, fsynced and
    atomically replaces `path`. On an exception `path` is untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    with _temp_beside(target) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, target)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` as UTF-8, atomically."""
    with atomic_write(path) as f:
        f.write(text)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object a line (UTF-8, non-ASCII kept), atomically: a row that fails to
    serialise, or an iterable that raises half-way, leaves the target as it was."""
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
