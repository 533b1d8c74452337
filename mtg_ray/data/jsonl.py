"""Strict jsonl reading: every problem is reported with its file, line and field."""

import json
import os
from collections.abc import Iterator
from typing import Any

from mtg_ray.data.errors import DataError


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (0-based line, object) for each non-blank line; the file is opened read-only."""
    try:
        f = open(path, "rb")
    except FileNotFoundError as e:
        raise DataError(path, "file not found") from e
    except OSError as e:
        raise DataError(path, f"cannot open ({e.strerror})") from e
    with f:
        for line_no, raw in enumerate(f):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    path, f"not UTF-8 ({e.reason} at byte {e.start})", row=line_no
                ) from e
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, f"malformed JSON ({e.msg})", row=line_no) from e
            if not isinstance(obj, dict):
                raise DataError(
                    path, f"expected a JSON object, got {type(obj).__name__}", row=line_no
                )
            yield line_no, obj


def require_text(
    obj: dict[str, Any],
    key: str,
    path: str | os.PathLike[str],
    row: int,
    numbers_ok: bool = False,
) -> str:
    """obj[key] as non-empty text; with `numbers_ok`, a JSON number is accepted as its text."""
    if key not in obj:
        raise DataError(path, "missing field", row=row, field=key)
    value = obj[key]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not (isinstance(value, str) or (numbers_ok and numeric)):
        raise DataError(path, f"expected text, got {type(value).__name__}", row=row, field=key)
    text = str(value)
    if not text.strip():
        raise DataError(path, "empty text", row=row, field=key)
    return text
