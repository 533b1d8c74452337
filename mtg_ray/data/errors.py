"""The one error type for bad input data: it names the file, the row and the field."""

from os import PathLike


class DataError(ValueError):
    """Bad input data. `row` is 0-based (a parquet row or a jsonl line); `field` is dotted."""

    def __init__(
        self,
        path: str | PathLike[str],
        problem: str,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path, self.row, self.field, self.problem = str(path), row, field, problem
        where = [self.path]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {problem}")
