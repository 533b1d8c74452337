"""The one error type for bad input data: it names the file, the row and the field."""

from os import PathLike
from typing import Any


class DataError(ValueError):
    """Bad input data, reported as `"{path}: row {row}, field '{field}': {problem}"`.

    `row` is 0-based (a parquet row, a jsonl line or a record's position) and `field` is a dotted
    name (`extra_info.question`); either is None, and left out of the message, when the problem is
    not about one row or one field (a missing file, a missing column).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        problem: str,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path, self.row, self.field, self.problem = str(path), row, field, problem
        where = []
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(": ".join([self.path, *([", ".join(where)] if where else []), problem]))

    def __reduce__(self) -> tuple[type["DataError"], tuple[str, str, int | None, str | None]]:
        """Pickle by constructor arguments, so the error survives a trip between processes."""
        return type(self), (self.path, self.problem, self.row, self.field)


def column_values(table: Any, name: str, path: str | PathLike[str]) -> list[Any]:
    """A pyarrow table column as Python values; text that is not valid UTF-8 is a DataError
    naming its row and field (pyarrow itself raises a bare UnicodeDecodeError)."""
    column = table.column(name)
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        for row, value in enumerate(column):
            try:
                value.as_py()
            except UnicodeDecodeError as e:
                raise DataError(path, f"text is not valid UTF-8 ({e})", row=row, field=name) from e
        raise
