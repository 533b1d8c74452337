"""NuminaMath-CoT as the paper presets' training parquet (verl SFT format).

    python scripts/prepare_numinamath.py <NuminaMath-CoT folder or parquet files> \
        --out /shared/data/numinamath_cot_50k.parquet [--rows 50000]

Reads the dataset's train parquet files (a folder: its `data/train-*.parquet` in name order),
keeps the first `--rows` rows as the authors do, drops those whose solution has no `\\boxed{}`
answer, and writes the rest atomically (`mtg_ray.data.sft.sft_from_numinamath`). Point
`data.train` at the output.
"""

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

from mtg_ray.data.atomic import atomic_path
from mtg_ray.data.errors import DataError
from mtg_ray.data.sft import sft_from_numinamath


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="+", help="the dataset folder, or its parquet files")
    parser.add_argument("--out", required=True, help="the verl SFT parquet to write")
    parser.add_argument("--rows", type=int, default=50_000, help="the first N rows (the paper's)")
    args = parser.parse_args()
    paths: list[Path] = []
    for source in map(Path, args.source):
        paths += sorted(source.glob("data/train-*.parquet")) if source.is_dir() else [source]
    if not paths:
        sys.exit(f"no data/train-*.parquet under {args.source}")
    try:
        table, dropped = sft_from_numinamath(paths, args.rows)
    except DataError as e:
        sys.exit(str(e))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        pq.write_table(table, tmp)
    print(f"{args.out}: {table.num_rows} problems ({dropped} without a \\boxed{{}} answer dropped)")


if __name__ == "__main__":
    main()
