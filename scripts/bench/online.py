"""Online benchmark: the online step with and without overlap, side by side in one run.

Both runs train the same number of steps from the base model on the same problems, with one
rollout group (each run first gives it its learner's start weights) and fresh learner groups.
Serial: sample the batch, train, sync. Overlapped: sample step t+1's batch while step t
trains (policy lag 1). Step time = the loop's wall time / steps. Last line:
`online_overlap_speedup=<x> sync_share=<y>` (x = serial step time / overlapped step time,
y = share of the serial step spent in weight sync).
"""

import argparse
import dataclasses
import tempfile

from mtg_ray.config import compose
from mtg_ray.pipelines.online import online_job
from mtg_ray.pipelines.session import groups, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--world", default="small", choices=("small", "default"))
    parser.add_argument("--batch", type=int, default=16, help="problems per step")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = [
            f"world={args.world}",
            f"output_dir={tmp}",
            f"online.steps={args.steps}",
            f"online.save_every={args.steps}",
            f"learner.train_batch_size={args.batch}",
            "learner.micro_batch_size=4",
            "rollout.num_engines=1",
        ]
        run = start(compose("online", base))
        timings = {}
        with groups(run) as rollout:
            for mode in ("serial", "overlap"):
                cfg = compose("online", base + [f"online.overlap={mode == 'overlap'}"])
                timings[mode] = online_job(dataclasses.replace(run, cfg=cfg), rollout)["timing"]
    step = {m: t["loop_s"] / t["steps_run"] for m, t in timings.items()}
    serial = timings["serial"]
    for m, t in timings.items():
        print(
            f"{m}: step {step[m]:.2f}s (generate {t['generate_s']:.1f}s, wait {t['wait_s']:.1f}s,"
            f" train {t['train_s']:.1f}s, sync {t['sync_s']:.1f}s over {t['steps_run']} steps)"
        )
    print(
        f"online_overlap_speedup={step['serial'] / step['overlap']:.3f} "
        f"sync_share={serial['sync_s'] / serial['loop_s']:.3f}"
    )


if __name__ == "__main__":
    main()
