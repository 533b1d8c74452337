"""The main job on the built-in tiny default.

Until the offline pipeline lands (rewrite -> train -> evaluate on the tiny world), this runs what
exists end to end on real data: every benchmark is loaded, and the grader checks each MATH500
worked solution against its own reference answer.
"""

import time

from mtg_ray.data import BENCHMARKS, read_benchmark
from mtg_ray.grading import grade_many


def main() -> None:
    start = time.monotonic()
    for name in BENCHMARKS:
        print(f"benchmark {name}: {len(read_benchmark(name))} problems")
    math500 = read_benchmark("math500")
    verdicts = grade_many([(p.expert_solution or "", p.reference_answer) for p in math500])
    rate = sum(verdicts) / len(verdicts)
    print(
        f"demo: grader_self_consistency_math500={rate:.4f} seconds={time.monotonic() - start:.1f}"
    )


if __name__ == "__main__":
    main()
