"""Sandbox worker: `python -m mtg_ray.grading._worker`, one JSON request per stdin line.

A request is a list of [pred, ref] pairs; the worker writes one line per pair ("1" or "0") as
soon as it is decided, so the parent can enforce a deadline per pair and kill a hung worker.
"""

import json
import sys


def main() -> None:
    from mtg_ray.grading.symbolic import symbolic_equal

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        for pred, ref in json.loads(line):
            out.write("1\n" if symbolic_equal(pred, ref) else "0\n")
            out.flush()


if __name__ == "__main__":
    main()
